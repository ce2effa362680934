"""The training loop: one for every task, one process or many.

Shape and habits from timm's ``train.py`` and torchvision's classification reference
(``references/classification/train.py``): seeded everything, a per-update cosine
schedule with warm-up (``timm.scheduler.CosineLRScheduler``), AdamW without weight decay
on norms, biases and tokens (``timm.optim.create_optimizer_v2``), optional EMA of the
weights (``timm.utils.ModelEmaV3``), gradient clipping, bf16 autocast on CUDA,
DistributedDataParallel under torchrun, and a checkpoint after every epoch (every few
epochs when a run has more than ``CHECKPOINTS_PER_RUN`` of them).

Exact resume. A run killed at any moment and resumed with ``resume=True`` ends with
exactly the weights and metrics of an uninterrupted run on CPU, because:

- the data order of epoch ``e`` depends only on ``(seed, e)`` (the sampler's epoch, and
  a DataLoader generator reseeded each epoch, which also seeds any workers);
- each checkpoint holds model, optimiser, EMA, update count and the python / numpy /
  torch random states of every process, and is replaced atomically;
- the per-epoch metrics live in the checkpoint too, and ``metrics.csv`` is rewritten
  from them, so it never holds an epoch the checkpoint does not.

The rules that keep it exact: ``num_workers=0`` or non-persistent workers (the CPU
default), and the same number of torch threads (it changes the order of float sums).
CUDA kernels are not bit-reproducible, so GPU runs resume to the same schedule and data
order, not to the same bits.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from lifestudy import records
from lifestudy.engine.checkpoint import (
    CHECKPOINT, epoch_settings, resume_point, rng_state, save_checkpoint, set_rng_state,
)
from lifestudy.engine.config import TrainConfig, check_batch_fits, resolve
from lifestudy.engine.distributed import Dist, setup, teardown
from lifestudy.engine.runfolder import claim
from lifestudy.engine.trained import load_teacher
from lifestudy.errors import ConfigError, LifestudyError

__all__ = [
    "train", "TrainingDivergedError", "ShardSampler", "seed_everything", "derive_epochs", "eval_epochs",
    "resolved_hash", "hash_of_resolved", "RECORD", "METRICS_CSV",
]

RECORD = "record.json"
CONFIG = "config.json"
METRICS_CSV = "metrics.csv"



class TrainingDivergedError(LifestudyError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


class ShardSampler(Sampler):
    """Indices ``rank, rank + world_size, ...``: every evaluation image exactly once over
    all processes (no padding, unlike ``DistributedSampler``)."""

    def __init__(self, length: int, rank: int = 0, world_size: int = 1):
        self.indices = list(range(rank, length, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    return (seed * 1_000_003 + epoch * 10_007 + rank) % 2**63


def _progress_enabled(cfg: TrainConfig, d: Dist) -> bool:
    if cfg.quiet or os.environ.get("LIFESTUDY_QUIET") or not d.is_main:
        return False
    return sys.stderr.isatty()


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


def _make_ema(model: torch.nn.Module, decay: float):
    from timm import utils

    ema_cls = getattr(utils, "ModelEmaV3", None) or utils.ModelEmaV2
    return ema_cls(model, decay=decay)


def _update_ema(ema, model, step: int) -> None:
    try:
        ema.update(model, step=step)
    except TypeError:  # ModelEmaV2 (older timm) takes no step
        ema.update(model)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite ``metrics.csv`` from the checkpoint's history (temp file + rename)."""
    if not rows:
        return
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with records.atomic_write(path) as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train ``cfg.model`` on ``cfg.data`` as ``cfg`` (and its profile) says; return the record.

    Writes ``config.json``, ``metrics.csv``, ``checkpoint.pt`` (each epoch) and
    ``record.json`` into ``cfg.out``. Under torchrun every process calls this; rank 0
    writes the files and every rank returns the same record.

    Raises:
        ConfigError: bad options (all of them, one line), ``cfg.out`` in use by another run
            or holding a run while ``resume`` is off, or a resume whose settings differ.
        TrainingDivergedError: the loss became NaN/inf (the message names epoch and step).
    """
    d = setup(cfg.device)
    try:
        # Every setting checked before anything is built; one writer per run folder.
        cfg = resolve(dataclasses.replace(cfg, device_type=d.device.type), world_size=d.world_size)
        with claim(cfg.out, cfg.resume, d):
            return _train(cfg, d)
    finally:
        teardown(d)


@dataclass
class _Run:
    """What one run holds while it trains (filled stage by stage by :func:`_train`)."""

    cfg: TrainConfig
    d: Dist
    task: Any
    spec: Any
    out: Path
    config_hash: str
    t_start: float
    ckpt: dict[str, Any] | None = None
    # data
    sampler: Any = None
    loader_gen: torch.Generator | None = None
    train_loader: DataLoader | None = None
    eval_loader: DataLoader | None = None
    steps_per_epoch: int = 0
    # model and optimiser
    model: torch.nn.Module | None = None
    train_model: torch.nn.Module | None = None
    optimizer: Any = None
    scheduler: Any = None
    ema: Any = None
    # progress
    start_epoch: int = 0
    num_updates: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_before: float = 0.0
    last_eval: dict[str, float] = field(default_factory=dict)
    item_source: Any = None

    @property
    def device(self) -> torch.device:
        return self.d.device

    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model


def _train(cfg: TrainConfig, d: Dist) -> dict[str, Any]:
    """The stages of a run, in order (timm's ``train.py`` shape: set-up, then
    ``train_one_epoch`` / ``validate`` per epoch, a checkpoint after each)."""
    run = _start(cfg, d)
    _build_loaders(run)
    _set_schedule(run)
    finished = _restore(run)
    if finished is not None:
        return finished
    _build_model(run)
    _build_optimiser(run)
    _load_state(run)
    _open_files(run)

    cfg = run.cfg
    show = _progress_enabled(cfg, d)
    from tqdm.std import tqdm  # not tqdm.auto: no 'IProgress not found' in a kernel

    epoch_bar = tqdm(range(run.start_epoch, cfg.epochs), initial=run.start_epoch, total=cfg.epochs,
                     desc=f"{cfg.model} on {cfg.data}", unit="epoch", disable=not show, dynamic_ncols=True)
    eval_at = eval_epochs(cfg.epochs, cfg.recipe["eval_every"], cfg.recipe.get("eval_points", 0))
    for epoch in epoch_bar:
        row = _train_one_epoch(run, epoch, show)
        if epoch + 1 in eval_at:
            run.last_eval = _evaluate(run.task, run.eval_model, run.eval_loader, run.device,
                                      bool(cfg.recipe["amp"]), d)
            row.update({k if k.startswith("eval_") else f"eval_{k}": v for k, v in run.last_eval.items()})
        row["epoch_time_s"] = time.perf_counter() - row.pop("_t0")
        run.history.append(row)
        if show:
            epoch_bar.set_postfix(loss=f"{row['train_loss']:.4f}",
                                  **({run.task.headline_metric: f"{run.last_eval[run.task.headline_metric]:.2f}"}
                                     if run.last_eval else {}))
        last = epoch + 1 == cfg.epochs
        stop = cfg.stop_after_epochs is not None and epoch + 1 - run.start_epoch >= cfg.stop_after_epochs
        if last or stop or (epoch + 1) % checkpoint_every(cfg.epochs) == 0:
            _save_checkpoint(run, epoch)
        if stop and not last:
            epoch_bar.close()
            return {"kind": "train", "task": run.task.name, "interrupted": True, "epoch": epoch + 1,
                    "metrics": dict(run.last_eval), "config": cfg.to_dict()}
    epoch_bar.close()
    return _record(run)


# ---- stages ------------------------------------------------------------------------
def _start(cfg: TrainConfig, d: Dist) -> _Run:
    """The task, the dataset's spec, the resolved config and its hash (train() has checked
    every setting and claimed the run folder)."""
    from lifestudy.data import get_spec
    from lifestudy.tasks import get_task

    t_start = time.perf_counter()
    task = get_task(cfg.task)
    spec = get_spec(cfg.data, cfg.root)
    if spec.task != task.name:
        raise ConfigError(
            f"dataset {cfg.data!r} is a {spec.task} dataset, not {task.name}; "
            f"pass --task {spec.task} or a {task.name} dataset"
        )
    cfg = resolve(cfg, spec)  # train() resolved and checked it; the folder is claimed
    out = Path(cfg.out)
    if cfg.batch_size % d.world_size:
        raise ConfigError(
            f"--batch-size {cfg.batch_size} is the global batch; it must divide by the "
            f"{d.world_size} processes"
        )
    return _Run(cfg=cfg, d=d, task=task, spec=spec, out=out, config_hash=hash_of_resolved(cfg), t_start=t_start)


def _build_loaders(run: _Run) -> None:
    """The task's datasets, the seeded training sampler and the two DataLoaders."""
    cfg, d, task = run.cfg, run.d, run.task
    per_rank_batch = cfg.batch_size // d.world_size
    train_ds, eval_ds = task.build_datasets(cfg, run.spec)
    if len(train_ds) == 0 or len(eval_ds) == 0:
        raise ConfigError(f"dataset {cfg.data!r} gave an empty train or test split; check --subset and the data")
    check_batch_fits(cfg, len(train_ds))
    run.item_source = getattr(train_ds, "source", None)  # scenes: the item source found
    recipe = cfg.recipe
    if recipe["repeated_aug"] > 1:
        from timm.data.distributed_sampler import RepeatAugSampler

        run.sampler = RepeatAugSampler(
            train_ds, num_replicas=d.world_size, rank=d.rank, shuffle=True, num_repeats=recipe["repeated_aug"]
        )
    else:
        run.sampler = DistributedSampler(train_ds, num_replicas=d.world_size, rank=d.rank, shuffle=True,
                                         seed=cfg.seed)
    run.loader_gen = torch.Generator()
    cuda = run.device.type == "cuda"
    if cuda:  # TF32 for what bf16 autocast leaves in fp32 (timm's train.py does the same)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    workers = cfg.num_workers
    run.train_loader = DataLoader(
        train_ds, batch_size=per_rank_batch, sampler=run.sampler, num_workers=workers,
        collate_fn=task.collate_fn, pin_memory=cuda, drop_last=len(run.sampler) >= per_rank_batch,
        generator=run.loader_gen, persistent_workers=cuda and workers > 0,
    )
    if task.shard_eval:
        eval_sampler = ShardSampler(len(eval_ds), d.rank, d.world_size)
    else:
        eval_sampler = ShardSampler(len(eval_ds) if d.is_main else 0)
    run.eval_loader = DataLoader(
        eval_ds, batch_size=max(2 * per_rank_batch, 64), sampler=eval_sampler, num_workers=workers,
        collate_fn=task.collate_fn, pin_memory=cuda,
    )
    run.steps_per_epoch = len(run.train_loader)
    if run.steps_per_epoch == 0:
        raise ConfigError(f"no training batches: {len(train_ds)} images with batch {per_rank_batch}")


