"""Image classification with the DeiT recipe, and DeiT's hard distillation through the
distillation token.

Learned from: DeiT (Touvron et al., "Training data-efficient image transformers &
distillation through attention", ICML 2021; facebookresearch/deit ``main.py``,
``losses.py: DistillationLoss``) and timm's ``train.py``. Every piece of the recipe is
timm's own: ``Mixup`` (mixup + cutmix with label smoothing), ``SoftTargetCrossEntropy`` /
``LabelSmoothingCrossEntropy``, ``rand_augment_transform``, ``RandomErasing`` and
``create_transform``. Images of at most 64 px use a random crop with padding instead of
a random-resized crop (the usual small-image choice, as in the LIFE paper).

Distillation (``--teacher RUN``; the engine loads the teacher and hands it over with
:meth:`Task.set_teacher`): a distilled DeiT (``*_distilled_*``) returns
``(x_cls, x_dist)`` in training once ``set_distilled_training(True)``; the loss is
``(1 - alpha) * CE(x_cls, y) + alpha * CE(x_dist, argmax teacher(x))`` with alpha 0.5,
the teacher seeing the same (augmented, mixed) images. In eval mode timm averages the
two heads, which is DeiT's inference rule.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms

from lifestudy.errors import ConfigError
from lifestudy.models import build_classifier
from lifestudy.tasks import memory
from lifestudy.tasks.base import Task, register_task
from lifestudy.weights import unwrap

__all__ = ["Classification", "build_classifier", "classification_transforms"]

#: Largest side (px) treated as a small image: random crop with padding, no resized crop.
SMALL_IMAGE = 64


def _fill(mean, in_chans):
    """RandAugment's fill colour: the dataset mean in 0..255 (an int for grey images)."""
    fill = tuple(int(round(255 * m)) for m in mean)
    return fill[0] if in_chans == 1 else fill


def _posterize(img, bits_to_keep, **_):
    """timm's posterize, also for 0 bits: a black image, as Pillow < 10 gave (Pillow >= 10
    rejects 0 bits, which RandAugment's 'PosterizeIncreasing' reaches at magnitude 10)."""
    from PIL import ImageOps

    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return img.point(lambda _: 0)
    return ImageOps.posterize(img, bits_to_keep)


def _pillow_safe(tf):
    """Patch the posterize ops of every timm RandAugment inside ``tf`` (see :func:`_posterize`)."""
    from timm.data import auto_augment

    stack = [tf]
    while stack:
        t = stack.pop()
        if isinstance(t, auto_augment.RandAugment):
            for op in t.ops:
                if op.aug_fn is auto_augment.posterize:
                    op.aug_fn = _posterize
        stack.extend(getattr(t, "transforms", []) or [])
    return tf


def _to_size(spec, img_size) -> list:
    """Bring stored images to ``img_size``: nothing when they already have it; a zero
    border when they are at most 8 px smaller (Fashion-MNIST 28 -> 32, keeping its
    pixels as they are); else a bicubic resize (digits 8 -> 32)."""
    H, W = img_size
    native = getattr(spec, "native_size", None)
    if native is not None and tuple(native) == (H, W):
        return []
    if native is not None and 0 <= H - native[0] <= 8 and 0 <= W - native[1] <= 8:
        top, left = (H - native[0]) // 2, (W - native[1]) // 2
        return [transforms.Pad((left, top, W - native[1] - left, H - native[0] - top), fill=0)]
    return [transforms.Resize((H, W), interpolation=transforms.InterpolationMode.BICUBIC)]


