"""Checkpoints that describe themselves, written atomically, and the RNG states of exact resume.

``<run>/checkpoint.pt`` holds the resolved config, the model (and EMA) weights, the
optimiser state, the epoch and update count, the per-epoch metrics so far, and the
python / numpy / torch (CPU and CUDA) random states of every process. It is written to
a temporary file in the same folder and renamed over the old one (``os.replace``), so a
run killed at any moment leaves the last complete checkpoint intact.

Reading a checkpoint (``load_checkpoint``, ``checkpoint_path``, ``unwrap``) lives in the
low module :mod:`lifestudy.weights`, which every reader shares;
:func:`lifestudy.engine.trained.load_run` rebuilds a trained model from a run folder.

Resume is exact or refused. :func:`resume_point` compares every setting of the run being
resumed with its checkpoint's and refuses any difference, listing them all, except:

- the settings in :data:`RESUME_FREE`, which change where a run reads, writes or shows
  things, never what it computes (``--quiet``, ``--root``, ``--out``, the spelling of
  ``--device`` as long as it is the same kind of device: ``device_type`` is compared);
- the settings of :data:`~lifestudy.engine.config.CHANGEABLE` (``lr``, ``clip_grad``) when
  asked for explicitly with ``--resume --allow-change NAME``: the way on for a run that
  diverged, from its last good checkpoint. Each change is logged in the config's
  ``changes`` (first epoch, old and new value), which the checkpoint and the record
  carry, and every row of ``metrics.csv`` shows the peak lr and clipping it trained with.

Evaluation (``lifestudy eval``) is not a resume: it may use any device and batch size.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lifestudy.errors import ConfigError
from lifestudy.records import _jsonable, atomic_write, read_json
from lifestudy.weights import CHECKPOINT, checkpoint_path, load_checkpoint, unwrap  # noqa: F401  (the readers)

__all__ = [
    "CHECKPOINT",
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_path",
    "rng_state",
    "set_rng_state",
    "unwrap",
    "RESUME_FREE",
    "resume_point",
    "epoch_settings",
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


# ---- resume: exact or refused ----------------------------------------------------------

#: Settings that may differ between a run and its resumption: they change where the run
#: reads, writes or shows things, never what it computes.
RESUME_FREE: dict[str, str] = {
    "resume": "asks for the resumption itself",
    "allow_change": "says which CHANGEABLE settings may change",
    "changes": "the log of those changes",
    "quiet": "progress bars only",
    "stop_after_epochs": "where this call stops, not what an epoch computes",
    "root": "where the dataset lies, not what it is",
    "out": "the folder may be moved",
    "device": "its spelling (auto, cuda, cuda:1); the kind of device is compared as device_type",
}


def _comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    """A config as flat ``name -> value`` (``recipe.X``, ``options.X``), in JSON's types, so a
    checkpoint's config and ``config.json`` compare alike."""
    cfg = json.loads(json.dumps(_jsonable(cfg)))
    flat = {}
    for key, value in cfg.items():
        if key in ("recipe", "options") and isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def _defaults() -> dict[str, Any]:
    from lifestudy.engine.config import TrainConfig
    from lifestudy.profiles import Recipe

    return _comparable({**TrainConfig().to_dict(), "recipe": dataclasses.asdict(Recipe())})


def _differences(saved: dict[str, Any], now: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(name, saved, now)`` for every compared setting that differs. A setting the saved
    config lacks (written before the setting existed) is taken as its default;
    ``device_type`` only when the saved config knows it."""
    saved, now, default = _comparable(saved), _comparable(now), _defaults()
    diff = []
    for name in sorted(set(saved) | set(now), key=lambda k: (k.count("."), k)):
        if name in RESUME_FREE:
            continue
        if name == "device_type" and saved.get(name) is None:
            continue
        before = saved.get(name, default.get(name))
        after = now.get(name, default.get(name))
        if before != after:
            diff.append((name, before, after))
    return diff


def resume_point(cfg):
    """The checkpoint a run continues from, and its config with the change log.

    Returns ``(ckpt, cfg)``: ``ckpt`` is None when the run starts at epoch 0 (no
    ``resume``, or a resumed folder that holds no checkpoint yet). A resumed run whose
    settings differ from its checkpoint's (or its ``config.json``'s, when it wrote no
    checkpoint) is refused with the list of differences.

    Raises:
        ConfigError: the differences (and which ``--allow-change`` would accept them), a
            folder that cannot be resumed, or a damaged checkpoint.
    """
    from lifestudy.engine.config import CHANGEABLE

    out = Path(cfg.out)
    if not cfg.resume:
        return None, cfg
    path = out / CHECKPOINT
    if path.exists():
        ckpt = load_checkpoint(path)
        saved, start_epoch, where = ckpt["config"], int(ckpt["epoch"]), path
    elif (out / "record.json").exists() or (out / "metrics.csv").exists():
        what = "a finished run (record.json)" if (out / "record.json").exists() else "metrics.csv"
        raise ConfigError(
            f"cannot resume {out}: it holds {what} but no {CHECKPOINT} to continue from; choose a new --out folder"
        )
    elif (out / "config.json").exists():  # killed before its first checkpoint: start again, same settings
        ckpt, saved, start_epoch, where = None, read_json(out / "config.json"), 0, out / "config.json"
    else:
        return None, cfg

    allowed = {CHANGEABLE[name]: name for name in cfg.allow_change}
    diff = _differences(saved, cfg.to_dict())
    refused = [d for d in diff if d[0] not in allowed]
    if refused:
        def show(name, before, after):
            hint = f" (may change with --allow-change {name})" if name in CHANGEABLE.values() else ""
            return f"{name}: {before!r} -> {after!r}{hint}"

        details = ", ".join(show(*d) for d in refused)
        raise ConfigError(
            f"cannot resume {where}: the run was started with other settings ({details}); resume with "
            f"the settings in {out / 'config.json'}, or start a new run in another --out folder"
        )
    changes = list(saved.get("changes") or [])
    changes += [{"epoch": start_epoch + 1, "field": allowed[name], "from": before, "to": after}
                for name, before, after in diff]
    return ckpt, dataclasses.replace(cfg, changes=changes)


def epoch_settings(cfg) -> dict[str, Any]:
    """The CHANGEABLE settings an epoch trained with, for its row of ``metrics.csv``."""
    return {"peak_lr": cfg.lr, "clip_grad": cfg.recipe.get("clip_grad")}
