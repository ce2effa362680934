"""The paper's own numbers — the only numbers in the study that are typed by hand.

Akkaya, Kathiresan, Arani, Zonooz, "Enhancing Performance of Vision Transformers on
Small Datasets through Local Inductive Bias Incorporation", arXiv 2305.08551
(Pattern Recognition, 2024). Everything here is labelled "paper" wherever it is shown.
Our own numbers always come from run records (:mod:`lifestudy.records`).
"""

from __future__ import annotations

__all__ = ["CITATION", "SOURCE", "COMPLEXITY", "DETECTION", "DETECTION_BACKBONES", "detection_rows",
           "SEGMENTATION", "segmentation_rows", "CLASSIFICATION", "CLASSIFICATION_MODELS",
           "classification_table", "LABEL"]

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
    for init, backbone, head, p, g, m, f in [
        # init         backbone         head             params GMACs  mAP    F1
        ("random",      "DeiT-T",        "encdec",        27.20, 14.20, 27.31, 37.52),
        ("random",      "DeiT-T",        "encdec-linear", 28.38, 14.50, 29.76, 40.24),
        ("random",      "DeiT-T",        "encdec-life",   28.19, 14.45, 31.37, 41.80),
        ("random",      "DeiT-T-LIFE",   "encdec",        27.27, 14.28, 27.09, 37.49),
        ("random",      "DeiT-T-LIFE",   "encdec-linear", 28.46, 14.58, 29.22, 39.60),
        ("random",      "DeiT-T-LIFE",   "encdec-life",   28.26, 14.53, 32.21, 42.52),
        ("imagenet-1k", "DeiT-T",        "encdec",        27.20, 14.20, 72.12, 79.32),
        ("imagenet-1k", "DeiT-T",        "encdec-linear", 28.38, 14.50, 73.02, 80.12),
        ("imagenet-1k", "DeiT-T",        "encdec-life",   28.19, 14.45, 73.51, 80.42),
        ("imagenet-1k", "DeiT-T-LIFE",   "encdec",        27.27, 14.28, 72.43, 79.68),
        ("imagenet-1k", "DeiT-T-LIFE",   "encdec-linear", 28.46, 14.58, 73.05, 80.16),
        ("imagenet-1k", "DeiT-T-LIFE",   "encdec-life",   28.26, 14.53, 73.92, 80.73),
        ("imagenet-1k", "Swinv2-T",      "encdec",        50.07, 27.32, 78.21, 84.48),
        ("imagenet-1k", "Swinv2-T",      "encdec-linear", 51.26, 27.62, 78.94, 85.01),
        ("imagenet-1k", "Swinv2-T",      "encdec-life",   51.06, 27.57, 80.57, 86.13),
        ("imagenet-1k", "Swinv2-T-LIFE", "encdec",        50.23, 27.57, 80.24, 85.92),
        ("imagenet-1k", "Swinv2-T-LIFE", "encdec-linear", 51.41, 27.88, 81.27, 86.73),
        ("imagenet-1k", "Swinv2-T-LIFE", "encdec-life",   51.22, 27.83, 81.27, 86.68),
    ]
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


#: Top-1 accuracy (%) from scratch, with params (M) and GMACs, as the paper's classification
#: table reports them (the official repository's README, ``docs/classification_results.png``).
#: Keys are the paper's model names; datasets: cifar10, cifar100, tiny-imagenet, imagenet100.
CLASSIFICATION: dict[str, dict[str, float]] = {
    name: dict(zip(("params_m", "gmacs", "cifar10", "cifar100", "tiny-imagenet", "imagenet100"), row))
    for name, *row in [
        # model            params  GMACs  CIFAR-10 CIFAR-100 Tiny-IN  IN-100
        ("ResNet-18",       11.23, 2.37,  94.14,   75.10,    60.86,   80.74),
        ("ResNet-50",       23.71, 5.35,  94.32,   74.25,    63.45,   82.70),
        ("DeiT-T",           5.54, 1.26,  85.65,   51.45,    54.89,   63.56),
        ("DeiT-T-LIFE",      5.62, 1.27,  89.28,   71.74,    60.51,   68.32),
        ("T2T-ViT-12",       6.66, 1.74,  88.41,   52.51,    57.89,   83.58),
        ("T2T-ViT-12-LIFE",  6.59, 1.71,  89.96,   54.51,    60.52,   83.96),
        ("DeiT-S",          21.70, 4.61,  87.24,   70.39,    55.08,   80.84),
        ("DeiT-S-LIFE",     21.85, 4.64,  90.38,   73.97,    59.78,   81.52),
        ("Swinv2-T",        27.72, 5.95,  95.03,   76.65,    64.78,   86.86),
        ("Swinv2-T-LIFE",   27.88, 6.01,  95.14,   77.48,    65.84,   86.98),
    ]
}

#: The paper's model names by timm name (ours for T2T-ViT), for tables that put ours beside them.
CLASSIFICATION_MODELS: dict[str, str] = {
    "resnet18": "ResNet-18",
    "resnet50": "ResNet-50",
    "deit_tiny_patch4_32": "DeiT-T",
    "deit_tiny_patch4_32_life": "DeiT-T-LIFE",
    "t2t_vit_12": "T2T-ViT-12",
    "t2t_vit_12_life": "T2T-ViT-12-LIFE",
    "deit_small_patch4_32": "DeiT-S",
    "deit_small_patch4_32_life": "DeiT-S-LIFE",
    "swinv2_tiny_window8_256": "Swinv2-T",
    "swinv2_tiny_window8_256_life": "Swinv2-T-LIFE",
}


def classification_table():
    """:data:`CLASSIFICATION` as a DataFrame (one row per model), every column titled
    "<column> (paper)" so it can never be read as ours."""
    import pandas as pd

    return pd.DataFrame(CLASSIFICATION).T.rename_axis("model").add_suffix(f" ({LABEL})")