def _set_schedule(run: _Run) -> None:
    """Epochs (and warm-up) from the recipe's step floor ``min_steps``; the derived values
    replace the resolved ones in the config, so config.json and the record hold what ran."""
    cfg = run.cfg
    epochs, warmup = derive_epochs(cfg.epochs, cfg.recipe["warmup_epochs"], cfg.recipe.get("min_steps", 0),
                                   run.steps_per_epoch)
    if epochs != cfg.epochs:
        recipe = {**cfg.recipe, "epochs": epochs, "warmup_epochs": warmup}
        run.cfg = dataclasses.replace(cfg, epochs=epochs, recipe=recipe)


def _restore(run: _Run) -> dict[str, Any] | None:
    """The checkpoint a resumed run continues from (``engine.checkpoint.resume_point``:
    exact, or refused with the settings that differ); the record of a run that had already
    finished (nothing left to do), else None."""
    ckpt, run.cfg = resume_point(run.cfg)
    if ckpt is None:
        return None
    rngs = ckpt["rng"]
    if len(rngs) != run.d.world_size:
        raise ConfigError(
            f"{run.out / CHECKPOINT} was written by {len(rngs)} processes; resume it with as many "
            f"(now {run.d.world_size})"
        )
    if ckpt["epoch"] >= run.cfg.epochs and (run.out / RECORD).exists():
        return records.read_json(run.out / RECORD)  # finished: nothing to do
    run.ckpt = ckpt
    return None


