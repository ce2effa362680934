"""Is the engine the bottleneck? Its training throughput against the bare model step.

For each model, at the profile's batch size and input size, on one process:

- ``bare``: forward, loss, backward and the optimiser step (timm AdamW) on one fixed
  tensor already in memory -- what the model itself costs;
- ``engine``: ``lifestudy.engine.train`` on the real dataset with the profile's recipe
  (data order, augmentation, label smoothing, clipping, schedule, NaN guard, metrics),
  read from ``metrics.csv`` (``train_images_per_s``: training steps only, evaluation
  excluded).

The two are measured in alternation (``--rounds`` times each) and the medians compared,
so a machine that other work slows down slows both alike; both are also given per second
of the process's CPU time (``train_images_per_cpu_s``), which other work barely moves.
The target (issue 13): engine >= 0.9 x bare for the cpu profile's models. ``--threads 1`` measures one core (the
cpu profile runs two one-thread runs side by side on two cores). Example::

    OMP_NUM_THREADS=1 python benchmarks/engine_throughput.py --threads 1 --rounds 3 \\
        --out benchmarks/results/cpu/engine_throughput.json

Results go to stdout and, with ``--out``, to a record (``kind: "engine_throughput"``).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lifestudy  # noqa: E402,F401  (registers the models)
from lifestudy import records  # noqa: E402
from lifestudy.data import get_spec  # noqa: E402
from lifestudy.engine import TrainConfig, resolve, train  # noqa: E402

DEFAULT_MODELS = ("deit_micro_patch4_32", "deit_micro_patch4_32_life", "resnet10t")


def bare_rate(cfg: TrainConfig, spec, seconds: float) -> tuple[float, float]:
    """Images per second of wall time and of process CPU time, of forward + loss +
    backward + optimiser step on one fixed batch."""
    from timm.loss import LabelSmoothingCrossEntropy

    from lifestudy.engine.loop import create_optimizer
    from lifestudy.tasks.classification import build_classifier

    r = cfg.recipe
    torch.manual_seed(0)
    model = build_classifier(cfg.model, spec.num_classes, spec.in_chans, cfg.img_size, r["drop_path"]).train()
    opt = create_optimizer(model, r["opt"], cfg.lr, r["weight_decay"])
    loss_fn = LabelSmoothingCrossEntropy(r["label_smoothing"]) if r["label_smoothing"] else torch.nn.CrossEntropyLoss()
    x = torch.randn(cfg.batch_size, spec.in_chans, *cfg.img_size)
    y = torch.randint(0, spec.num_classes, (cfg.batch_size,))

    def step():
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return n * cfg.batch_size / (time.perf_counter() - t0), n * cfg.batch_size / (time.process_time() - c0)


def engine_rate(cfg: TrainConfig, folder: Path) -> tuple[float, float]:
    """Median ``train_images_per_s`` and ``train_images_per_cpu_s`` over the epochs of a
    short engine run (the first epoch left out when there are more)."""
    train(TrainConfig(**{**cfg.to_dict(), "resolved": False, "out": str(folder)}))
    with open(folder / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    rows = rows[1:] if len(rows) > 1 else rows
    return (statistics.median(float(r["train_images_per_s"]) for r in rows),
            statistics.median(float(r["train_images_per_cpu_s"]) for r in rows))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--root", default=None, help="dataset root (default: $LIFESTUDY_DATA or <repo>/data)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the profile's")
    p.add_argument("--epochs", type=int, default=3, help="epochs of each engine run (the first is not counted)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each bare measurement")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="write a record here (JSON)")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    results = []
    for model in args.models:
        base = TrainConfig(data=args.data, model=model, profile=args.profile, root=args.root, device="cpu",
                           batch_size=args.batch_size, epochs=args.epochs, quiet=True, out="unused",
                           recipe={"min_steps": 0, "eval_points": 0, "eval_every": 0, "eval_subset": 64})
        cfg = resolve(base)
        spec = get_spec(cfg.data, cfg.root)
        bare, engine = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.rounds):
                bare.append(bare_rate(cfg, spec, args.seconds))
                engine.append(engine_rate(cfg, Path(tmp) / f"run{i}"))
        row = {"model": model, "data": args.data, "batch_size": cfg.batch_size, "img_size": list(cfg.img_size),
               "threads": args.threads,
               "bare_images_per_s": statistics.median(b[0] for b in bare),
               "engine_images_per_s": statistics.median(e[0] for e in engine),
               "bare_images_per_cpu_s": statistics.median(b[1] for b in bare),
               "engine_images_per_cpu_s": statistics.median(e[1] for e in engine),
               "bare_all": bare, "engine_all": engine}
        row["ratio"] = row["engine_images_per_s"] / row["bare_images_per_s"]
        row["ratio_cpu"] = row["engine_images_per_cpu_s"] / row["bare_images_per_cpu_s"]
        results.append(row)
        print(f"{model:28s} batch {cfg.batch_size:3d} | wall: bare {row['bare_images_per_s']:6.1f} "
              f"engine {row['engine_images_per_s']:6.1f} img/s ratio {row['ratio']:.2f} | CPU time: bare "
              f"{row['bare_images_per_cpu_s']:6.1f} engine {row['engine_images_per_cpu_s']:6.1f} img/s "
              f"ratio {row['ratio_cpu']:.2f}", flush=True)
    if args.out:
        records.write_json_atomic(args.out, {
            "kind": "engine_throughput", "results": results,
            "provenance": records.provenance(device="cpu", threads=args.threads, profile=args.profile),
        })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