def classification_transforms(recipe: dict, spec, img_size, train: bool):
    """The DeiT training / evaluation transforms for ``spec``'s images at ``img_size``.

    Args:
        recipe: the resolved recipe (``cfg.recipe``).
        spec: the dataset's ``DatasetSpec`` (mean, std, in_chans, native input_size).
        img_size: (H, W) the model sees.
        train: training (augmenting) or evaluation transforms.
    """
    from timm.data import create_transform, rand_augment_transform
    from timm.data.random_erasing import RandomErasing

    H, W = img_size
    mean, std = tuple(spec.mean), tuple(spec.std)
    if max(H, W) > SMALL_IMAGE:
        return _pillow_safe(create_transform(
            input_size=(spec.in_chans, H, W),
            is_training=train,
            hflip=recipe["hflip"],
            auto_augment=recipe["randaugment"] if train else None,
            interpolation="bicubic",
            re_prob=recipe["reprob"] if train else 0.0,
            re_mode="pixel",
            re_count=1,
            mean=mean,
            std=std,
        ))
    steps = _to_size(spec, (H, W))
    if train:
        if recipe["crop_padding"]:
            steps.append(transforms.RandomCrop((H, W), padding=recipe["crop_padding"]))
        if recipe["hflip"] > 0:
            steps.append(transforms.RandomHorizontalFlip(recipe["hflip"]))
        if recipe["randaugment"]:
            hparams = {"translate_const": int(min(H, W) * 0.45), "img_mean": _fill(mean, spec.in_chans)}
            steps.append(_pillow_safe(rand_augment_transform(recipe["randaugment"], hparams)))
    steps += [transforms.ToTensor(), transforms.Normalize(mean, std)]
    if train and recipe["reprob"] > 0:
        steps.append(RandomErasing(recipe["reprob"], mode="pixel", max_count=1, device="cpu"))
    return transforms.Compose(steps)


