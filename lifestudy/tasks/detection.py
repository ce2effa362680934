"""Object detection: a timm backbone with a DETR-style head, trained by the shared engine.

``lifestudy train --task detection --data scenes-det --model deit_micro_patch4_32_life
--head encdec-life --profile cpu --seed 0 --out runs/cpu/detection/...`` builds
:func:`lifestudy.dense.build_detector` (``--model`` is the backbone, ``--head`` one of
``encdec``, ``encdec-linear``, ``encdec-life``; ``--init CKPT`` starts the backbone from a
classification run of ours), trains it with DETR's set loss
(:class:`lifestudy.dense.SetCriterion`) and evaluates COCO mAP, VOC mAP@0.5 and F1 at
IoU 0.5 (:class:`lifestudy.dense.DetectionMetrics`, whose docstring states the F1
score-threshold rule). The head's sizes depend on the profile (:data:`HEAD_SIZES`);
``TrainConfig.options`` may change them (``{"head_sizes": {"enc_depth": 3}}``), set the
number of scene canvases (``train_length``, ``test_length``; default
``lifestudy.dense.transforms.SCENE_CANVASES`` of the profile) or ask for timm's pretrained
backbone weights (``pretrained``).
"""

from __future__ import annotations

import torch
from torch import nn

from lifestudy.dense import (DetectionMetrics, DetrHeadConfig, LossWeights, SetCriterion, build_detector,
                             normalize_boxes, postprocess)
from lifestudy.dense.backbone import patch_grid
from lifestudy.dense.transforms import build_dense_datasets, collate_dense
from lifestudy.errors import ConfigError
from lifestudy.tasks import register_task
from lifestudy.tasks.base import Task

__all__ = ["Detection", "HEAD_SIZES", "SCORE_THRESHOLD"]

#: Head sizes and convergence aids per profile (fields of DetrHeadConfig, each documented
#: there with its source). smoke: the least that runs, with the cpu profile's aids; cpu: a
#: quarter of DETR's width and a third of its depth, with reference boxes refined layer by
#: layer (DAB-DETR), the SMCA spatial prior on cross-attention, sigmoid focal loss in loss
#: and matching (Deformable DETR, class weight 2) and 4 query groups of 16 (Group DETR);
#: auxiliary decoding losses are on everywhere. Measured on the scenes (cpu profile, one
#: seed, 6 epochs): these aids move class-agnostic mAP@0.5 from ~11 % to ~14 %, while
#: class-aware mAP@0.5 stays below 2 % (see the detection chapter). paper: DETR's sizes
#: and training (width 256, 6 + 6 layers, MLP 2048, 100 queries, softmax, no aids but
#: the auxiliary losses).
HEAD_SIZES: dict[str, DetrHeadConfig] = {
    "smoke": DetrHeadConfig(dim=48, num_heads=3, enc_depth=1, dec_depth=1, mlp_ratio=2.0, num_queries=10,
                            box_refine=True, spatial_prior=True, focal=True, class_weight=2.0, query_groups=2),
    "cpu": DetrHeadConfig(dim=96, num_heads=3, enc_depth=2, dec_depth=2, mlp_ratio=2.0, num_queries=16,
                          box_refine=True, spatial_prior=True, focal=True, class_weight=2.0, query_groups=4),
    "paper": DetrHeadConfig(),
}

#: The F1 rule's score threshold (see lifestudy.dense.metrics).
SCORE_THRESHOLD = 0.5


def head_sizes(cfg) -> DetrHeadConfig:
    """The run's head sizes: the profile's, changed by ``cfg.options["head_sizes"]``."""
    base = HEAD_SIZES.get(cfg.profile, DetrHeadConfig())
    return base.replace(**dict((cfg.options or {}).get("head_sizes", {})))


@register_task("detection")
class Detection(Task):
    headline_metric = "map_50"
    higher_is_better = True
    collate_fn = staticmethod(collate_dense)

    def __init__(self) -> None:
        self.criterion: SetCriterion | None = None

    def build_model(self, cfg, spec) -> nn.Module:
        if spec.task != "detection":
            raise ConfigError(
                f"--task detection needs a detection dataset, but {spec.name!r} is for "
                f"{spec.task}; use scenes-det (offline) or voc-det"
            )
        options = cfg.options or {}
        model = build_detector(
            cfg.model, head=cfg.head or "encdec", num_classes=spec.num_classes,
            img_size=tuple(cfg.img_size), in_chans=spec.in_chans,
            pretrained=bool(options.get("pretrained", False)), init=cfg.init,
            drop_path_rate=float(cfg.recipe.get("drop_path", 0.0)), sizes=head_sizes(cfg),
        )
        patch_grid(model.backbone, *cfg.img_size)  # a size the patch does not divide fails here, not mid-run
        return model

    def build_datasets(self, cfg, spec):
        return build_dense_datasets(cfg, spec)

    def prepare(self, model, cfg, spec, device) -> None:
        self.criterion = criterion_for(model).to(device)
        DetectionMetrics(spec.num_classes)  # imports torchmetrics now, not inside the timed evaluation

    def loss(self, model, batch, cfg):
        images, targets = batch
        if self.criterion is None:
            self.criterion = criterion_for(model).to(images.device)
        H, W = images.shape[-2:]
        norm_targets = [{"labels": t["labels"], "boxes": normalize_boxes(t["boxes"], (H, W))} for t in targets]
        return self.criterion(model(images), norm_targets)

    @torch.no_grad()
    def evaluate(self, model, loader, device) -> dict[str, float]:
        metric = DetectionMetrics(model_num_classes(model), score_threshold=SCORE_THRESHOLD, class_metrics=False)
        sigmoid = _inner(model).head.config.focal
        for images, targets in loader:
            images = images.to(device)
            metric.update(postprocess(model(images), images.shape[-2:], sigmoid=sigmoid), targets)
        return {k: v for k, v in metric.compute().items() if isinstance(v, float)}


def _inner(model: nn.Module) -> nn.Module:
    """The detector inside a DDP / EMA / torch.compile wrapper."""
    for attr in ("module", "_orig_mod", "module"):
        model = getattr(model, attr, model)
    return model


def model_num_classes(model: nn.Module) -> int:
    """Object classes of a (possibly DDP- or EMA-wrapped) detector."""
    return int(_inner(model).num_classes)


def criterion_for(model: nn.Module) -> SetCriterion:
    """The set loss the detector's head config asks for (weights, focal or softmax)."""
    inner = _inner(model)
    return SetCriterion(inner.num_classes, LossWeights.from_head(inner.head.config))
