"""The interface between the training engine and a task (classification, detection, ...).

The engine (:mod:`lifestudy.engine`) owns everything that is the same for every task:
seeding, data order, the optimiser and schedule, backward, bf16 autocast, gradient
clipping, EMA, DistributedDataParallel, checkpoints, resume and records. A task owns
what differs: its model, its datasets and their transforms, how a batch is collated,
the forward pass with its loss, and its evaluation metrics. This is the split of timm's
``train.py`` (one loop) and torchvision's reference scripts (one ``train_one_epoch``
per task, same loop shape), made explicit as a small class.

A task is registered by name with :func:`register_task`::

    @register_task("classification")
    class Classification(Task):
        headline_metric = "top1"
        ...

The engine calls, in order: ``build_model(cfg, spec)``, ``build_datasets(cfg, spec)``,
``set_teacher(teacher)`` for a distillation run, ``prepare(model, cfg, spec, device)`` once, then per step ``to_device(batch, device)``
and ``loss(model, batch, cfg)``, and per epoch ``evaluate(model, loader, device)``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from lifestudy.errors import ConfigError

__all__ = ["Task", "TASKS", "register_task", "move_to_device"]


#: name -> Task subclass, in the order the task modules register them
TASKS: dict[str, type["Task"]] = {}


def register_task(name: str):
    """Class decorator: register a :class:`Task` subclass under ``name``."""

    def deco(cls: type[Task]) -> type[Task]:
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise TypeError(f"register_task({name!r}) expects a Task subclass, got {cls!r}")
        cls.name = name
        TASKS[name] = cls
        return cls

    return deco


def move_to_device(obj: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Move the tensors inside ``obj`` (nested tuples, lists and dicts) to ``device``.

    torchvision ``tv_tensors`` keep their type (``.to`` preserves it).
    """
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, dict):
        return {k: move_to_device(v, device, non_blocking) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        moved = [move_to_device(v, device, non_blocking) for v in obj]
        return type(obj)(moved) if isinstance(obj, tuple) and not hasattr(obj, "_fields") else moved
    return obj


class Task:
    """Base class of the study's tasks; subclasses override the methods below.

    Attributes:
        name: the registered name (set by :func:`lifestudy.tasks.register_task`).
        headline_metric: the key of :meth:`evaluate`'s result that sums a run up
            (e.g. ``"top1"``, ``"map50"``, ``"miou"``); records and tables lead with it.
        higher_is_better: whether a larger headline metric is better.
        collate_fn: the DataLoader ``collate_fn`` (``None``: PyTorch's default).
        shard_eval: ``True`` when :meth:`evaluate` is correct on one shard of the
            evaluation set per process (its metrics synchronise across processes, as
            torchmetrics metrics do). ``False`` (the safe default): under torchrun,
            rank 0 evaluates the whole set while the other ranks wait.
        find_unused_parameters: passed to DistributedDataParallel (``True`` when some
            parameters get no gradient in a step).
    """

    name: str = ""
    headline_metric: str = ""
    higher_is_better: bool = True
    collate_fn: Callable | None = None
    shard_eval: bool = False
    find_unused_parameters: bool = False

    # ---- what the task builds --------------------------------------------------
    def build_model(self, cfg, spec) -> nn.Module:
        """The model to train, built from the resolved config and the dataset spec.

        Args:
            cfg: the resolved :class:`lifestudy.engine.TrainConfig` (``cfg.recipe``
                holds the recipe, e.g. ``drop_path``).
            spec: the dataset's :class:`lifestudy.data.DatasetSpec`.
        """
        raise NotImplementedError

    def build_datasets(self, cfg, spec) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]:
        """``(train_ds, eval_ds)`` with the task's training and evaluation transforms."""
        raise NotImplementedError

    def build_eval_dataset(self, cfg, spec) -> torch.utils.data.Dataset:
        """The evaluation dataset alone (``lifestudy eval``); override to skip building the
        training split."""
        return self.build_datasets(cfg, spec)[1]

    def set_teacher(self, teacher: nn.Module) -> None:
        """Receive the frozen, eval-mode teacher of a distillation run (``--teacher RUN``),
        which the engine loads (:func:`lifestudy.engine.trained.load_teacher`) before
        :meth:`prepare`. A task without distillation refuses it."""
        raise ConfigError(f"the {self.name} task does not distil (--teacher is for classification)")

    def prepare(self, model: nn.Module, cfg, spec, device: torch.device) -> None:
        """Called once before training, with the model already on ``device`` (not yet
        wrapped in DDP): build loss functions, batch-level augmentation..."""

    # ---- what the task computes ------------------------------------------------
    def to_device(self, batch: Any, device: torch.device) -> Any:
        """Move a collated batch to ``device`` (non-blocking from pinned memory on CUDA)."""
        return move_to_device(batch, device, non_blocking=device.type == "cuda")

    def batch_size(self, batch: Any) -> int:
        """The number of images in a collated batch (for throughput)."""
        first = batch[0] if isinstance(batch, (list, tuple)) else batch
        return len(first)

    def loss(self, model: nn.Module, batch: Any, cfg) -> tuple[torch.Tensor, dict[str, float]]:
        """Forward ``batch`` through ``model`` (in train mode) and return ``(loss, logs)``.

        The engine runs this under autocast and does backward, clipping, the optimiser
        step and EMA. ``logs`` holds extra scalars to average over the epoch (as floats
        or 0-d tensors; the engine reads them only at its own sync points).
        """
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader, device: torch.device) -> dict[str, float]:
        """Metrics of ``model`` (already in eval mode) over ``loader``; must include
        :attr:`headline_metric`."""
        raise NotImplementedError
