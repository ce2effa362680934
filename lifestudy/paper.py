"""The paper's own numbers — the only numbers in the study that are typed by hand.

Akkaya, Kathiresan, Arani, Zonooz, "Enhancing Performance of Vision Transformers on
Small Datasets through Local Inductive Bias Incorporation", arXiv 2305.08551
(Pattern Recognition, 2024). Everything here is labelled "paper" wherever it is shown.
Our own numbers always come from run records (:mod:`lifestudy.records`).
"""

from __future__ import annotations

__all__ = ["CITATION", "SOURCE", "COMPLEXITY", "DETECTION", "SEGMENTATION", "CLASSIFICATION", "CLASSIFICATION_MODELS",
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

#: Pascal VOC detection, DeiT-T backbone, random initialisation (paper's detection table).
DETECTION: dict[str, dict[str, float]] = {
    "encdec": {"params_m": 27.20, "gmacs": 14.20, "map": 27.31, "f1": 37.52},
    "encdec-linear": {"params_m": 28.38, "gmacs": 14.50, "map": 29.76, "f1": 40.24},
    "encdec-life": {"params_m": 28.19, "gmacs": 14.45, "map": 31.37, "f1": 41.80},
}

#: Cityscapes semantic segmentation, random initialisation (paper's segmentation table).
SEGMENTATION: dict[str, dict[str, float]] = {
    "deit_tiny": {"params_m": 10.13, "gmacs": 10.50, "miou": 31.89},
    "deit_tiny_life": {"params_m": 10.21, "gmacs": 10.58, "miou": 33.73},
}

#: Top-1 accuracy (%) from scratch, with params (M) and GMACs, as the paper's classification
#: table reports them (the official repository's README, ``docs/classification_results.png``).
#: Keys are the paper's model names; datasets: cifar10, cifar100, tiny-imagenet, imagenet100.
CLASSIFICATION: dict[str, dict[str, float]] = {
    "ResNet-18": {"params_m": 11.23, "gmacs": 2.37, "cifar10": 94.14, "cifar100": 75.10,
                  "tiny-imagenet": 60.86, "imagenet100": 80.74},
    "ResNet-50": {"params_m": 23.71, "gmacs": 5.35, "cifar10": 94.32, "cifar100": 74.25,
                  "tiny-imagenet": 63.45, "imagenet100": 82.70},
    "DeiT-T": {"params_m": 5.54, "gmacs": 1.26, "cifar10": 85.65, "cifar100": 51.45,
               "tiny-imagenet": 54.89, "imagenet100": 63.56},
    "DeiT-T-LIFE": {"params_m": 5.62, "gmacs": 1.27, "cifar10": 89.28, "cifar100": 71.74,
                    "tiny-imagenet": 60.51, "imagenet100": 68.32},
    "T2T-ViT-12": {"params_m": 6.66, "gmacs": 1.74, "cifar10": 88.41, "cifar100": 52.51,
                   "tiny-imagenet": 57.89, "imagenet100": 83.58},
    "T2T-ViT-12-LIFE": {"params_m": 6.59, "gmacs": 1.71, "cifar10": 89.96, "cifar100": 54.51,
                        "tiny-imagenet": 60.52, "imagenet100": 83.96},
    "DeiT-S": {"params_m": 21.70, "gmacs": 4.61, "cifar10": 87.24, "cifar100": 70.39,
               "tiny-imagenet": 55.08, "imagenet100": 80.84},
    "DeiT-S-LIFE": {"params_m": 21.85, "gmacs": 4.64, "cifar10": 90.38, "cifar100": 73.97,
                    "tiny-imagenet": 59.78, "imagenet100": 81.52},
    "Swinv2-T": {"params_m": 27.72, "gmacs": 5.95, "cifar10": 95.03, "cifar100": 76.65,
                 "tiny-imagenet": 64.78, "imagenet100": 86.86},
    "Swinv2-T-LIFE": {"params_m": 27.88, "gmacs": 6.01, "cifar10": 95.14, "cifar100": 77.48,
                      "tiny-imagenet": 65.84, "imagenet100": 86.98},
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
