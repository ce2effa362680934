"""Throughput and memory of LIFE models against their baselines, as ratios from one run.

Each LIFE model is timed beside its baseline in the same process, repetitions interleaved
(A B, B A, A B, ...) so that whatever else the machine is doing hits both alike; a ratio is
taken per adjacent pair and the median reported (plus the median throughputs).

What is measured:

- throughput is wall-clock by default; ``clock="cpu"`` times the process's CPU time instead,
  which other jobs on a shared machine disturb far less (with one thread it equals the time the
  step computed; with several it also counts threads waiting for each other).
- ``train``: images/s of a full optimisation step (forward, cross-entropy, backward, the engine's AdamW
  step) on random data of the given size; ``infer``: images/s of an eval-mode forward under
  ``torch.inference_mode``. On CUDA every timed block ends with a synchronisation.
  ``compile=True`` times both models under ``torch.compile`` (compiled in the warm-up steps);
  ``life_reference=True`` runs the LIFE models through :meth:`lifestudy.life.LIFE.forward_reference`
  (LIFE's previous eager path: modules and autograd) instead of its autograd function, for
  before/after comparisons.
- memory: ``activation_mb`` is the size of the tensors autograd keeps for backward in one
  training forward pass (unique storages, parameters excluded; counted with
  ``torch.autograd.graph.saved_tensors_hooks``, in eager mode) — exact and device-independent,
  and the part of training memory that LIFE changes. On CUDA also ``peak_train_mb`` /
  ``peak_infer_mb``: ``torch.cuda.max_memory_allocated`` over a step. (On CPU there is no
  allocator peak to read: the process RSS keeps freed memory, so it is not reported.)

The record (``kind: "bench"``) is written with :func:`lifestudy.records.write_json_atomic`.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from lifestudy.engine.distributed import resolve_device
from lifestudy.engine.loop import create_optimizer
from lifestudy.errors import ConfigError

__all__ = ["BenchConfig", "bench", "activation_bytes", "format_table"]


@dataclass
class BenchConfig:
    """One benchmark run (the CLI's ``lifestudy bench`` options)."""

    models: list[str] = field(default_factory=lambda: ["deit_tiny_patch4_32"])  # baselines or their _life twins
    img_size: tuple[int, int] = (32, 32)
    batch_size: int = 64
    num_classes: int = 100
    device: str = "cpu"
    threads: int | None = 2  # CPU threads (None: leave torch's setting)
    amp: bool = False  # bf16 autocast
    modes: tuple[str, ...] = ("train", "infer")
    repeats: int = 5  # timed samples per model and mode (interleaved)
    warmup: int | None = None  # untimed steps per model and mode (None: 1 on CPU, 5 on CUDA)
    steps: int | None = None  # steps per timed sample (None: 1 on CPU, 10 on CUDA)
    clock: str = "wall"  # "wall", or "cpu": process CPU time (CPU only; steadier on a shared machine)
    compile: bool = False  # time both models under torch.compile (the warm-up steps compile)
    life_reference: bool = False  # LIFE through LIFE.forward_reference (its previous eager path)
    seed: int = 0


def _pairs(models: list[str]) -> list[tuple[str, str]]:
    from lifestudy.models import baseline_of, life_twin

    pairs = []
    for name in models:
        twin = life_twin(name)
        pair = (baseline_of(twin), twin)
        if pair not in pairs:
            pairs.append(pair)
    return pairs


def _device(name: str) -> torch.device:
    """The device to time on (:func:`lifestudy.engine.distributed.resolve_device`): CPU or CUDA."""
    dev = resolve_device(name)
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"bench runs on cpu or cuda, not {name!r}")
    return dev


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def activation_bytes(model: nn.Module, x: torch.Tensor, autocast: Callable[[], Any] = contextlib.nullcontext) -> int:
    """Bytes of the tensors autograd saves for backward in one forward pass of ``model(x)``
    (unique storages; parameters and their views excluded)."""
    param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in param_ptrs:
            seen[ptr] = max(seen.get(ptr, 0), storage.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast():
        out = model(x)
    del out
    return sum(seen.values())


class _Runner:
    """A model with its optimiser and one fixed batch; ``train()`` / ``infer()`` do one step each."""

    def __init__(self, name: str, cfg: BenchConfig, dev: torch.device) -> None:
        import timm

        torch.manual_seed(cfg.seed)
        self.name = name
        self.dev = dev
        self.model = timm.create_model(name, num_classes=cfg.num_classes, img_size=tuple(cfg.img_size)).to(dev)
        if cfg.life_reference:
            from lifestudy.life import life_modules

            for m in life_modules(self.model):
                m.forward = m.forward_reference
        self.forward = torch.compile(self.model) if cfg.compile else self.model
        self.opt = create_optimizer(self.model, "adamw", lr=1e-4, weight_decay=0.05)  # the engine's
        g = torch.Generator().manual_seed(cfg.seed)
        self.x = torch.randn(cfg.batch_size, 3, *cfg.img_size, generator=g).to(dev)
        self.y = torch.randint(0, cfg.num_classes, (cfg.batch_size,), generator=g).to(dev)
        amp = cfg.amp
        self.autocast = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if amp else contextlib.nullcontext

    def train(self) -> None:
        self.model.train()
        with self.autocast():
            out = self.forward(self.x)
            out = out[0] if isinstance(out, tuple) else out
            loss = F.cross_entropy(out.float(), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def infer(self) -> None:
        self.model.eval()
        with torch.inference_mode(), self.autocast():
            self.forward(self.x)

    def memory(self) -> dict[str, float]:
        self.model.train()
        mem = {"activation_mb": activation_bytes(self.model, self.x, self.autocast) / 2**20}
        if self.dev.type == "cuda":
            for mode in ("train", "infer"):
                _sync(self.dev)
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(self.dev)
                getattr(self, mode)()
                _sync(self.dev)
                mem[f"peak_{mode}_mb"] = torch.cuda.max_memory_allocated(self.dev) / 2**20
        return mem


def _time(runner: _Runner, mode: str, steps: int, clock: Callable[[], float] = time.perf_counter) -> float:
    """Images/s of ``steps`` consecutive steps."""
    step = getattr(runner, mode)
    _sync(runner.dev)
    start = clock()
    for _ in range(steps):
        step()
    _sync(runner.dev)
    return steps * runner.x.shape[0] / (clock() - start)


def bench(cfg: BenchConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time each LIFE model of ``cfg.models`` against its baseline; returns the record (not written)."""
    from lifestudy.records import device_name, provenance

    dev = _device(cfg.device)
    bad = set(cfg.modes) - {"train", "infer"}
    if bad:
        raise ConfigError(f"unknown bench mode(s) {sorted(bad)}: use train and/or infer")
    if cfg.repeats < 1 or cfg.batch_size < 1:
        raise ConfigError("--repeats and --batch-size must be at least 1")
    if cfg.clock not in ("wall", "cpu") or (cfg.clock == "cpu" and dev.type != "cpu"):
        raise ConfigError(f"--clock must be wall, or cpu on a CPU device (got {cfg.clock!r} on {dev.type})")
    clock = time.process_time if cfg.clock == "cpu" else time.perf_counter
    steps = cfg.steps or (10 if dev.type == "cuda" else 1)
    warmup = cfg.warmup if cfg.warmup is not None else (5 if dev.type == "cuda" else 1)
    old_threads = torch.get_num_threads()
    if dev.type == "cpu" and cfg.threads:
        torch.set_num_threads(cfg.threads)
    measured_on = device_name(dev)  # with the thread count it is timed with
    log = log or (lambda msg: None)
    results = []
    started = time.time()
    try:
        for base_name, life_name in _pairs(list(cfg.models)):
            runners = [_Runner(base_name, cfg, dev), _Runner(life_name, cfg, dev)]
            row: dict[str, Any] = {"baseline": base_name, "life": life_name}
            for mode in cfg.modes:
                for r in runners:
                    for _ in range(warmup):
                        getattr(r, mode)()
                samples: list[list[float]] = [[], []]
                for rep in range(cfg.repeats):
                    order = (0, 1) if rep % 2 == 0 else (1, 0)
                    for i in order:
                        samples[i].append(_time(runners[i], mode, steps, clock))
                ratios = [life / base for base, life in zip(*samples)]
                row[mode] = {
                    "baseline_img_s": statistics.median(samples[0]),
                    "life_img_s": statistics.median(samples[1]),
                    "ratio": statistics.median(ratios),
                    "ratios": ratios,
                    "baseline_samples": samples[0],
                    "life_samples": samples[1],
                }
                log(f"{life_name} {mode}: {row[mode]['ratio']:.3f}x of {base_name} "
                    f"({row[mode]['life_img_s']:.1f} vs {row[mode]['baseline_img_s']:.1f} img/s)")
            mems = [r.memory() for r in runners]
            row["memory"] = {
                key: {"baseline": mems[0][key], "life": mems[1][key], "ratio": mems[1][key] / mems[0][key]}
                for key in mems[0]
            }
            results.append(row)
            del runners
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    finally:
        torch.set_num_threads(old_threads)
    metrics = {}
    for row in results:
        for mode in cfg.modes:
            metrics[f"{row['life']}/{mode}_ratio"] = row[mode]["ratio"]
        metrics[f"{row['life']}/activation_ratio"] = row["memory"]["activation_mb"]["ratio"]
    return {
        "kind": "bench",
        "config": asdict(cfg),
        "results": results,
        "metrics": metrics,
        "provenance": provenance(
            device=str(dev), device_name=measured_on,
            threads=torch.get_num_threads() if cfg.threads is None else cfg.threads,
            amp=cfg.amp, clock=cfg.clock, wall_time_s=time.time() - started,
        ),
    }


def format_table(record: dict[str, Any]) -> str:
    """The record as a small text table (one line per model and mode)."""
    lines = [f"{'model':34s} {'mode':5s} {'baseline img/s':>14s} {'LIFE img/s':>10s} {'ratio':>6s}"]
    for row in record["results"]:
        for mode in record["config"]["modes"]:
            r = row[mode]
            lines.append(f"{row['life']:34s} {mode:5s} {r['baseline_img_s']:14.1f} "
                         f"{r['life_img_s']:10.1f} {r['ratio']:6.3f}")
        for key, m in row["memory"].items():
            lines.append(f"{row['life']:34s} {key}: {m['baseline']:.1f} -> {m['life']:.1f} MB ({m['ratio']:.3f}x)")
    return "\n".join(lines)
