"""The configuration of one training run: what was asked, what it resolved to, and whether
every value can work.

:class:`TrainConfig` holds the options of ``lifestudy train``. Fields left ``None``
are filled by :func:`resolve` from the profile (:mod:`lifestudy.profiles`) and the
dataset's spec, so ``config.json`` and the checkpoint always carry every value the run
used, including the full recipe.

Every value is checked once, in :func:`resolve`, against :data:`RULES` (one row per
setting: what it may hold and a good value for the fix), whether it came from the CLI,
``--set``, a profile or a ``TrainConfig``; the checks that need several settings at once
are :data:`CROSS_CHECKS`. All failures are reported together in one line, each naming
the setting, its value, what is allowed and how to pass a good one. A new setting gets
its row in :data:`RULES` (``tests/test_runs_safe.py`` fails for a recipe field without one).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from lifestudy.errors import ConfigError
from lifestudy.profiles import Recipe, get_profile

__all__ = [
    "TrainConfig",
    "resolve",
    "config_from_dict",
    "Rule",
    "RULES",
    "CROSS_CHECKS",
    "NOT_CHECKED",
    "CHANGEABLE",
    "config_problems",
    "check_batch_fits",
]


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
    # Settings (of CHANGEABLE) that this resume may change: a diverged run continued from
    # its last good checkpoint with a lower lr or with clipping. Needs resume=True.
    allow_change: tuple[str, ...] = ()
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
    # Filled by train(): the kind of device the run computes on (cpu | cuda); resume compares it.
    device_type: str | None = None
    # Filled on resume: the changes --allow-change made, [{"epoch", "field", "from", "to"}]
    # ("epoch": the first epoch trained with the new value). The record carries them.
    changes: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: What ``--allow-change NAME`` may change on resume -> the key compared (see checkpoint.py).
CHANGEABLE: dict[str, str] = {"lr": "lr", "clip_grad": "recipe.clip_grad"}


def config_from_dict(d: dict[str, Any]) -> TrainConfig:
    """A :class:`TrainConfig` from ``config.json`` / a checkpoint (unknown keys ignored)."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in d.items() if k in names})
    if cfg.img_size is not None:
        cfg.img_size = tuple(int(v) for v in cfg.img_size)
    cfg.allow_change = tuple(cfg.allow_change or ())
    return cfg


# ---- what each setting may hold ------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class Rule:
    """What one setting may hold.

    Args:
        allowed: in words, for the message ("an integer >= 1").
        ok: True when a value is allowed.
        example: a good value, shown in the fix (``--batch-size 32``).
    """

    allowed: str
    ok: Callable[[Any], bool]
    example: Any


def integer(lo: int | None = None, none: str | None = None, example: Any = None) -> Rule:
    """An int >= ``lo`` (any int when None); ``none``: None is allowed and means this."""
    words = "an integer" + (f" >= {lo}" if lo is not None else "")
    if none:
        words += f", or none ({none})"
    return Rule(words, lambda v: (none is not None and v is None) or (_is_int(v) and (lo is None or v >= lo)),
                lo if example is None else example)


def number(lo: float, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False,
           none: str | None = None, example: Any = None) -> Rule:
    """A finite number in the range; ``none``: None is allowed and means this."""
    if hi is None:
        words = f"a finite number {'>' if lo_open else '>='} {lo:g}"
    else:
        words = f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if none:
        words += f", or none ({none})"

    def ok(v: Any) -> bool:
        if v is None:
            return none is not None
        if not _is_number(v):
            return False
        return (v > lo if lo_open else v >= lo) and (hi is None or (v < hi if hi_open else v <= hi))

    return Rule(words, ok, lo if example is None else example)


def probability(example: float = 0.5) -> Rule:
    return number(0, 1, example=example)


def boolean(example: bool = True) -> Rule:
    return Rule("true or false", lambda v: isinstance(v, bool), example)


def text(none: str | None = None, example: Any = None) -> Rule:
    words = "a string" + (f", or none ({none})" if none else "")
    return Rule(words, lambda v: (none is not None and v is None) or (isinstance(v, str) and v != ""), example)