@register_task("classification")
class Classification(Task):
    """Classification on the study's datasets (items: ``(PIL image, label)``)."""

    headline_metric = "top1"
    shard_eval = True  # torchmetrics metrics synchronise across processes
    collate_fn = staticmethod(memory.collate)  # batches of the in-memory path pass through

    def __init__(self):
        self.mixup = None
        self.train_loss_fn: nn.Module | None = None
        self.teacher: nn.Module | None = None
        self.alpha = 0.5
        self.pipeline = "pil"  # "memory" when build_datasets holds the data as tensors

    def build_model(self, cfg, spec) -> nn.Module:
        model = build_classifier(
            cfg.model, spec.num_classes, spec.in_chans, cfg.img_size, cfg.recipe.get("drop_path", 0.0)
        )
        if cfg.teacher and not hasattr(model, "set_distilled_training"):
            raise ConfigError(
                f"--teacher needs a model with a distillation token, e.g. "
                f"deit_tiny_distilled_patch4_32(_life); {cfg.model!r} has none"
            )
        return model

    def build_datasets(self, cfg, spec):
        """``(train, test)``. Small in-memory datasets (digits, Fashion-MNIST, CIFAR) without
        RandAugment are held as tensors and augmented a batch at a time
        (:mod:`lifestudy.tasks.memory`); anything else goes through the PIL transforms."""
        from lifestudy.data import build_dataset

        train_raw = build_dataset(cfg.data, "train", root=cfg.root, subset_per_class=cfg.subset, seed=cfg.seed)
        if memory.can_hold(train_raw, cfg.recipe, cfg.img_size, SMALL_IMAGE):
            self.pipeline = "memory"
            r = cfg.recipe
            augment = memory.BatchAugment(spec.mean, spec.std, r["crop_padding"], r["hflip"], r["reprob"])
            train_ds = memory.tensor_images(train_raw, _to_size(spec, cfg.img_size), spec, augment)
        else:
            self.pipeline = "pil"
            getattr(train_raw, "dataset", train_raw).transform = classification_transforms(  # a subset's base
                cfg.recipe, spec, cfg.img_size, train=True)
            train_ds = train_raw
        return train_ds, self.build_eval_dataset(cfg, spec)

    def build_eval_dataset(self, cfg, spec):
        """The test split (the recipe's fixed ``eval_subset`` of it), as tensors in memory
        when it can be held (the same pixels as the PIL transforms give), else with them."""
        from lifestudy.data import build_dataset

        eval_ds = build_dataset(cfg.data, "test", root=cfg.root)
        in_memory = memory.can_hold(eval_ds, cfg.recipe, cfg.img_size, SMALL_IMAGE)
        if not in_memory:
            eval_ds.transform = classification_transforms(cfg.recipe, spec, cfg.img_size, train=False)
        n = cfg.recipe.get("eval_subset")
        if n and n < len(eval_ds):
            # A fixed, class-mixed slice of the test set (same for every run and seed).
            idx = torch.randperm(len(eval_ds), generator=torch.Generator().manual_seed(0))[:n]
            eval_ds = torch.utils.data.Subset(eval_ds, sorted(idx.tolist()))
        if in_memory:
            return memory.tensor_images(eval_ds, _to_size(spec, cfg.img_size), spec, None)
        return eval_ds

    def prepare(self, model, cfg, spec, device) -> None:
        from timm.data import Mixup
        from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

        r = cfg.recipe
        if r["mixup"] > 0 or r["cutmix"] > 0:
            self.mixup = Mixup(
                mixup_alpha=r["mixup"],
                cutmix_alpha=r["cutmix"],
                prob=r["mixup_prob"],
                switch_prob=r["mixup_switch_prob"],
                label_smoothing=r["label_smoothing"],
                num_classes=spec.num_classes,
            )
            self.train_loss_fn = SoftTargetCrossEntropy()
        elif r["label_smoothing"] > 0:
            self.train_loss_fn = LabelSmoothingCrossEntropy(smoothing=r["label_smoothing"])
        else:
            self.train_loss_fn = nn.CrossEntropyLoss()
        self.alpha = r["distill_alpha"]
        if self.teacher is not None:
            model.set_distilled_training(True)

    def set_teacher(self, teacher: nn.Module) -> None:
        self.teacher = teacher

    def loss(self, model, batch, cfg):
        x, y = batch
        if self.mixup is not None:
            if len(x) % 2:
                raise ConfigError(
                    f"mixup/cutmix need an even batch per process, got {len(x)}; change --batch-size"
                )
            x, target = self.mixup(x, y)
        else:
            target = y
        out = model(x)
        if self.teacher is None:
            loss = self.train_loss_fn(out, target)
            return loss, {}
        out_cls, out_dist = out
        with torch.no_grad():
            teacher_labels = self.teacher(x).argmax(dim=1)
        base = self.train_loss_fn(out_cls, target)
        distill = F.cross_entropy(out_dist, teacher_labels)
        loss = (1 - self.alpha) * base + self.alpha * distill
        return loss, {"loss_cls": base.detach(), "loss_distill": distill.detach()}

    @torch.no_grad()
    def evaluate(self, model, loader, device):
        from torchmetrics import MeanMetric
        from torchmetrics.classification import MulticlassAccuracy

        num_classes = _num_classes(model)
        top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro").to(device)
        top5 = MulticlassAccuracy(num_classes, top_k=5, average="micro").to(device) if num_classes > 5 else None
        loss = MeanMetric().to(device)
        for x, y in loader:
            x, y = self.to_device((x, y), device)
            logits = model(x).float()
            top1.update(logits, y)
            if top5 is not None:
                top5.update(logits, y)
            loss.update(F.cross_entropy(logits, y, reduction="none"))
        metrics = {"top1": 100.0 * top1.compute().item(), "loss": loss.compute().item()}
        if top5 is not None:
            metrics["top5"] = 100.0 * top5.compute().item()
        return metrics


def _num_classes(model: nn.Module) -> int:
    n = getattr(unwrap(model), "num_classes", None)
    if n is None:
        raise ConfigError(f"cannot tell the number of classes of {type(model).__name__}")
    return int(n)

