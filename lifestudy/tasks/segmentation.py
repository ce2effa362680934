"""Semantic segmentation: a timm backbone with a progressive-upsampling decoder.

``lifestudy train --task segmentation --data scenes-seg --model deit_micro_patch4_32_life
--profile cpu --seed 0 --img-size 32 64 --out runs/cpu/segmentation/...`` builds
:func:`lifestudy.dense.build_segmenter` (``--model`` is the backbone; ``--init CKPT``
starts it from a classification run of ours), trains per-pixel cross-entropy (pixels
labelled ``ignore_index`` left out) and evaluates mIoU, per-class IoU and pixel accuracy
(:class:`lifestudy.dense.SegmentationMetrics`). Any ``--img-size H W`` that the patch size
divides works (Cityscapes is 2:1; scenes are drawn at the run's size).
``TrainConfig.options`` (the profile's dataset settings, then the run's own) set the
decoder width (``{"decoder_dim": 128}``; default SETR-PUP's 256), the number of scene
canvases (``train_length``, ``test_length``) and whether to load timm's pretrained backbone
weights (``pretrained``).

Class imbalance: ``options["seg_loss"]`` (the profile's ``DataSettings.seg_loss``; the
fields of :class:`lifestudy.dense.segmenter.SegLossConfig`, each remedy's source in
:mod:`lifestudy.dense.segmenter`) may weight the cross-entropy by the training pixels'
class frequencies (``class_weighting``: ``none`` | ``median`` | ``enet`` |
``inverse_sqrt``), add a soft Dice loss (``dice_weight``) and start the classifier's bias
at the log class frequencies (``prior_init``). The frequencies are counted once, before
training, over the training split (generated scenes: every canvas, from their cache).
The per-epoch ``loss_ce`` / ``loss_dice`` go to ``metrics.csv``.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from lifestudy.dense import SegmentationMetrics, build_segmenter
from lifestudy.dense.backbone import patch_grid
from lifestudy.dense.segmenter import (
    SegLossConfig,
    SegmentationLoss,
    class_weights,
    init_class_prior,
    pixel_frequencies,
)
from lifestudy.dense.transforms import build_dense_datasets, collate_dense
from lifestudy.errors import ConfigError
from lifestudy.tasks.base import Task, register_task
from lifestudy.weights import unwrap

__all__ = ["Segmentation", "DECODER_DIM", "decoder_dim"]

#: Decoder width when the run's options name none (SETR-PUP's).
DECODER_DIM = 256


def decoder_dim(options: dict) -> int:
    """A run's decoder width: ``options["decoder_dim"]`` (``TrainConfig.options``), else SETR-PUP's."""
    return int((options or {}).get("decoder_dim", DECODER_DIM))


@register_task("segmentation")
class Segmentation(Task):
    headline_metric = "miou"
    collate_fn = staticmethod(collate_dense)

    def __init__(self) -> None:
        self.ignore_index = 255
        self.class_names: tuple[str, ...] = ()
        self.criterion = SegmentationLoss()
        self._train = None  # the training split build_datasets made: prepare counts its classes

    def build_model(self, cfg, spec) -> nn.Module:
        if spec.task != "segmentation":
            raise ConfigError(
                f"--task segmentation needs a segmentation dataset, but {spec.name!r} is for "
                f"{spec.task}; use scenes-seg (offline), voc-seg or cityscapes"
            )
        if cfg.head not in (None, "", "pup"):
            raise ConfigError(f"--head {cfg.head} is a detection head; segmentation has one decoder (leave --head out)")
        self._remember(spec)
        options = cfg.options or {}
        model = build_segmenter(
            cfg.model, num_classes=spec.num_classes, img_size=tuple(cfg.img_size), in_chans=spec.in_chans,
            pretrained=bool(options.get("pretrained", False)), init=cfg.init,
            drop_path_rate=float(cfg.recipe.get("drop_path", 0.0)),
            dim=decoder_dim(options),
        )
        patch_grid(model.backbone, *cfg.img_size)  # a size the patch does not divide fails here, not mid-run
        return model

    def _remember(self, spec) -> None:
        self.ignore_index = 255 if spec.ignore_index is None else int(spec.ignore_index)
        self.class_names = tuple(spec.class_names)

    def build_datasets(self, cfg, spec):
        train, test = build_dense_datasets(cfg, spec)
        self._remember(getattr(test, "spec", spec))  # the data's own class names (scenes: its item source)
        self._train = train
        return train, test

    def prepare(self, model, cfg, spec, device) -> None:
        self._remember(spec)
        SegmentationMetrics(spec.num_classes)  # imports torchmetrics now, not inside the timed evaluation
        loss_cfg = SegLossConfig.from_options(cfg.options)
        weights = None
        if loss_cfg.needs_frequencies:
            train = self._train if self._train is not None else self.build_datasets(cfg, spec)[0]
            freq = pixel_frequencies(train, spec.num_classes, self.ignore_index)
            weights = class_weights(freq, loss_cfg.class_weighting)
            if loss_cfg.prior_init:  # a resumed run's checkpoint replaces it, as it should
                init_class_prior(unwrap(model), freq.to(device))
        self.criterion = SegmentationLoss(loss_cfg, weights, self.ignore_index)

    def loss(self, model, batch, cfg):
        images, targets = batch
        labels = torch.stack([t["semantic"].as_subclass(torch.Tensor) for t in targets]).long()
        return self.criterion(model(images), labels)

    @torch.no_grad()
    def evaluate(self, model, loader, device) -> dict[str, float]:
        num_classes = unwrap(model).num_classes
        metric = SegmentationMetrics(num_classes, ignore_index=self.ignore_index)
        for images, targets in loader:
            labels = torch.stack([t["semantic"].as_subclass(torch.Tensor) for t in targets])
            metric.update(model(images.to(device)), labels)
        res = metric.compute()
        out = {"miou": res["miou"], "pixel_acc": res["pixel_acc"]}
        # The evaluated data's own class names (scenes: those of its item source), else the run's.
        data_spec = getattr(getattr(loader, "dataset", None), "spec", None)
        names = tuple(data_spec.class_names) if data_spec is not None else self.class_names
        if len(names) != num_classes:
            names = [str(i) for i in range(num_classes)]
        for name, iou in zip(names, res["iou_per_class"]):
            out[f"iou_{re.sub(r'[^0-9A-Za-z]+', '_', name).strip('_').lower()}"] = iou
        return out
