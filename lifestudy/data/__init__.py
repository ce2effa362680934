"""Every dataset of the study, by name, with clear errors.

    >>> from lifestudy.data import build_dataset, get_spec
    >>> spec = get_spec("fashion-mnist")            # classes, mean/std, input size, channels
    >>> train = build_dataset("fashion-mnist", "train", subset_per_class=50, seed=1)
    >>> image, label = train[0]                     # PIL image, int

Classification (items ``(PIL.Image, int)``): ``cifar10``, ``cifar100``, ``tiny-imagenet``,
``imagenet100``, ``fashion-mnist``, ``digits``. Detection (``(tv_tensors.Image, {"boxes",
"labels"[, "difficult"]})``): ``voc-det``, ``scenes-det``. Segmentation (``(image,
{"semantic"})``, 255 ignored): ``voc-seg``, ``cityscapes``, ``scenes-seg``. ``scenes`` gives
every target. Layouts on disk: ``data/README.md``; ``lifestudy data check NAME``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable

from lifestudy.data import classification, dense, scenes  # noqa: F401  (register the sources)
from lifestudy.data.catalog import SPLITS, default_root, get_source
from lifestudy.data.scenes import SceneConfig, Scenes
from lifestudy.data.spec import IGNORE_INDEX, SPECS, DatasetSpec
from lifestudy.data.subsets import ClassSubset, stratified_indices
from lifestudy.errors import ConfigError

__all__ = [
    "DatasetSpec",
    "DATASETS",
    "IGNORE_INDEX",
    "get_spec",
    "default_root",
    "build_dataset",
    "check",
    "fetch",
    "stratified_indices",
    "ClassSubset",
    "Scenes",
    "SceneConfig",
]

#: every dataset name the study knows
DATASETS: tuple[str, ...] = tuple(SPECS)


def _root(root: str | Path | None) -> Path:
    return Path(root).expanduser() if root is not None else default_root()


def get_spec(name: str, root: str | Path | None = None) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``name``. Class names are read from the files where they
    live there (Tiny-ImageNet, ImageNet-100, CIFAR-100) and the data is under ``root``;
    for the scenes they are Fashion-MNIST's (the default item source)."""
    return get_source(name).spec(name, _root(root))


def build_dataset(name: str, split: str, root: str | Path | None = None,
                  transform: Callable | None = None, subset_per_class: int | None = None,
                  seed: int = 0, **options: Any):
    """Build the ``split`` ("train" or "test") of dataset ``name``.

    Args:
        name: one of :data:`DATASETS`.
        split: "train" or "test" (for VOC segmentation and Cityscapes "test" is the
            official val split, whose labels are public).
        root: the data root (default :func:`default_root`); each dataset lives in its
            usual folder under it (``data/README.md``).
        transform: classification: a callable on the PIL image; dense: a
            ``torchvision.transforms.v2`` callable on ``(image, target)``.
        subset_per_class: the small-data regime: keep N training images per class
            (stratified, seeded, nested across N). Classification only; the test split is
            always used whole, so results over subset sizes share one test set.
        seed: seed of the subset (and of the scenes).
        options: dataset options (scenes: ``size``, ``num_items``, ``length``, ``source``,
            ...; voc-det: ``years``; voc-seg: ``year``).

    The dataset carries its spec as ``.spec``. Missing or broken data raises
    :class:`lifestudy.errors.DatasetError` with the expected layout and the fix.
    """
    source = get_source(name)
    if split not in SPLITS:
        raise ConfigError(f"dataset {name!r}: split must be 'train' or 'test', got {split!r}")
    root = _root(root)
    spec = SPECS[name]
    if subset_per_class is not None and spec.task != "classification":
        raise ConfigError(f"dataset {name!r}: subset_per_class is for classification datasets; "
                          f"{name} is a {spec.task} dataset (use its length/size options)")
    if "seed" in inspect.signature(source.build).parameters:
        options["seed"] = seed
    source.validate(name, root)
    dataset = source.build(name, root, split, transform, **options)
    if subset_per_class is not None and split == "train":
        indices = stratified_indices(dataset.targets, subset_per_class, seed, spec.num_classes, name)
        dataset = ClassSubset(dataset, indices)
    if isinstance(dataset, Scenes):
        dataset.spec = source.spec(name, root, dataset.source, dataset.cfg.size)
    else:
        dataset.spec = get_spec(name, root)
    return dataset


def check(name: str, root: str | Path | None = None, full: bool = False) -> str:
    """A one-line summary of ``name`` under ``root`` (splits, sizes, classes), or a
    DatasetError naming the problem, the expected layout and how to get the data.

    Opens one file per class folder (all of them with ``full``) to catch corrupt files."""
    source = get_source(name)
    root = _root(root)
    source.validate(name, root, deep="full" if full else True)
    return source.describe(name, root)


def fetch(name: str, root: str | Path | None = None) -> str:
    """Download (torchvision), link (Debian Fashion-MNIST) or explain how to get ``name``.

    Returns what was done; raises DatasetError when it cannot be fetched from here."""
    source = get_source(name)
    root = _root(root)
    root.mkdir(parents=True, exist_ok=True)
    return source.fetch(name, root)
