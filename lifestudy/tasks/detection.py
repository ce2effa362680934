"""Object detection: a timm backbone with a DETR-style head, trained by the shared engine.

``lifestudy train --task detection --data scenes-det --model deit_micro_patch4_32_life
--head encdec-life --profile cpu --seed 0 --out runs/cpu/detection/...`` builds
:func:`lifestudy.dense.build_detector` (``--model`` is the backbone, ``--head`` one of
``encdec``, ``encdec-linear``, ``encdec-life``; ``--init CKPT`` starts the backbone from a
classification run of ours), trains it with DETR's set loss
(:class:`lifestudy.dense.SetCriterion`) and evaluates COCO mAP, VOC mAP@0.5 and F1 at
IoU 0.5 (:class:`lifestudy.dense.DetectionMetrics`, whose docstring states the F1
score-threshold rule). ``TrainConfig.options`` (the profile's dataset settings, then the
run's own) set the head's sizes as changes to DETR's (``{"head_sizes": {"enc_depth": 3}}``),
the number of scene canvases (``train_length``, ``test_length``) and whether to load timm's
pretrained backbone weights (``pretrained``). The head sizes include DETR's convergence aids
(focal loss, reference boxes, spatial prior, query groups: fields of
:class:`lifestudy.dense.DetrHeadConfig`, each with its source); the loss and the scores
follow the head's choice (:func:`criterion_for`).
"""

from __future__ import annotations

import torch
from torch import nn

from lifestudy.dense import (DetectionMetrics, DetrHeadConfig, LossWeights, SetCriterion, build_detector,
                             normalize_boxes, postprocess)
from lifestudy.dense.backbone import patch_grid
from lifestudy.dense.transforms import build_dense_datasets, collate_dense
from lifestudy.errors import ConfigError
from lifestudy.tasks.base import Task, register_task
from lifestudy.weights import unwrap

__all__ = ["Detection", "head_sizes", "SCORE_THRESHOLD"]

#: The F1 rule's score threshold (see lifestudy.dense.metrics).
SCORE_THRESHOLD = 0.5


def head_sizes(options: dict) -> DetrHeadConfig:
    """A run's head sizes: DETR's, changed by ``options["head_sizes"]`` (``TrainConfig.options``)."""
    return DetrHeadConfig().replace(**dict((options or {}).get("head_sizes", {})))


@register_task("detection")
class Detection(Task):
    headline_metric = "map_50"
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
            drop_path_rate=float(cfg.recipe.get("drop_path", 0.0)), sizes=head_sizes(options),
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
        return self.criterion(model(images, norm_targets), norm_targets)  # targets: denoising queries

    @torch.no_grad()
    def evaluate(self, model, loader, device) -> dict[str, float]:
        metric = DetectionMetrics(model_num_classes(model), score_threshold=SCORE_THRESHOLD, class_metrics=False)
        sigmoid = unwrap(model).head.config.focal
        for images, targets in loader:
            images = images.to(device)
            metric.update(postprocess(model(images), images.shape[-2:], sigmoid=sigmoid), targets)
        return {k: v for k, v in metric.compute().items() if isinstance(v, float)}


def model_num_classes(model: nn.Module) -> int:
    """Object classes of a (possibly DDP- or compile-wrapped) detector."""
    return int(unwrap(model).num_classes)


def criterion_for(model: nn.Module) -> SetCriterion:
    """The set loss the detector's head config asks for (weights; focal or softmax)."""
    inner = unwrap(model)
    return SetCriterion(inner.num_classes, LossWeights.from_head(inner.head.config))
