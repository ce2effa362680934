"""Semantic segmentation on a ViT backbone: a light progressive-upsampling decoder.

Learned from SETR (Zheng et al., "Rethinking Semantic Segmentation from a
Sequence-to-Sequence Perspective with Transformers", CVPR 2021), whose PUP decoder
upsamples the ViT's patch-token grid by 2x per stage (3x3 conv, norm, ReLU, bilinear
upsampling) until the input resolution, then classifies every pixel with a 1x1 conv.
Here the stages stop once the grid is at most 2x below the image (patch 4: one stage;
patch 16: three), the classifier runs there, and the logits are resized bilinearly to the
exact ``H x W`` of the input — so any ``H x W`` that the patch size divides works, e.g.
Cityscapes' 2:1 frames.

``segmenter.backbone`` is the timm model itself (prefix tokens kept inside it), so
attention roll-out and checkpoint initialisation address it like a classifier.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lifestudy.dense.backbone import (
    backbone_stride,
    backbone_width,
    create_backbone,
    feature_grid,
    describe_dense_model,
    load_backbone_checkpoint,
)

__all__ = ["PUPDecoder", "Segmenter", "build_segmenter"]


class PUPDecoder(nn.Module):
    """SETR-PUP style decoder: ``num_stages`` x (3x3 conv, BatchNorm, ReLU, 2x bilinear
    upsampling), then a 1x1 classifier.

    Args:
        in_dim: channels of the backbone's feature grid.
        num_classes: classes K.
        dim: decoder width.
        num_stages: upsampling stages (each 2x).
    """

    def __init__(self, in_dim: int, num_classes: int, dim: int = 256, num_stages: int = 2):
        super().__init__()
        stages = []
        for i in range(num_stages):
            stages.append(nn.Sequential(
                nn.Conv2d(in_dim if i == 0 else dim, dim, 3, padding=1, bias=False),
                nn.BatchNorm2d(dim),
                nn.ReLU(inplace=True),
            ))
        self.stages = nn.ModuleList(stages)
        self.classifier = nn.Conv2d(dim if num_stages else in_dim, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = F.interpolate(stage(x), scale_factor=2, mode="bilinear", align_corners=False)
        return self.classifier(x)


class Segmenter(nn.Module):
    """``segmenter(images)`` -> logits (B, K, H, W) at the input's resolution."""

    def __init__(self, backbone: nn.Module, decoder: PUPDecoder):
        super().__init__()
        self.backbone = backbone
        self.decoder = decoder

    @property
    def num_classes(self) -> int:
        return self.decoder.classifier.out_channels

    def describe(self) -> dict[str, Any]:
        """Head sizes, parameters (backbone / head) and what ``--init`` loaded, for records."""
        return describe_dense_model(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        H, W = images.shape[-2:]
        logits = self.decoder(feature_grid(self.backbone, images))
        if logits.shape[-2:] != (H, W):
            logits = F.interpolate(logits, size=(H, W), mode="bilinear", align_corners=False)
        return logits


def build_segmenter(backbone: str, num_classes: int, img_size: tuple[int, int] | int = 224,
                    in_chans: int = 3, pretrained: bool = False, init: str | None = None,
                    drop_path_rate: float = 0.0, dim: int = 256, num_stages: int | None = None,
                    **backbone_kwargs: Any) -> Segmenter:
    """A segmenter: timm backbone + :class:`PUPDecoder`.

    Args:
        backbone: a registered timm name, e.g. ``deit_tiny_patch16_224_life``.
        num_classes: classes K (background included where the dataset has one).
        img_size: ``(H, W)``; any size the patch divides (others work at run time too).
        in_chans: image channels.
        pretrained: start the backbone from timm's pretrained weights.
        init: a classification checkpoint (or run folder) of ours for the backbone; what
            loaded is kept in ``segmenter.init_report``.
        drop_path_rate: the backbone's stochastic depth.
        dim: decoder width.
        num_stages: 2x upsampling stages; default: until the grid is at most 2x coarser
            than the image (log2(stride) - 1).
        backbone_kwargs: passed to ``timm.create_model``.
    """
    bb = create_backbone(backbone, img_size, in_chans=in_chans, pretrained=pretrained,
                         drop_path_rate=drop_path_rate, **backbone_kwargs)
    if num_stages is None:
        num_stages = max(int(math.log2(max(backbone_stride(bb)))) - 1, 0)
    seg = Segmenter(bb, PUPDecoder(backbone_width(bb), num_classes, dim=dim, num_stages=num_stages))
    seg.head_config = {"dim": dim, "num_stages": num_stages}
    seg.init_report = load_backbone_checkpoint(bb, init) if init else None
    return seg
