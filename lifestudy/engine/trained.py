"""A trained run rebuilt from its folder: for evaluation, roll-out, or as a distillation teacher.

The checkpoint carries the run's resolved config, so :func:`load_run` builds the same model
with the same task (:mod:`lifestudy.tasks`) and loads the weights the run evaluated
(:func:`lifestudy.weights.model_weights`). The engine loads a distillation teacher with
:func:`load_teacher` and hands it to the task (``Task.set_teacher``): tasks never read
checkpoints themselves.
"""

from __future__ import annotations

import dataclasses
import os

import torch
from torch import nn

from lifestudy.data import get_spec
from lifestudy.engine.config import config_from_dict
from lifestudy.errors import ConfigError
from lifestudy.tasks import get_task
from lifestudy.weights import load_checkpoint, model_weights

__all__ = ["load_run", "load_teacher"]


def load_run(run: str | os.PathLike, device: str | torch.device = "cpu", ema: bool = True):
    """Rebuild the model a run trained, with its weights, in eval mode.

    Args:
        run: a run folder (or its ``checkpoint.pt``).
        device: where to put the model.
        ema: use the EMA weights when the run kept them (they are what it evaluated).

    Returns:
        ``(model, cfg, spec)``: the model, the run's resolved :class:`TrainConfig`, and
        its dataset's ``DatasetSpec``.
    """
    ckpt = load_checkpoint(run)
    cfg = config_from_dict(ckpt["config"])
    spec = get_spec(cfg.data, cfg.root)
    # The weights come from the checkpoint: build without re-loading an --init checkpoint.
    model = get_task(cfg.task).build_model(dataclasses.replace(cfg, init=None), spec)
    model.load_state_dict(model_weights(ckpt, ema))
    model.to(device).eval()
    return model, cfg, spec


def load_teacher(run: str | os.PathLike, spec, device: str | torch.device) -> nn.Module:
    """The frozen, eval-mode teacher of a distillation run, checked against the student's
    data (``spec``): it must predict the same classes."""
    teacher, tcfg, tspec = load_run(run, device=device)
    if tspec.num_classes != spec.num_classes:
        raise ConfigError(
            f"teacher {run} predicts {tspec.num_classes} classes ({tcfg.data}), the student's "
            f"data {spec.name} has {spec.num_classes}; train the teacher on {spec.name}"
        )
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()
