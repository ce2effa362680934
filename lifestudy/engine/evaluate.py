"""Evaluate a trained run's checkpoint, on its own dataset or another with the same classes."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from lifestudy import records
from lifestudy.engine.trained import load_run
from lifestudy.weights import checkpoint_path
from lifestudy.engine.distributed import resolve_device
from lifestudy.errors import ConfigError

__all__ = ["evaluate_run"]


def evaluate_run(
    run_dir: str | os.PathLike,
    data: str | None = None,
    root: str | os.PathLike | None = None,
    device: str | None = "cpu",
    batch_size: int = 128,
    write: bool = True,
) -> dict[str, Any]:
    """Evaluate the model of a run folder and return an ``eval`` record.

    The record (``{"kind": "eval", "task", "metrics", "provenance", "config"}``) is also
    written as ``<run_dir>/eval-<data>.json`` (not ``record.json``: the run's own
    record stays the one tables read).

    Args:
        run_dir: a folder written by ``lifestudy train`` (or its ``checkpoint.pt``).
        data: dataset to evaluate on; None: the run's own.
        root: dataset root; None: the run's (else ``lifestudy.data.default_root()``).
        device: where to evaluate ("auto" for CUDA when available).
        batch_size: evaluation batch size.
        write: write the record next to the checkpoint.
    """
    from lifestudy.data import get_spec
    from lifestudy.tasks import get_task

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size!r}: must be an integer >= 1; pass e.g. --batch-size 128")
    dev = resolve_device(device)
    model, cfg, spec = load_run(run_dir, device=dev)
    data = data or cfg.data
    eval_spec = get_spec(data, root or cfg.root)
    _check_compatible(run_dir, cfg, spec, data, eval_spec)
    task = get_task(cfg.task)
    ecfg = dataclasses.replace(cfg, data=data, root=os.fspath(root) if root else cfg.root)
    eval_ds = task.build_eval_dataset(ecfg, eval_spec)  # the split it evaluates, nothing else
    loader = DataLoader(eval_ds, batch_size=batch_size, collate_fn=task.collate_fn,
                        pin_memory=dev.type == "cuda")
    t0 = time.perf_counter()
    with torch.no_grad():
        metrics = {k: float(v) for k, v in task.evaluate(model, loader, dev).items()}
    dt = time.perf_counter() - t0
    metrics["eval_images_per_s"] = len(eval_ds) / dt if dt > 0 else float("nan")
    record = {
        "kind": "eval",
        "task": cfg.task,
        "metrics": metrics,
        "provenance": records.provenance(
            profile=cfg.profile, dataset=data, trained_on=cfg.data, subset=cfg.subset,
            model=cfg.model, seed=cfg.seed, epochs=cfg.epochs, device=str(dev),
            checkpoint=str(checkpoint_path(run_dir)), world_size=1,
        ),
        "config": cfg.to_dict(),
    }
    if write:
        folder = Path(run_dir) if Path(run_dir).is_dir() else Path(run_dir).parent
        records.write_json_atomic(folder / f"eval-{data}.json", record)
    return record


def _check_compatible(run_dir, cfg, spec, data: str, eval_spec) -> None:
    """The run's model can read ``data``: same task, classes and image channels."""
    from lifestudy.data import SPECS

    same = (eval_spec.task, eval_spec.num_classes, eval_spec.in_chans) == (cfg.task, spec.num_classes, spec.in_chans)
    if same:
        return
    fits = [n for n, s in SPECS.items() if (s.task, s.num_classes, s.in_chans) == (cfg.task, spec.num_classes,
                                                                                     spec.in_chans)]
    raise ConfigError(
        f"the run {run_dir} is a {cfg.task} model for {spec.num_classes} classes of {spec.in_chans}-channel "
        f"images ({cfg.data}); {data!r} is a {eval_spec.task} dataset with {eval_spec.num_classes} classes of "
        f"{eval_spec.in_chans}-channel images; pass --data with one that matches ({', '.join(fits)})"
    )
