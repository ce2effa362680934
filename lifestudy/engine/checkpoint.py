"""Checkpoints that describe themselves, written atomically, and the RNG states of exact resume.

``<run>/checkpoint.pt`` holds the resolved config, the model (and EMA) weights, the
optimiser state, the epoch and update count, the per-epoch metrics so far, and the
python / numpy / torch (CPU and CUDA) random states of every process. It is written to
a temporary file in the same folder and renamed over the old one (``os.replace``), so a
run killed at any moment leaves the last complete checkpoint intact.

Reading a checkpoint (``load_checkpoint``, ``checkpoint_path``, ``unwrap``) lives in the
low module :mod:`lifestudy.weights`, which every reader shares;
:func:`lifestudy.engine.trained.load_run` rebuilds a trained model from a run folder.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lifestudy.records import atomic_write
from lifestudy.weights import CHECKPOINT, checkpoint_path, load_checkpoint, unwrap  # noqa: F401  (the readers)

__all__ = [
    "CHECKPOINT",
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_path",
    "rng_state",
    "set_rng_state",
    "unwrap",
]

FORMAT = 1


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """``torch.save`` to a temp file beside ``path``, then rename it over ``path``."""
    with atomic_write(path, "wb") as f:
        torch.save({"format": FORMAT, **state}, f)
    return Path(path)


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