def _build_model(run: _Run) -> None:
    """The task's model (the same initial weights on every rank), then the task's own
    preparation (losses, mixup, teacher) with a per-rank seed."""
    cfg, d, task = run.cfg, run.d, run.task
    seed_everything(cfg.seed)
    model = task.build_model(cfg, run.spec).to(run.device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    seed_everything(cfg.seed + d.rank)
    if cfg.teacher:  # distillation: the engine loads the trained teacher and hands it to the task
        task.set_teacher(load_teacher(cfg.teacher, run.spec, run.device))
    task.prepare(model, cfg, run.spec, run.device)
    run.model = model


# torch's fused Adam / AdamW kernels (CPU and CUDA since torch 2.4): one kernel over every
# parameter instead of several small ops per parameter, the same update. On one CPU thread a
# DeiT-micro step (batch 16, 16x16) took 26.9 ms instead of 29.1 with them.
FUSED_OPTIMIZERS = ("adam", "adamw")


def create_optimizer(model: torch.nn.Module, opt: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """timm's ``create_optimizer_v2`` (no weight decay on norms, biases and tokens), with
    torch's fused kernel for Adam and AdamW."""
    from timm.optim import create_optimizer_v2

    fused = {"fused": True} if opt.lower() in FUSED_OPTIMIZERS else {}
    return create_optimizer_v2(model, opt=opt, lr=lr, weight_decay=weight_decay, **fused)


def _build_optimiser(run: _Run) -> None:
    """AdamW (timm's, no decay on norms/biases/tokens; :func:`create_optimizer`), the
    per-update cosine schedule with warm-up, and the EMA when the recipe keeps one."""
    from timm.scheduler import CosineLRScheduler

    cfg, recipe, spe = run.cfg, run.cfg.recipe, run.steps_per_epoch
    run.optimizer = create_optimizer(run.model, recipe["opt"], cfg.lr, recipe["weight_decay"])
    run.scheduler = CosineLRScheduler(
        run.optimizer, t_initial=cfg.epochs * spe, lr_min=recipe["min_lr"],
        warmup_t=recipe["warmup_epochs"] * spe, warmup_lr_init=recipe["warmup_lr"], t_in_epochs=False,
    )
    run.ema = _make_ema(run.model, recipe["ema_decay"]) if recipe["ema"] else None


def _load_state(run: _Run) -> None:
    """Weights, optimiser, EMA, progress and RNG states from the checkpoint (when resuming);
    then the DDP / compile wrappers."""
    ckpt, d = run.ckpt, run.d
    if ckpt is not None:
        run.model.load_state_dict(ckpt["model"])
        run.optimizer.load_state_dict(ckpt["optimizer"])
        if run.ema is not None and ckpt.get("ema") is not None:
            run.ema.module.load_state_dict(ckpt["ema"])
        run.start_epoch, run.num_updates = int(ckpt["epoch"]), int(ckpt["num_updates"])
        run.history = list(ckpt["history"])
        run.wall_before = float(ckpt.get("wall_time_s", 0.0))
        set_rng_state(ckpt["rng"][d.rank])
    run.scheduler.step_update(run.num_updates)
    run.train_model = run.model
    if d.enabled:
        cuda = run.device.type == "cuda"
        run.train_model = torch.nn.parallel.DistributedDataParallel(
            run.model, device_ids=[run.device.index] if cuda else None,
            find_unused_parameters=run.task.find_unused_parameters,
        )
    if run.cfg.compile:
        run.train_model = torch.compile(run.train_model)


def _open_files(run: _Run) -> None:
    if run.d.is_main:
        run.out.mkdir(parents=True, exist_ok=True)
        records.write_json_atomic(run.out / CONFIG, run.cfg.to_dict())
        _write_csv(run.out / METRICS_CSV, run.history)


def _train_one_epoch(run: _Run, epoch: int, show: bool = False) -> dict[str, Any]:
    """One pass over the training loader: forward + loss (the task's), backward, clipping,
    the optimiser and schedule step, EMA. Returns the epoch's row of ``metrics.csv`` (its
    ``_t0`` is the epoch's start; ``train_images_per_s`` counts the training steps only)."""
    cfg, d, task, device = run.cfg, run.d, run.task, run.device
    recipe = cfg.recipe
    cuda = device.type == "cuda"
    amp, clip = bool(recipe["amp"]), recipe["clip_grad"]
    sync_every = 1 if not cuda else 25  # CPU: check every step (free); CUDA: avoid syncs
    steps = run.steps_per_epoch
    run.sampler.set_epoch(epoch if recipe["repeated_aug"] <= 1 else _epoch_seed(cfg.seed, epoch))
    run.loader_gen.manual_seed(_epoch_seed(cfg.seed, epoch, d.rank))
    run.train_model.train()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    log_sums: dict[str, torch.Tensor] = {}
    bad_step = torch.full((), -1, device=device, dtype=torch.long)
    images = 0
    if cuda:
        torch.cuda.synchronize(device)
    t0, cpu0 = time.perf_counter(), time.process_time()
    from tqdm.std import tqdm  # not tqdm.auto: no 'IProgress not found' in a kernel

    step_bar = tqdm(run.train_loader, desc=f"epoch {epoch + 1}", leave=False, unit="batch",
                    disable=not show, dynamic_ncols=True)
    for step, batch in enumerate(step_bar):
        batch = task.to_device(batch, device)
        if cfg.channels_last and isinstance(batch, (list, tuple)) and batch[0].ndim == 4:
            batch = (batch[0].contiguous(memory_format=torch.channels_last), *batch[1:])
        with _autocast(device, amp):
            loss, logs = task.loss(run.train_model, batch, cfg)
        finite = torch.isfinite(loss.detach())
        bad_step = torch.where((bad_step < 0) & ~finite, torch.full_like(bad_step, step), bad_step)
        if step % sync_every == 0 or step == steps - 1:
            flag = d.all_reduce_max((bad_step >= 0).to(torch.float32))
            if flag.item() > 0:
                _diverged(cfg, epoch, bad_step, step, d, loss, run.out / CHECKPOINT)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), clip)
        run.optimizer.step()
        run.num_updates += 1
        run.scheduler.step_update(run.num_updates)
        if run.ema is not None:
            _update_ema(run.ema, run.model, run.num_updates)
        n = task.batch_size(batch)
        images += n
        loss_sum += loss.detach().double() * n
        for k, v in logs.items():
            v = torch.as_tensor(v, device=device, dtype=torch.float64).detach()
            log_sums[k] = log_sums.get(k, torch.zeros((), device=device, dtype=torch.float64)) + v * n
        if show and step % sync_every == 0:
            dt = time.perf_counter() - t0
            step_bar.set_postfix(loss=f"{loss.item():.4f}", img_s=f"{images * d.world_size / dt:.0f}")
    step_bar.close()
    if cuda:
        torch.cuda.synchronize(device)
    train_time = time.perf_counter() - t0
    cpu_time = time.process_time() - cpu0

    totals = torch.stack([loss_sum, torch.tensor(float(images), device=device, dtype=torch.float64),
                          *log_sums.values()])
    totals = d.all_reduce_sum(totals)
    seen = totals[1].item()
    return {
        "epoch": epoch + 1,
        "step": run.num_updates,
        "lr": run.optimizer.param_groups[0]["lr"],
        "train_loss": totals[0].item() / seen,
        **{k: totals[2 + i].item() / seen for i, k in enumerate(log_sums)},
        "train_images_per_s": seen / train_time,
        # per second of this process's CPU time (all its threads): steadier on a shared machine
        "train_images_per_cpu_s": images / cpu_time if cpu_time > 0 else math.nan,
        **epoch_settings(cfg),  # the peak lr and clipping this epoch trained with
        "_t0": t0,
    }