def _is_optimizer(name: Any) -> bool:
    """A name ``timm.optim.create_optimizer_v2`` knows (its registry; ``lookahead_`` prefix too)."""
    if not isinstance(name, str) or not name:
        return False
    import timm.optim

    base = name.lower().split("_")[-1] if name.lower().startswith("lookahead_") else name.lower()
    info = getattr(timm.optim, "get_optimizer_info", None)
    if info is not None:  # timm >= 1.0.12: the optimizer registry
        try:
            info(base)
            return True
        except ValueError:
            return False
    import torch  # older timm: build it on one parameter

    try:
        timm.optim.create_optimizer_v2(torch.nn.Linear(1, 1), opt=name, lr=1e-3)
        return True
    except Exception:  # noqa: BLE001  (timm says "Invalid optimizer" in several ways)
        return False


def _is_rand_augment(value: Any) -> bool:
    """None (off) or a string timm's ``rand_augment_transform`` parses (what the run calls)."""
    if value is None:
        return True
    if not isinstance(value, str):
        return False
    from timm.data import rand_augment_transform

    try:
        rand_augment_transform(value, {})
        return True
    except (AssertionError, ValueError, KeyError, IndexError):
        return False


def _is_img_size(v: Any) -> bool:
    if _is_int(v):
        return v >= 1
    return isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(s) and s >= 1 for s in v)


def _is_model(name: Any) -> bool:
    if not isinstance(name, str):
        return False
    import timm

    import lifestudy  # noqa: F401  (registers the study's models)

    return timm.is_model(name)


#: One row per setting: its dotted name (``recipe.X`` for recipe fields) -> :class:`Rule`.
#: A setting added to TrainConfig or Recipe gets its row here (or in NOT_CHECKED).
RULES: dict[str, Rule] = {
    "model": Rule("a known timm model name (see timm.list_models())", _is_model,
                  "deit_tiny_patch4_32_life"),
    "seed": integer(example=0),
    "epochs": integer(1, example=2),
    "batch_size": integer(1, example=32),
    "lr": number(0, lo_open=True, example=5e-4),
    "subset": integer(1, none="the whole training set; --subset 0 says the same", example=20),
    "img_size": Rule("two integers >= 1 (H W)", _is_img_size, "32 32"),
    "num_workers": integer(0, example=0),
    "stop_after_epochs": integer(1, none="run to the end", example=1),
    "resume": boolean(),
    "compile": boolean(),
    "channels_last": boolean(),
    "quiet": boolean(),
    "recipe.lr_base": number(0, lo_open=True, example=5e-4),
    "recipe.min_lr": number(0, example=1e-5),
    "recipe.warmup_epochs": integer(0, example=5),
    "recipe.warmup_lr": number(0, example=1e-6),
    "recipe.opt": Rule("an optimizer name of timm.optim (timm.optim.list_optimizers())", _is_optimizer, "adamw"),
    "recipe.weight_decay": number(0, example=0.05),
    "recipe.label_smoothing": number(0, 1, hi_open=True, example=0.1),
    "recipe.mixup": number(0, example=0.8),
    "recipe.cutmix": number(0, example=1.0),
    "recipe.mixup_prob": probability(1.0),
    "recipe.mixup_switch_prob": probability(0.5),
    "recipe.randaugment": Rule("a timm RandAugment string such as rand-m9-mstd0.5-inc1, or none (off)",
                               _is_rand_augment, "rand-m9-mstd0.5-inc1"),
    "recipe.reprob": probability(0.25),
    "recipe.hflip": probability(0.5),
    "recipe.crop_padding": integer(0, example=4),
    "recipe.drop_path": number(0, 1, hi_open=True, example=0.1),
    "recipe.repeated_aug": integer(1, example=1),
    "recipe.ema": boolean(),
    "recipe.ema_decay": number(0, 1, example=0.99996),
    "recipe.clip_grad": number(0, none="no clipping; 0 also means off", example=1.0),
    "recipe.distill_alpha": probability(0.5),
    "recipe.amp": boolean(),
    "recipe.eval_every": integer(0, example=1),
    "recipe.eval_points": integer(0, example=6),
    "recipe.min_steps": integer(0, example=750),
    "recipe.eval_subset": integer(1, none="the whole test set", example=200),
    "recipe.num_workers": integer(0, example=0),
}

