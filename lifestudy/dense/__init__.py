"""Dense prediction on ViT backbones: DETR-style detection heads and a segmentation decoder.

The paper (Akkaya et al., arXiv 2305.08551) shows LIFE's gain carries over to Pascal VOC
detection with encoder–decoder heads and to Cityscapes segmentation; its code has neither,
so this package builds them: :func:`build_detector` (heads ``encdec``, ``encdec-linear``,
``encdec-life``; Hungarian matching and DETR's losses in :mod:`~lifestudy.dense.matching`),
:func:`build_segmenter` (SETR-PUP style decoder), and their metrics
(:mod:`~lifestudy.dense.metrics`). Offline, both run on the generated ``scenes``.
"""

from lifestudy.dense.backbone import create_backbone, feature_grid, load_backbone_checkpoint
from lifestudy.dense.detr import HEADS, DetrHead, DetrHeadConfig, Detector, build_detector, postprocess
from lifestudy.dense.matching import LossWeights, SetCriterion, hungarian_match, normalize_boxes
from lifestudy.dense.metrics import DetectionMetrics, SegmentationMetrics, detection_counts
from lifestudy.dense.segmenter import PUPDecoder, Segmenter, build_segmenter

__all__ = [
    "HEADS",
    "build_detector",
    "build_segmenter",
    "Detector",
    "DetrHead",
    "DetrHeadConfig",
    "Segmenter",
    "PUPDecoder",
    "SetCriterion",
    "LossWeights",
    "hungarian_match",
    "normalize_boxes",
    "postprocess",
    "DetectionMetrics",
    "SegmentationMetrics",
    "detection_counts",
    "create_backbone",
    "feature_grid",
    "load_backbone_checkpoint",
]
