"""Checkpoints that describe themselves, written atomically, and the RNG states of exact resume.

``<run>/checkpoint.pt`` holds the resolved config, the model (and EMA) weights, the
optimiser state, the epoch and update count, the per-epoch metrics so far, and the
python / numpy / torch (CPU and CUDA) random states of every process. It is written to
a temporary file in the same folder and renamed over the old one (``os.replace``), so a
run killed at any moment leaves the last complete checkpoint intact.

:func:`load_run` rebuilds a trained model from a run folder, for evaluation, as a
distillation teacher, to initialise a dense backbone, or for attention roll-out.
"""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lifestudy.errors import ConfigError
from lifestudy.records import atomic_write

__all__ = [
    "CHECKPOINT",
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_path",
    "rng_state",
    "set_rng_state",
    "unwrap",
    "load_run",
]

CHECKPOINT = "checkpoint.pt"
FORMAT = 1


def checkpoint_path(run: str | os.PathLike) -> Path:
    """``run`` itself if it is a file, else ``run/checkpoint.pt``."""
    run = Path(run)
    return run if run.is_file() else run / CHECKPOINT


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """``torch.save`` to a temp file beside ``path``, then rename it over ``path``."""
    with atomic_write(path, "wb") as f:
        torch.save({"format": FORMAT, **state}, f)
    return Path(path)


def load_checkpoint(run: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint of a run folder (or a checkpoint file), with a clear error if absent."""
    path = checkpoint_path(run)
    if not path.is_file():
        raise ConfigError(
            f"no checkpoint at {path}; pass a run folder written by `lifestudy train --out DIR` "
            f"(it holds {CHECKPOINT}) or the checkpoint file itself"
        )
    try:
        # Our checkpoints hold plain containers, tensors and numpy RNG arrays.
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # truncated or foreign file
        raise ConfigError(f"cannot read checkpoint {path}: {err}; re-run the training") from err
    if not isinstance(ckpt, dict) or "config" not in ckpt or "model" not in ckpt:
        raise ConfigError(f"{path} is not a lifestudy checkpoint (no config/model inside)")
    return ckpt


def rng_state() -> dict[str, Any]:
    """This process's python, numpy, torch and CUDA random states."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DDP and/or ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


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
    from lifestudy.data import get_spec
    from lifestudy.engine.config import config_from_dict
    from lifestudy.tasks import get_task

    ckpt = load_checkpoint(run)
    cfg = config_from_dict(ckpt["config"])
    spec = get_spec(cfg.data, cfg.root)
    task = get_task(cfg.task)
    # The weights come from the checkpoint: build without re-loading an --init checkpoint.
    model = task.build_model(dataclasses.replace(cfg, init=None), spec)
    weights = ckpt["ema"] if ema and ckpt.get("ema") is not None else ckpt["model"]
    model.load_state_dict(weights)
    model.to(device).eval()
    return model, cfg, spec
