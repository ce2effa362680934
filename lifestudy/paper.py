"""The paper's own numbers — the only numbers in the study that are typed by hand.

Akkaya, Kathiresan, Arani, Zonooz, "Enhancing Performance of Vision Transformers on
Small Datasets through Local Inductive Bias Incorporation", arXiv 2305.08551
(Pattern Recognition, 2024). Everything here is labelled "paper" wherever it is shown.
Our own numbers always come from run records (:mod:`lifestudy.records`).
"""

from __future__ import annotations

__all__ = ["CITATION", "SOURCE", "COMPLEXITY", "DETECTION", "DETECTION_BACKBONES", "detection_rows",
           "SEGMENTATION", "segmentation_rows", "LABEL"]

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

#: Pascal VOC detection (params M, GMACs, mAP %, F1 %): every row of the paper's detection
#: table (official repository README, ``docs/detection_results.png``), one dict per row.
#: ``init`` is "random" or "imagenet-1k"; ``backbone`` the paper's name; ``needs_pretrained``
#: marks the rows whose backbone starts from ImageNet-1k weights, which this study's
#: offline machines cannot download (our analogue: a backbone initialised from our own
#: Fashion-MNIST classification run). Use :func:`detection_rows` to select rows.
DETECTION: list[dict[str, float | str | bool]] = [
    dict(init=init, backbone=backbone, head=head, params_m=p, gmacs=g, map=m, f1=f,
         needs_pretrained=init != "random")
    for init, backbone, rows in [
        ("random", "DeiT-T", [("encdec", 27.20, 14.20, 27.31, 37.52),
                              ("encdec-linear", 28.38, 14.50, 29.76, 40.24),
                              ("encdec-life", 28.19, 14.45, 31.37, 41.80)]),
        ("random", "DeiT-T-LIFE", [("encdec", 27.27, 14.28, 27.09, 37.49),
                                   ("encdec-linear", 28.46, 14.58, 29.22, 39.60),
                                   ("encdec-life", 28.26, 14.53, 32.21, 42.52)]),
        ("imagenet-1k", "DeiT-T", [("encdec", 27.20, 14.20, 72.12, 79.32),
                                   ("encdec-linear", 28.38, 14.50, 73.02, 80.12),
                                   ("encdec-life", 28.19, 14.45, 73.51, 80.42)]),
        ("imagenet-1k", "DeiT-T-LIFE", [("encdec", 27.27, 14.28, 72.43, 79.68),
                                        ("encdec-linear", 28.46, 14.58, 73.05, 80.16),
                                        ("encdec-life", 28.26, 14.53, 73.92, 80.73)]),
        ("imagenet-1k", "Swinv2-T", [("encdec", 50.07, 27.32, 78.21, 84.48),
                                     ("encdec-linear", 51.26, 27.62, 78.94, 85.01),
                                     ("encdec-life", 51.06, 27.57, 80.57, 86.13)]),
        ("imagenet-1k", "Swinv2-T-LIFE", [("encdec", 50.23, 27.57, 80.24, 85.92),
                                          ("encdec-linear", 51.41, 27.88, 81.27, 86.73),
                                          ("encdec-life", 51.22, 27.83, 81.27, 86.68)]),
    ]
    for head, p, g, m, f in rows
]

#: The paper's detection backbones -> the timm names of ours they correspond to.
DETECTION_BACKBONES: dict[str, str] = {
    "DeiT-T": "deit_tiny_patch16_224", "DeiT-T-LIFE": "deit_tiny_patch16_224_life",
    "Swinv2-T": "swinv2_tiny_window8_256", "Swinv2-T-LIFE": "swinv2_tiny_window8_256_life",
}


def detection_rows(init: str | None = None, backbone: str | None = None) -> dict[str, dict]:
    """The paper's detection rows for one ``init`` and ``backbone`` (paper names), keyed
    by head: ``{"encdec": {"params_m", "gmacs", "map", "f1", ...}, ...}``."""
    return {r["head"]: r for r in DETECTION
            if (init is None or r["init"] == init) and (backbone is None or r["backbone"] == backbone)}


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