# A run of many short epochs (the cpu profile's smallest subsets: 334 epochs of 3 steps)
# spent up to a quarter of its time writing a checkpoint after each; it now writes one every
# ``checkpoint_every`` epochs, and after the last. A resumed run is still exact: it restarts
# from the last checkpoint, and each epoch's data order depends only on (seed, epoch).
CHECKPOINTS_PER_RUN = 50


def checkpoint_every(epochs: int) -> int:
    """Epochs between checkpoints: 1 for runs of at most ``CHECKPOINTS_PER_RUN`` epochs, so
    that a run writes at most about that many."""
    return max(1, math.ceil(epochs / CHECKPOINTS_PER_RUN))


def _save_checkpoint(run: _Run, epoch: int) -> None:
    """Rank 0 writes the checkpoint (every rank's RNG state inside) and ``metrics.csv``."""
    rngs = run.d.all_gather_object(rng_state())
    if run.d.is_main:
        save_checkpoint(run.out / CHECKPOINT, {
            "config": run.cfg.to_dict(),
            "model": run.model.state_dict(),
            "ema": run.ema.module.state_dict() if run.ema is not None else None,
            "optimizer": run.optimizer.state_dict(),
            "epoch": epoch + 1,
            "num_updates": run.num_updates,
            "history": run.history,
            "rng": rngs,
            "wall_time_s": run.wall_before + time.perf_counter() - run.t_start,
        })
        _write_csv(run.out / METRICS_CSV, run.history)
    run.d.barrier()


