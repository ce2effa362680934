"""The paper's own numbers — the only numbers in the study that are typed by hand.

Akkaya, Kathiresan, Arani, Zonooz, "Enhancing Performance of Vision Transformers on
Small Datasets through Local Inductive Bias Incorporation", arXiv 2305.08551
(Pattern Recognition, 2024). Everything here is labelled "paper" wherever it is shown.
Our own numbers always come from run records (:mod:`lifestudy.records`).
"""

from __future__ import annotations

__all__ = ["CITATION", "SOURCE", "COMPLEXITY", "DETECTION", "SEGMENTATION", "segmentation_rows", "LABEL"]

LABEL = "paper"
CITATION = "Akkaya et al., arXiv 2305.08551 (Pattern Recognition 2024)"
SOURCE = "https://arxiv.org/abs/2305.08551"

#: Parameters (M) and GMACs at 224x224 with 100 classes, MACs counted with the attention
#: matrix products (fvcore convention). Keys are timm model names (ours for T2T-ViT).
COMPLEXITY: dict[str, dict[str, float]] = {
    "deit_tiny_patch16_224": {"params_m": 5.54, "gmacs": 1.26},
    "deit_tiny_patch16_224_life": {"params_m": 5.62, "gmacs": 1.27},
    "deit_small_patch16_224": {"params_m": 21.70, "gmacs": 4.61},
    "deit_small_patch16_224_life": {"params_m": 21.85, "gmacs": 4.64},
    "swinv2_tiny_window8_256": {"params_m": 27.72, "gmacs": 5.95},
    "swinv2_tiny_window8_256_life": {"params_m": 27.88, "gmacs": 6.01},
    "t2t_vit_12": {"params_m": 6.66, "gmacs": 1.74},
    "t2t_vit_12_life": {"params_m": 6.59, "gmacs": 1.71},
}

#: Pascal VOC detection, DeiT-T backbone, random initialisation (paper's detection table).
DETECTION: dict[str, dict[str, float]] = {
    "encdec": {"params_m": 27.20, "gmacs": 14.20, "map": 27.31, "f1": 37.52},
    "encdec-linear": {"params_m": 28.38, "gmacs": 14.50, "map": 29.76, "f1": 40.24},
    "encdec-life": {"params_m": 28.19, "gmacs": 14.45, "map": 31.37, "f1": 41.80},
}

#: Cityscapes semantic segmentation (params M, GMACs, mIoU %): every row of the paper's
#: segmentation table (official repository README, ``docs/segmentation_results.png``), one
#: dict per row. ``init`` is "random" or "imagenet-1k"; ``backbone`` the paper's name;
#: ``needs_pretrained`` marks the rows whose backbone starts from ImageNet-1k weights, which
#: this study's offline machines cannot download. Use :func:`segmentation_rows` to select.
SEGMENTATION: list[dict[str, float | str | bool]] = [
    dict(init=init, backbone=backbone, params_m=p, gmacs=g, miou=m, needs_pretrained=init != "random")
    for init, backbone, p, g, m in [
        ("random", "DeiT-T", 10.13, 10.50, 31.89),
        ("random", "DeiT-T-LIFE", 10.21, 10.58, 33.73),
        ("imagenet-1k", "DeiT-T", 10.13, 10.50, 58.62),
        ("imagenet-1k", "DeiT-T-LIFE", 10.21, 10.58, 59.17),
        ("imagenet-1k", "Swinv2-T", 32.36, 23.95, 59.37),
        ("imagenet-1k", "Swinv2-T-LIFE", 32.52, 24.20, 60.25),
    ]
]


def segmentation_rows(init: str | None = None) -> dict[str, dict]:
    """The paper's segmentation rows for one ``init`` ("random", "imagenet-1k"; None:
    all), keyed by the paper's backbone name: ``{"DeiT-T": {"params_m", "gmacs", "miou",
    ...}, ...}``."""
    return {r["backbone"]: r for r in SEGMENTATION if init is None or r["init"] == init}

# Classification accuracies (top-1, %) of the paper's tables are added by the
# classification chapter's owner as CLASSIFICATION = {dataset: {model: acc}}, each
# value copied from the paper with its table number in a comment.
