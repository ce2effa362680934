"""Parameters and GMACs of the dense models, beside the paper's detection and segmentation tables.

Counted as :mod:`lifestudy.complexity` counts classifiers (fvcore MACs with the attention
matrix products, trainable parameters), for one image of the given size, with the
backbone's and the head's shares reported apart. The paper's rows
(:data:`lifestudy.paper.DETECTION`, :data:`lifestudy.paper.SEGMENTATION`) are for its own
head sizes and input resolution, which the paper text available to us does not fully
state; ours are chosen per profile (``DataSettings.head_sizes`` and ``decoder_dim`` in
``lifestudy.profiles``), so compare differences between variants, not absolute sizes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lifestudy import paper
from lifestudy.complexity import count_macs, count_params
from lifestudy.dense.detr import DetrHeadConfig, build_detector
from lifestudy.dense.segmenter import build_segmenter

__all__ = ["detector_complexity", "segmenter_complexity"]


class _Outputs(nn.Module):
    """The detector's final predictions as a tuple (what fvcore's tracer accepts)."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor):
        out = self.detector(images)
        return out["pred_logits"], out["pred_boxes"]


def _count(model: nn.Module, wrapped: nn.Module, img_size, in_chans: int) -> dict[str, Any]:
    H, W = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    macs, by_op, _ = count_macs(wrapped, torch.randn(1, in_chans, H, W))
    bb_macs, _, _ = count_macs(model.backbone, torch.randn(1, in_chans, H, W))
    params = count_params(model)
    bb_params = count_params(model.backbone)  # built without a classifier
    return {
        "img_size": [H, W],
        "params": params,
        "params_m": params / 1e6,
        "backbone_params_m": bb_params / 1e6,
        "head_params_m": (params - bb_params) / 1e6,
        "gmacs": macs / 1e9,
        "backbone_gmacs": bb_macs / 1e9,
        "head_gmacs": (macs - bb_macs) / 1e9,
    }


def detector_complexity(backbone: str, head: str = "encdec", num_classes: int = 20,
                        img_size: int | tuple[int, int] = 224, in_chans: int = 3,
                        sizes: DetrHeadConfig | None = None, **head_kwargs: Any) -> dict[str, Any]:
    """Params and GMACs of a detector; ``paper`` holds the paper's row for ``head`` when
    the backbone is DeiT-T (its detection table is for DeiT-T backbones).

    Args:
        backbone: a registered timm name.
        head: one of :data:`lifestudy.dense.HEADS`.
        num_classes: object classes (VOC: 20).
        img_size: ``(H, W)`` or one side.
        in_chans: image channels.
        sizes, head_kwargs: head sizes, as for :func:`lifestudy.dense.build_detector`.
    """
    det = build_detector(backbone, head=head, num_classes=num_classes, img_size=img_size,
                         in_chans=in_chans, aux_loss=False, sizes=sizes, **head_kwargs)
    row = paper.DETECTION.get(head) if backbone.startswith("deit_tiny_patch16") else None
    return {"model": backbone, "head": head, "head_config": det.head_config, "num_classes": num_classes,
            **_count(det, _Outputs(det), img_size, in_chans),
            "paper": dict(row, label=paper.LABEL) if row else None}


def segmenter_complexity(backbone: str, num_classes: int = 19, img_size: int | tuple[int, int] = 224,
                         in_chans: int = 3, dim: int = 256, **kwargs: Any) -> dict[str, Any]:
    """Params and GMACs of a segmenter; ``paper`` holds the paper's Cityscapes row for
    DeiT-T and DeiT-T-LIFE backbones.

    Args:
        backbone: a registered timm name.
        num_classes: classes (Cityscapes: 19).
        img_size: ``(H, W)`` or one side.
        in_chans: image channels.
        dim: decoder width.
        kwargs: passed to :func:`lifestudy.dense.build_segmenter`.
    """
    seg = build_segmenter(backbone, num_classes=num_classes, img_size=img_size, in_chans=in_chans,
                          dim=dim, **kwargs)
    key = {"deit_tiny_patch16_224": "deit_tiny", "deit_tiny_patch16_224_life": "deit_tiny_life"}.get(backbone)
    row = paper.SEGMENTATION.get(key) if key else None
    return {"model": backbone, "head_config": seg.head_config, "num_classes": num_classes,
            **_count(seg, seg, img_size, in_chans),
            "paper": dict(row, label=paper.LABEL) if row else None}
