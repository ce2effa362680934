"""The training loop: one for every task, one process or many.

Shape and habits from timm's ``train.py`` and torchvision's classification reference
(``references/classification/train.py``): seeded everything, a per-update cosine
schedule with warm-up (``timm.scheduler.CosineLRScheduler``), AdamW without weight decay
on norms, biases and tokens (``timm.optim.create_optimizer_v2``), optional EMA of the
weights (``timm.utils.ModelEmaV3``), gradient clipping, bf16 autocast on CUDA,
DistributedDataParallel under torchrun, and a checkpoint after every epoch.

Exact resume. A run killed at any moment and resumed with ``resume=True`` ends with
exactly the weights and metrics of an uninterrupted run on CPU, because:

- the data order of epoch ``e`` depends only on ``(seed, e)`` (the sampler's epoch, and
  a DataLoader generator reseeded each epoch, which also seeds any workers);
- each epoch's checkpoint holds model, optimiser, EMA, update count and the python /
  numpy / torch random states of every process, and is replaced atomically;
- the per-epoch metrics live in the checkpoint too, and ``metrics.csv`` is rewritten
  from them, so it never holds an epoch the checkpoint does not.

The rules that keep it exact: ``num_workers=0`` or non-persistent workers (the CPU
default), and the same number of torch threads (it changes the order of float sums).
CUDA kernels are not bit-reproducible, so GPU runs resume to the same schedule and data
order, not to the same bits.
"""

from __future__ import annotations

import csv
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from lifestudy import records
from lifestudy.engine.checkpoint import CHECKPOINT, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from lifestudy.engine.config import TrainConfig, resolve
from lifestudy.engine.distributed import Dist, setup, teardown
from lifestudy.engine.trained import load_teacher
from lifestudy.errors import ConfigError, LifestudyError

__all__ = ["train", "TrainingDivergedError", "ShardSampler", "seed_everything", "RECORD", "METRICS_CSV"]

RECORD = "record.json"
CONFIG = "config.json"
METRICS_CSV = "metrics.csv"

# Fields that may differ between a run and its resumption without changing its result.
_RESUME_FREE = {"resume", "quiet", "stop_after_epochs", "device", "num_workers", "root", "out", "compile"}


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


