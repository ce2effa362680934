"""Reading what a run saved: its checkpoint file, and the weights it evaluated.

A run folder of ``lifestudy train`` holds ``checkpoint.pt``: the resolved config, the model
(and EMA) weights, the optimiser state and the random states of exact resume (written by
:mod:`lifestudy.engine.checkpoint`). This module reads it and nothing else, so that every
reader — resume, :func:`lifestudy.engine.load_run`, a dense backbone initialised from a
classification run (:func:`lifestudy.dense.backbone.load_backbone_checkpoint`) — finds the
same file and takes the same weights: the EMA weights when the run kept an EMA (they are
what it evaluated), else the model's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from lifestudy.errors import ConfigError

__all__ = ["CHECKPOINT", "checkpoint_path", "load_checkpoint", "read_weights", "model_weights", "unwrap"]

CHECKPOINT = "checkpoint.pt"


def checkpoint_path(run: str | os.PathLike) -> Path:
    """``run`` itself if it is a file, else ``run/checkpoint.pt``."""
    run = Path(run)
    return run if run.is_file() else run / CHECKPOINT


def _read(path: Path, map_location: Any) -> Any:
    if not path.is_file():
        raise ConfigError(
            f"no checkpoint at {path}; pass a run folder written by `lifestudy train --out DIR` "
            f"(it holds {CHECKPOINT}) or the checkpoint file itself"
        )
    try:
        # Our checkpoints hold plain containers, tensors and numpy RNG arrays.
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # truncated or foreign file
        why = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise ConfigError(
            f"cannot read checkpoint {path} ({why}): it is damaged; train the run again into a new --out folder"
        ) from err


def load_checkpoint(run: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint of a run folder (or a checkpoint file), with a clear error if absent."""
    path = checkpoint_path(run)
    ckpt = _read(path, map_location)
    if not isinstance(ckpt, dict) or "config" not in ckpt or "model" not in ckpt:
        raise ConfigError(
            f"{path} is not a lifestudy checkpoint (no config/model inside); pass the checkpoint.pt "
            "(or the run folder) that `lifestudy train --out DIR` wrote"
        )
    return ckpt


def model_weights(ckpt: dict[str, Any], ema: bool = True) -> dict[str, torch.Tensor]:
    """The state dict a checkpoint of ours evaluated: its EMA weights when it kept them
    (and ``ema``), else the model's."""
    return ckpt["ema"] if ema and ckpt.get("ema") is not None else ckpt["model"]


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def read_weights(run: str | os.PathLike, ema: bool = True) -> dict[str, torch.Tensor]:
    """Model weights from a run folder, a checkpoint of ours (:func:`model_weights`), or a
    file holding a plain state dict (``torch.save(model.state_dict(), f)``)."""
    path = checkpoint_path(run)
    obj = _read(path, "cpu")
    if _is_state_dict(obj):
        return obj
    if isinstance(obj, dict) and _is_state_dict(obj.get("model")):
        return model_weights(obj, ema)
    raise ConfigError(
        f"{path} holds no model weights; pass the checkpoint.pt (or the run folder) of a run of "
        "ours, or a plain state dict saved with torch.save"
    )


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DDP and/or ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model