def _record(run: _Run) -> dict[str, Any]:
    """The run's record: final metrics, provenance, the resolved config and its hash."""
    cfg, d, task = run.cfg, run.d, run.task
    if not run.last_eval:  # a finished run resumed without its record: evaluate again
        run.last_eval = _evaluate(task, run.eval_model, run.eval_loader, run.device, bool(cfg.recipe["amp"]), d)
    history = run.history
    train_rates = [r["train_images_per_s"] for r in history if r["epoch"] > run.start_epoch] or [
        r["train_images_per_s"] for r in history]
    metrics = {
        **run.last_eval,
        "train_loss": history[-1]["train_loss"],
        "train_images_per_s": float(np.median(train_rates)),
        "evaluated": "ema" if run.ema is not None else "model",
        "headline": task.headline_metric,
    }
    record = {
        "kind": "train",
        "task": task.name,
        "config_hash": run.config_hash,
        "metrics": metrics,
        "provenance": records.provenance(
            profile=cfg.profile,
            dataset=cfg.data,
            subset=cfg.subset,
            model=cfg.model,
            seed=cfg.seed,
            epochs=cfg.epochs,
            steps=run.num_updates,
            device=str(run.device),
            world_size=d.world_size,
            teacher=cfg.teacher,
            head=cfg.head,
            init=cfg.init,
            img_size=list(cfg.img_size),
            **({"item_source": run.item_source} if run.item_source is not None else {}),  # scenes
            data_pipeline=getattr(task, "pipeline", None),
            resumed=run.ckpt is not None,
            wall_time_s=run.wall_before + time.perf_counter() - run.t_start,
        ),
        "config": cfg.to_dict(),
    }
    if d.is_main:
        records.write_json_atomic(run.out / RECORD, record)
    d.barrier()
    return record


