"""The configuration of one training run: what was asked, and what it resolved to.

:class:`TrainConfig` holds the options of ``lifestudy train``. Fields left ``None``
are filled by :func:`resolve` from the profile (:mod:`lifestudy.profiles`) and the
dataset's spec, so ``config.json`` and the checkpoint always carry every value the run
used, including the full recipe.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from lifestudy.errors import ConfigError
from lifestudy.profiles import Recipe, get_profile

__all__ = ["TrainConfig", "resolve", "config_from_dict"]


@dataclass
class TrainConfig:
    """One training run. ``None`` means "the profile's value" until :func:`resolve`."""

    task: str = "classification"  # a registered task: classification | detection | segmentation
    data: str = "digits"  # a dataset name of lifestudy.data
    model: str = "deit_test_patch4_32"  # a timm model name (import lifestudy registers ours)
    profile: str = "cpu"  # smoke | cpu | paper
    seed: int = 0
    out: str | None = None  # the run folder (required)
    root: str | None = None  # dataset root; None: lifestudy.data.default_root()
    epochs: int | None = None
    batch_size: int | None = None  # global batch (over all processes)
    lr: float | None = None  # peak lr; None: recipe.lr_base * batch_size / 512
    subset: int | None = None  # training images per class; 0: all (overrides the profile)
    img_size: tuple[int, int] | None = None  # (H, W) the model sees
    teacher: str | None = None  # run folder or checkpoint of a trained teacher (distillation)
    head: str | None = None  # detection head (encdec | encdec-linear | encdec-life)
    init: str | None = None  # run folder or checkpoint to initialise the backbone from
    resume: bool = False  # continue from <out>/checkpoint.pt
    device: str | None = None  # cpu | cuda | cuda:N | auto; None: the profile's ("auto")
    num_workers: int | None = None
    compile: bool = False  # torch.compile the model (CUDA runs)
    channels_last: bool = False  # channels-last memory format (CUDA conv models)
    quiet: bool = False  # no progress bars (also when stderr is not a terminal)
    recipe: dict[str, Any] = field(default_factory=dict)  # recipe fields to change
    options: dict[str, Any] = field(default_factory=dict)  # task-specific options
    # Stop (as if killed) after this many epochs of this call: tests use it to check
    # that a resumed run ends exactly where an uninterrupted one does.
    stop_after_epochs: int | None = None

    # Filled by resolve(): the recipe in full, and the resolved values above.
    resolved: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def config_from_dict(d: dict[str, Any]) -> TrainConfig:
    """A :class:`TrainConfig` from ``config.json`` / a checkpoint (unknown keys ignored)."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in d.items() if k in names})
    if cfg.img_size is not None:
        cfg.img_size = tuple(int(v) for v in cfg.img_size)
    return cfg


def resolve(cfg: TrainConfig, spec=None) -> TrainConfig:
    """A copy of ``cfg`` with every ``None`` filled from the profile and ``spec``.

    ``cfg.recipe`` becomes the full recipe as a dict (profile recipe, then the
    profile's changes for this dataset, then the run's own ``cfg.recipe`` changes).

    Args:
        cfg: the run's options.
        spec: the dataset's ``DatasetSpec`` (for its input size); looked up when None.
    """
    if cfg.resolved:
        return cfg
    if not cfg.out:
        raise ConfigError("a run needs an output folder: pass --out DIR (TrainConfig(out=...))")
    profile = get_profile(cfg.profile)
    settings = profile.settings_for(cfg.data)
    recipe: Recipe = profile.recipe_for(cfg.data)
    recipe = recipe.replace(**cfg.recipe)
    if spec is None:
        from lifestudy.data import get_spec

        spec = get_spec(cfg.data, cfg.root)

    out = dataclasses.replace(cfg)
    out.out = os.fspath(cfg.out)
    out.epochs = int(cfg.epochs if cfg.epochs is not None else settings.epochs or recipe.epochs)
    out.batch_size = int(cfg.batch_size or settings.batch_size or recipe.batch_size)
    if cfg.subset is None:
        out.subset = settings.subset
    elif cfg.subset <= 0:
        out.subset = None  # 0 or negative: the whole training set
    size = cfg.img_size or settings.img_size or tuple(spec.input_size)
    if isinstance(size, int):
        size = (size, size)
    out.img_size = tuple(int(v) for v in size)
    out.options = settings.task_options(cfg.options)
    out.device = cfg.device or profile.device
    out.num_workers = int(cfg.num_workers if cfg.num_workers is not None else recipe.num_workers)
    # Warm-up longer than half the run would leave no schedule: cap it (recorded).
    warmup = min(recipe.warmup_epochs, out.epochs // 2)
    recipe = recipe.replace(warmup_epochs=warmup, epochs=out.epochs, batch_size=out.batch_size)
    out.lr = float(cfg.lr if cfg.lr is not None else recipe.lr_base * out.batch_size / 512)
    out.recipe = dataclasses.asdict(recipe)
    out.resolved = True

    if out.epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {out.epochs}")
    if out.batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {out.batch_size}")
    if min(out.img_size) < 1:
        raise ConfigError(f"image size must be positive, got {out.img_size}")
    if out.teacher and out.task != "classification":
        raise ConfigError("--teacher (distillation) works with --task classification only")
    return out