def _check_resumable(saved: dict[str, Any], cfg: TrainConfig, path: Path) -> None:
    now = cfg.to_dict()
    diff = [k for k in now if k not in _RESUME_FREE and saved.get(k) != now[k]]
    if diff:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in diff)
        raise ConfigError(
            f"cannot resume {path}: the run was started with other settings ({details}); "
            "resume with the same options, or start a new run in another --out folder"
        )


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train ``cfg.model`` on ``cfg.data`` as ``cfg`` (and its profile) says; return the record.

    Writes ``config.json``, ``metrics.csv``, ``checkpoint.pt`` (each epoch) and
    ``record.json`` into ``cfg.out``. Under torchrun every process calls this; rank 0
    writes the files and every rank returns the same record.

    Raises:
        ConfigError: bad options, or ``cfg.out`` already holds a run and ``resume`` is off.
        TrainingDivergedError: the loss became NaN/inf (the message names epoch and step).
    """
    d = setup(cfg.device)
    try:
        return _train(cfg, d)
    finally:
        teardown(d)


def _train(cfg: TrainConfig, d: Dist) -> dict[str, Any]:
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler

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
    cfg = resolve(cfg, spec)
    out = Path(cfg.out)
    ckpt_path = out / CHECKPOINT
    device = d.device
    recipe = cfg.recipe

    # ---- resume or start ----------------------------------------------------------
    ckpt = None
    if ckpt_path.exists():
        if not cfg.resume:
            raise ConfigError(
                f"{out} already holds a run ({CHECKPOINT}); pass --resume to continue it, "
                "or choose a new --out folder"
            )
        ckpt = load_checkpoint(ckpt_path)
        _check_resumable(ckpt["config"], cfg, ckpt_path)
        if ckpt["epoch"] >= cfg.epochs and (out / RECORD).exists():
            return records.read_json(out / RECORD)  # finished: nothing to do

    if cfg.batch_size % d.world_size:
        raise ConfigError(
            f"--batch-size {cfg.batch_size} is the global batch; it must divide by the "
            f"{d.world_size} processes"
        )
    per_rank_batch = cfg.batch_size // d.world_size

    # ---- model, data, optimiser ----------------------------------------------------
    seed_everything(cfg.seed)  # the same initial weights on every rank
    model = task.build_model(cfg, spec).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    seed_everything(cfg.seed + d.rank)
    if cfg.teacher:  # distillation: the engine loads the trained teacher and hands it to the task
        task.set_teacher(load_teacher(cfg.teacher, spec, device))
    task.prepare(model, cfg, spec, device)
    train_ds, eval_ds = task.build_datasets(cfg, spec)
    if len(train_ds) == 0 or len(eval_ds) == 0:
        raise ConfigError(f"dataset {cfg.data!r} gave an empty train or test split; check --subset and the data")

    if recipe["repeated_aug"] > 1:
        from timm.data.distributed_sampler import RepeatAugSampler

        sampler = RepeatAugSampler(
            train_ds, num_replicas=d.world_size, rank=d.rank, shuffle=True, num_repeats=recipe["repeated_aug"]
        )
    else:
        sampler = DistributedSampler(
            train_ds, num_replicas=d.world_size, rank=d.rank, shuffle=True, seed=cfg.seed
        )
    loader_gen = torch.Generator()
    cuda = device.type == "cuda"
    if cuda:  # TF32 for what bf16 autocast leaves in fp32 (timm's train.py does the same)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    workers = cfg.num_workers
    train_loader = DataLoader(
        train_ds,
        batch_size=per_rank_batch,
        sampler=sampler,
        num_workers=workers,
        collate_fn=task.collate_fn,
        pin_memory=cuda,
        drop_last=len(sampler) >= per_rank_batch,
        generator=loader_gen,
        persistent_workers=cuda and workers > 0,
    )
    if task.shard_eval:
        eval_sampler = ShardSampler(len(eval_ds), d.rank, d.world_size)
    else:
        eval_sampler = ShardSampler(len(eval_ds) if d.is_main else 0)
    eval_loader = DataLoader(
        eval_ds,
        batch_size=max(2 * per_rank_batch, 64),
        sampler=eval_sampler,
        num_workers=workers,
        collate_fn=task.collate_fn,
        pin_memory=cuda,
    )
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise ConfigError(f"no training batches: {len(train_ds)} images with batch {per_rank_batch}")

    optimizer = create_optimizer_v2(model, opt=recipe["opt"], lr=cfg.lr, weight_decay=recipe["weight_decay"])
    scheduler = CosineLRScheduler(
        optimizer,
        t_initial=cfg.epochs * steps_per_epoch,
        lr_min=recipe["min_lr"],
        warmup_t=recipe["warmup_epochs"] * steps_per_epoch,
        warmup_lr_init=recipe["warmup_lr"],
        t_in_epochs=False,
    )
    ema = _make_ema(model, recipe["ema_decay"]) if recipe["ema"] else None

    start_epoch, num_updates, history, wall_before = 0, 0, [], 0.0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ema is not None and ckpt.get("ema") is not None:
            ema.module.load_state_dict(ckpt["ema"])
        start_epoch, num_updates = int(ckpt["epoch"]), int(ckpt["num_updates"])
        history = list(ckpt["history"])
        wall_before = float(ckpt.get("wall_time_s", 0.0))
        rngs = ckpt["rng"]
        if len(rngs) != d.world_size:
            raise ConfigError(
                f"{ckpt_path} was written by {len(rngs)} processes; resume it with as many "
                f"(now {d.world_size})"
            )
        set_rng_state(rngs[d.rank])
    scheduler.step_update(num_updates)

    train_model = model
    if d.enabled:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if cuda else None,
            find_unused_parameters=task.find_unused_parameters,
        )
    if cfg.compile:
        train_model = torch.compile(train_model)

    if d.is_main:
        out.mkdir(parents=True, exist_ok=True)
        records.write_json_atomic(out / CONFIG, cfg.to_dict())
        _write_csv(out / METRICS_CSV, history)

    # ---- epochs --------------------------------------------------------------------
    show = _progress_enabled(cfg, d)
    from tqdm.auto import tqdm

    epoch_bar = tqdm(
        range(start_epoch, cfg.epochs), initial=start_epoch, total=cfg.epochs,
        desc=f"{cfg.model} on {cfg.data}", unit="epoch", disable=not show, dynamic_ncols=True,
    )
    amp = bool(recipe["amp"])
    clip = recipe["clip_grad"]
    sync_every = 1 if not cuda else 25  # CPU: check every step (free); CUDA: avoid syncs
    stopped = False
    last_eval: dict[str, float] = {}
    for epoch in epoch_bar:
        sampler.set_epoch(epoch if recipe["repeated_aug"] <= 1 else _epoch_seed(cfg.seed, epoch))
        loader_gen.manual_seed(_epoch_seed(cfg.seed, epoch, d.rank))
        train_model.train()
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        log_sums: dict[str, torch.Tensor] = {}
        bad_step = torch.full((), -1, device=device, dtype=torch.long)
        images = 0
        if cuda:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        step_bar = tqdm(train_loader, desc=f"epoch {epoch + 1}", leave=False, unit="batch",
                        disable=not show, dynamic_ncols=True)
        for step, batch in enumerate(step_bar):
            batch = task.to_device(batch, device)
            if cfg.channels_last and isinstance(batch, (list, tuple)) and batch[0].ndim == 4:
                batch = (batch[0].contiguous(memory_format=torch.channels_last), *batch[1:])
            with _autocast(device, amp):
                loss, logs = task.loss(train_model, batch, cfg)
            finite = torch.isfinite(loss.detach())
            bad_step = torch.where((bad_step < 0) & ~finite, torch.full_like(bad_step, step), bad_step)
            if step % sync_every == 0 or step == steps_per_epoch - 1:
                flag = d.all_reduce_max((bad_step >= 0).to(torch.float32))
                if flag.item() > 0:
                    _diverged(cfg, epoch, bad_step, step, d, loss, ckpt_path)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            num_updates += 1
            scheduler.step_update(num_updates)
            if ema is not None:
                _update_ema(ema, model, num_updates)
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

        totals = torch.stack([loss_sum, torch.tensor(float(images), device=device, dtype=torch.float64),
                              *log_sums.values()])
        totals = d.all_reduce_sum(totals)
        seen = totals[1].item()
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": totals[0].item() / seen,
            **{k: totals[2 + i].item() / seen for i, k in enumerate(log_sums)},
            "train_images_per_s": seen / train_time,
        }
        last = epoch + 1 == cfg.epochs
        if last or (recipe["eval_every"] and (epoch + 1) % recipe["eval_every"] == 0):
            eval_model = ema.module if ema is not None else model
            last_eval = _evaluate(task, eval_model, eval_loader, device, amp, d)
            row.update({k if k.startswith("eval_") else f"eval_{k}": v for k, v in last_eval.items()})
        row["epoch_time_s"] = time.perf_counter() - t0
        history.append(row)
        if show:
            epoch_bar.set_postfix(loss=f"{row['train_loss']:.4f}",
                                  **({task.headline_metric: f"{last_eval[task.headline_metric]:.2f}"}
                                     if last_eval else {}))

        # ---- checkpoint (rank 0 writes; every rank's RNG state inside) --------------
        rngs = d.all_gather_object(rng_state())
        if d.is_main:
            save_checkpoint(ckpt_path, {
                "config": cfg.to_dict(),
                "model": model.state_dict(),
                "ema": ema.module.state_dict() if ema is not None else None,
                "optimizer": optimizer.state_dict(),
                "epoch": epoch + 1,
                "num_updates": num_updates,
                "history": history,
                "rng": rngs,
                "wall_time_s": wall_before + time.perf_counter() - t_start,
            })
            _write_csv(out / METRICS_CSV, history)
        d.barrier()
        if cfg.stop_after_epochs is not None and epoch + 1 - start_epoch >= cfg.stop_after_epochs and not last:
            stopped = True
            break
    epoch_bar.close()

    if stopped:
        return {"kind": "train", "task": task.name, "interrupted": True, "epoch": epoch + 1,
                "metrics": dict(last_eval), "config": cfg.to_dict()}

    # ---- record ----------------------------------------------------------------------
    if not last_eval:  # a finished run resumed without its record: evaluate again
        eval_model = ema.module if ema is not None else model
        last_eval = _evaluate(task, eval_model, eval_loader, device, amp, d)
    train_rates = [r["train_images_per_s"] for r in history if r["epoch"] > start_epoch] or [
        r["train_images_per_s"] for r in history]
    metrics = {
        **last_eval,
        "train_loss": history[-1]["train_loss"],
        "train_images_per_s": float(np.median(train_rates)),
        "evaluated": "ema" if ema is not None else "model",
        "headline": task.headline_metric,
    }
    record = {
        "kind": "train",
        "task": task.name,
        "metrics": metrics,
        "provenance": records.provenance(
            profile=cfg.profile,
            dataset=cfg.data,
            subset=cfg.subset,
            model=cfg.model,
            seed=cfg.seed,
            epochs=cfg.epochs,
            device=str(device),
            world_size=d.world_size,
            teacher=cfg.teacher,
            head=cfg.head,
            init=cfg.init,
            img_size=list(cfg.img_size),
            resumed=ckpt is not None,
            wall_time_s=wall_before + time.perf_counter() - t_start,
        ),
        "config": cfg.to_dict(),
    }
    if d.is_main:
        records.write_json_atomic(out / RECORD, record)
    d.barrier()
    return record


def _diverged(cfg, epoch, bad_step, step, d: Dist, loss, ckpt_path: Path):
    where = int(bad_step.item()) if int(bad_step.item()) >= 0 else step
    last_good = f"the checkpoint of epoch {epoch} in {ckpt_path} is left as it was" if epoch else \
        "no checkpoint was written"
    raise TrainingDivergedError(
        f"the training loss became {loss.item()} at epoch {epoch + 1}, step {where + 1} "
        f"({cfg.model} on {cfg.data}, lr {cfg.lr:g}); {last_good}. Lower --lr, enable gradient "
        "clipping (recipe clip_grad) or check the data, then start again (or --resume)"
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