# ---- schedule and identity -----------------------------------------------------------
def derive_epochs(epochs: int, warmup_epochs: int, min_steps: int, steps_per_epoch: int) -> tuple[int, int]:
    """``(epochs, warmup_epochs)`` with at least ``min_steps`` optimizer steps in all: the
    epochs grow to ``ceil(min_steps / steps_per_epoch)`` when that is more, and the warm-up
    by the same factor (it stays the same fraction of the run)."""
    if not min_steps or epochs * steps_per_epoch >= min_steps:
        return epochs, warmup_epochs
    needed = math.ceil(min_steps / steps_per_epoch)
    return needed, min(round(warmup_epochs * needed / epochs), needed // 2)


def eval_epochs(epochs: int, eval_every: int, eval_points: int = 0) -> set[int]:
    """The (1-based) epochs after which a run evaluates: ``eval_points`` evenly spaced
    epochs when set (a learning curve of that many points), else every ``eval_every``
    epochs (0: none); the last epoch always."""
    if eval_points > 0:
        at = {max(1, round(epochs * (i + 1) / eval_points)) for i in range(eval_points)}
    elif eval_every:
        at = set(range(eval_every, epochs + 1, eval_every))
    else:
        at = set()
    return at | {epochs}


def resolved_hash(cfg: TrainConfig) -> str:
    """The hash that identifies a run: :func:`lifestudy.records.config_hash` of the config as
    :func:`lifestudy.engine.config.resolve` gives it, with a teacher or init run folder
    replaced by that run's own hash (so a run is the same wherever its teacher lies)."""
    return hash_of_resolved(resolve(cfg))


def hash_of_resolved(cfg: TrainConfig) -> str:
    """:func:`resolved_hash` of a config that :func:`lifestudy.engine.config.resolve` gave."""
    config = cfg.to_dict()
    for key in ("teacher", "init"):
        if config.get(key):
            config[key] = _run_identity(config[key])
    return records.config_hash(config)


def _run_identity(path: str) -> str:
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    try:
        return "run:" + records.read_json(folder / RECORD)["config_hash"]
    except (OSError, KeyError, ValueError):
        return os.path.abspath(path)


def _diverged(cfg, epoch, bad_step, step, d: Dist, loss, ckpt_path: Path):
    where = int(bad_step.item()) if int(bad_step.item()) >= 0 else step
    last_good = f"the checkpoint of epoch {epoch} in {ckpt_path} is left as it was" if epoch else \
        "no checkpoint was written"
    clip = cfg.recipe.get("clip_grad")
    clip_hint = f"{clip / 2:g}" if clip else "1.0"
    raise TrainingDivergedError(
        f"the training loss became {loss.item()} at epoch {epoch + 1}, step {where + 1} "
        f"({cfg.model} on {cfg.data}, lr {cfg.lr:g}); {last_good}; continue from there with a lower lr: "
        f"add --resume --allow-change lr --lr {cfg.lr / 2:.3g} (or clip harder: --resume --allow-change "
        f"clip_grad --set clip_grad={clip_hint}), or start again in a new --out folder"
    )


@torch.no_grad()
def _evaluate(task, model, loader, device, amp: bool, d: Dist) -> dict[str, float]:
    """The task's metrics of ``model`` over the evaluation loader, plus images/s."""
    was_training = model.training
    model.eval()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    with _autocast(device, amp):
        metrics = task.evaluate(model, loader, device) if (task.shard_eval or d.is_main) else {}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    dt = time.perf_counter() - t0
    count = d.all_reduce_sum(torch.tensor(float(len(loader.sampler)), device=device)).item()
    if not task.shard_eval:
        metrics = d.broadcast_object(metrics)
    model.train(was_training)
    metrics = {k: float(v) for k, v in metrics.items()}
    metrics["eval_images"] = int(count)  # every evaluation image counted exactly once
    metrics["eval_images_per_s"] = count / dt if dt > 0 else math.nan
    return metrics

