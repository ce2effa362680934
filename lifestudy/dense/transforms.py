"""Transforms and batching for dense tasks: images, boxes and masks kept aligned.

torchvision's ``transforms.v2`` transform an image together with its ``tv_tensors``
targets (``BoundingBoxes``, ``Mask``): a flip or resize moves the boxes and resamples
the masks (nearest neighbour) with the image, as in torchvision's detection and
segmentation reference scripts (``references/detection/presets.py``). Training adds a
horizontal flip; both splits resize to the run's ``(H, W)`` when the data is stored at
another size, scale to [0, 1] floats and normalise with the dataset's statistics.
Boxes that a transform leaves empty are dropped with their labels
(``SanitizeBoundingBoxes``).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torchvision.transforms import v2

__all__ = ["dense_transform", "collate_dense", "scene_options", "build_dense_datasets"]


def dense_transform(spec, img_size: tuple[int, int], train: bool, hflip: float = 0.5,
                    resize: bool = True) -> v2.Compose:
    """The v2 pipeline for one split.

    Args:
        spec: the dataset's ``DatasetSpec`` (mean, std, task).
        img_size: ``(H, W)`` the model sees.
        train: add the training augmentation (horizontal flip).
        hflip: flip probability (training only).
        resize: resize to ``img_size`` (off when the data is generated at that size).
    """
    ops: list[Any] = []
    if resize:
        ops.append(v2.Resize(tuple(img_size), antialias=True))
    if train and hflip > 0:
        ops.append(v2.RandomHorizontalFlip(hflip))
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(spec.mean), list(spec.std))]
    if spec.task == "detection":
        ops.append(v2.SanitizeBoundingBoxes(min_size=1.0, labels_getter=_per_box_fields))
    return v2.Compose(ops)


def _per_box_fields(inputs: Any) -> tuple[torch.Tensor, ...]:
    """The target fields that have one entry per box (``labels``, VOC's ``difficult``),
    so ``SanitizeBoundingBoxes`` drops them together with their boxes."""
    target = inputs[1] if isinstance(inputs, (tuple, list)) and len(inputs) > 1 else inputs
    return tuple(target[k] for k in ("labels", "difficult") if k in target)


def collate_dense(batch: Sequence[tuple[torch.Tensor, dict[str, torch.Tensor]]]):
    """``[(image, target), ...]`` -> ``(images (B, C, H, W), [target, ...])``; every image
    of a batch has the same size (the transforms resize them)."""
    images = torch.stack([img.as_subclass(torch.Tensor) for img, _ in batch])
    return images, [tgt for _, tgt in batch]


def scene_options(data: str, img_size: tuple[int, int], options: dict[str, Any], split: str) -> dict[str, Any]:
    """``build_dataset`` options of a run: for generated scenes, canvases drawn at the
    run's size (no resampling; on a canvas narrower than 40 px items are at most as large
    as its shorter side); ``options["data_options"]`` is passed on, and
    ``options["train_length"]`` / ``["test_length"]`` set the number of canvases per split
    (the profile's ``DataSettings.canvases``; default: the scenes' own)."""
    out = dict(options.get("data_options", {}))
    if data.startswith("scenes"):
        out.setdefault("size", tuple(int(v) for v in img_size))
        short = min(out["size"])
        if short < 40 and "item_size" not in out:  # the scenes' default item sizes are 12..40 px
            out["item_size"] = (min(12, short), short)
        length = options.get(f"{split}_length")
        if length is not None:
            out["length"] = int(length)
    return out


def build_dense_datasets(cfg, spec) -> tuple:
    """The (train, test) datasets of a detection or segmentation run, with the transforms
    that keep boxes and masks aligned with the image (generated scenes are drawn at the
    run's size; other datasets are resized to it)."""
    from lifestudy.data import build_dataset

    options = cfg.options or {}
    hflip = float(cfg.recipe.get("hflip", 0.5))
    out = []
    for split in ("train", "test"):
        tf = dense_transform(spec, cfg.img_size, train=split == "train", hflip=hflip,
                             resize=not cfg.data.startswith("scenes"))
        out.append(build_dataset(cfg.data, split, root=cfg.root, transform=tf,
                                 subset_per_class=cfg.subset if split == "train" else None, seed=cfg.seed,
                                 **scene_options(cfg.data, cfg.img_size, options, split)))
    return tuple(out)