#: Settings without a row, and why (checked elsewhere, or derived from a checked one).
NOT_CHECKED: dict[str, str] = {
    "task": "lifestudy.tasks.get_task names the known tasks",
    "data": "lifestudy.data.get_spec names the known datasets",
    "profile": "lifestudy.profiles.get_profile names the known profiles",
    "out": "runfolder.folder_problem (a file, under a file, not writable)",
    "root": "the dataset's own checks (lifestudy.data)",
    "teacher": "loaded by the task (a run folder)",
    "head": "the task's build_model (lifestudy.dense.HEADS)",
    "init": "loaded by the task (a run folder)",
    "allow_change": "CROSS_CHECKS (names of CHANGEABLE, only with resume)",
    "device": "lifestudy.engine.distributed.resolve_device",
    "recipe": "its fields have rows (recipe.X)",
    "options": "task options, read by the task",
    "resolved": "set by resolve()",
    "device_type": "set by train()",
    "changes": "set on resume",
    "recipe.epochs": "set from epochs",
    "recipe.batch_size": "set from batch_size",
}

#: How a good value is passed on the command line (recipe fields: --set FIELD=VALUE).
FLAGS: dict[str, str] = {
    "seed": "--seed", "epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr",
    "subset": "--subset", "img_size": "--img-size", "num_workers": "--num-workers", "model": "--model",
}


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _fix(name: str, example: Any) -> str:
    if name.startswith("recipe."):
        return f"--set {name.split('.', 1)[1]}={_show(example)}"
    if name in FLAGS:
        return f"{FLAGS[name]} {_show(example)}"
    return f"TrainConfig({name}={example!r})"


def _get(values: dict[str, Any], name: str) -> Any:
    if name.startswith("recipe."):
        return values["recipe"].get(name.split(".", 1)[1])
    return values.get(name)


def _problem(name: str, value: Any, allowed: str, fix: str) -> str:
    return f"{name}={value!r}: must be {allowed}; pass e.g. {fix}"


def _cross_dense_backbone(cfg: TrainConfig, world_size: int) -> list[str]:
    """Detection and segmentation read a ViT/DeiT or SwinV2 patch grid: no CNN backbone."""
    if cfg.task not in ("detection", "segmentation") or not _is_model(cfg.model):
        return []
    import torch

    from lifestudy.dense.backbone import backbone_stride, create_backbone
    from lifestudy.errors import UnsupportedModelError

    problem = None
    try:
        with torch.device("meta"):  # the structure only: no weights, no memory
            backbone_stride(create_backbone(cfg.model, cfg.img_size or (64, 64)))
    except TypeError as err:
        if "img_size" not in str(err):
            return []
        problem = "a CNN"
    except UnsupportedModelError:
        problem = "not a patch-grid model"
    except Exception:  # noqa: BLE001  (anything else is the build's own error, later)
        return []
    if problem is None:
        return []
    return [f"model={cfg.model!r}: {cfg.task} needs a ViT/DeiT or SwinV2 backbone (the heads read its patch "
            f"grid), {cfg.model} is {problem}; pass e.g. --model deit_test_patch4_32_life "
            "(or deit_tiny_patch16_224_life)"]


def _cross_batch(cfg: TrainConfig, world_size: int) -> list[str]:
    if not _is_int(cfg.batch_size) or cfg.batch_size < 1:
        return []
    if cfg.batch_size % world_size:
        good = max(world_size, cfg.batch_size // world_size * world_size)
        return [f"batch_size={cfg.batch_size}: the global batch must divide by the {world_size} processes; "
                f"pass e.g. --batch-size {good}"]
    r = cfg.recipe
    mixing = cfg.task == "classification" and any(_is_number(r.get(k)) and r.get(k) > 0 for k in ("mixup", "cutmix"))
    if mixing and (cfg.batch_size // world_size) % 2:
        good = (cfg.batch_size // world_size + 1) * world_size
        return [f"batch_size={cfg.batch_size}: mixup/cutmix need an even batch per process; pass e.g. "
                f"--batch-size {good} (or --set mixup=0 --set cutmix=0)"]
    return []


def _cross_allow_change(cfg: TrainConfig, world_size: int) -> list[str]:
    names = cfg.allow_change
    if not names:
        return []
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        return [f"allow_change={names!r}: must be a list of names of {sorted(CHANGEABLE)}; "
                "pass e.g. --allow-change lr"]
    unknown = [n for n in names if n not in CHANGEABLE]
    if unknown:
        return [f"allow_change={', '.join(unknown)}: only {', '.join(CHANGEABLE)} may change when a run is "
                "resumed (everything else changes what it computes); pass e.g. --allow-change lr, or start "
                "a new run in another --out folder"]
    if not cfg.resume:
        return [f"allow_change={','.join(names)}: changes the settings of a run being continued; "
                f"pass --resume --allow-change {','.join(names)}, or leave --allow-change out"]
    return []


def _cross_teacher(cfg: TrainConfig, world_size: int) -> list[str]:
    if cfg.teacher and cfg.task != "classification":
        return [f"teacher={cfg.teacher!r}: --teacher (distillation) works with --task classification only; "
                "leave --teacher out"]
    return []


def _cross_out(cfg: TrainConfig, world_size: int) -> list[str]:
    from lifestudy.engine.runfolder import folder_problem

    problem = folder_problem(cfg.out, "--out")
    return [problem] if problem else []


#: Checks over several settings at once: ``(cfg, world_size) -> [problem, ...]``.
CROSS_CHECKS: list[Callable[[TrainConfig, int], list[str]]] = [
    _cross_out, _cross_batch, _cross_allow_change, _cross_teacher, _cross_dense_backbone,
]


def config_problems(cfg: TrainConfig, world_size: int = 1) -> list[str]:
    """Every problem of a (resolved, or being resolved) config: one line each."""
    values = dataclasses.asdict(cfg)
    problems = []
    for name, rule in RULES.items():
        value = _get(values, name)
        if name == "lr" and value is None:  # derived from recipe.lr_base after the checks
            continue
        if not rule.ok(value):
            problems.append(_problem(name, value, rule.allowed, _fix(name, rule.example)))
    if problems:  # cross checks assume each value is of its kind
        return problems
    for check in CROSS_CHECKS:
        problems += check(cfg, world_size)
    return problems


def _raise_problems(problems: list[str]) -> None:
    if problems:
        raise ConfigError("; ".join(problems))


def check_batch_fits(cfg: TrainConfig, train_images: int) -> None:
    """The global batch must not exceed the training set (its size is known once built)."""
    if cfg.batch_size > train_images:
        raise ConfigError(
            f"batch_size={cfg.batch_size}: must be <= the training set ({train_images} images of "
            f"{cfg.data}{f', {cfg.subset} per class' if cfg.subset else ''}); "
            f"pass e.g. --batch-size {max(1, min(train_images, 2 ** int(math.log2(max(train_images, 1)))))}"
        )


def _first(*values: Any) -> Any:
    """The first value that is not None (0 and "" count: they are values, not defaults)."""
    return next((v for v in values if v is not None), None)


def resolve(cfg: TrainConfig, spec=None, world_size: int = 1) -> TrainConfig:
    """A copy of ``cfg`` with every ``None`` filled from the profile and ``spec``, checked.

    ``cfg.recipe`` becomes the full recipe as a dict (profile recipe, then the
    profile's changes for this dataset, then the run's own ``cfg.recipe`` changes).
    Every value is checked against :data:`RULES` and :data:`CROSS_CHECKS` before anything
    is computed from it; all problems are raised together as one :class:`ConfigError`.

    Args:
        cfg: the run's options.
        spec: the dataset's ``DatasetSpec`` (for its input size); looked up when None.
        world_size: processes sharing the global batch (torchrun).
    """
    if cfg.resolved:  # resolved elsewhere (or loaded): the same checks
        _raise_problems(config_problems(cfg, world_size))
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
    out.epochs = _first(cfg.epochs, settings.epochs, recipe.epochs)
    out.batch_size = _first(cfg.batch_size, settings.batch_size, recipe.batch_size)
    out.subset = settings.subset if cfg.subset is None else (None if cfg.subset == 0 else cfg.subset)
    size = _first(cfg.img_size, settings.img_size, tuple(spec.input_size))
    out.img_size = (size, size) if _is_int(size) else size
    out.options = settings.task_options(cfg.options)
    out.device = cfg.device or profile.device
    out.num_workers = _first(cfg.num_workers, recipe.num_workers)
    out.allow_change = tuple(cfg.allow_change) if isinstance(cfg.allow_change, (list, tuple)) else cfg.allow_change
    out.recipe = dataclasses.asdict(recipe)
    _raise_problems(config_problems(out, world_size))

    out.img_size = tuple(int(v) for v in out.img_size)
    # Warm-up longer than half the run would leave no schedule: cap it (recorded).
    warmup = min(recipe.warmup_epochs, out.epochs // 2)
    recipe = recipe.replace(warmup_epochs=warmup, epochs=out.epochs, batch_size=out.batch_size)
    out.lr = float(cfg.lr if cfg.lr is not None else recipe.lr_base * out.batch_size / 512)
    out.recipe = dataclasses.asdict(recipe)
    out.resolved = True
    return out
