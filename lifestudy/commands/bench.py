"""``lifestudy bench``: throughput and memory of LIFE models against their baselines.

Example (DeiT-T at 32x32 patch 4, batch 64, 2 CPU threads; ``--life-reference`` times LIFE's
previous eager path instead, the "before" of a before/after)::

    lifestudy bench --models deit_tiny_patch4_32 --img-size 32 32 --batch-size 64 \\
        --device cpu --threads 2 --repeats 7 --out runs/bench/cpu.json
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", default=["deit_tiny_patch4_32"],
                        help="baseline (or _life) model names; each is timed against its twin")
    parser.add_argument("--img-size", nargs=2, type=int, default=[32, 32], metavar=("H", "W"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-classes", type=int, default=100)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default: 2)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--modes", nargs="+", default=["train", "infer"], choices=["train", "infer"])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed samples per model and mode")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default 1 on CPU, 5 on CUDA)")
    parser.add_argument("--steps", type=int, default=None, help="steps per sample (default 1 on CPU, 10 on CUDA)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall-clock time, or process CPU time (steadier on a shared CPU machine)")
    parser.add_argument("--compile", action="store_true",
                        help="time both models under torch.compile (compiled in the warm-up steps)")
    parser.add_argument("--life-reference", action="store_true",
                        help="run LIFE through LIFE.forward_reference, its previous eager path (a before/after)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the JSON record here")


def run(args: argparse.Namespace) -> int:
    from lifestudy.bench import BenchConfig, bench, format_table
    from lifestudy.records import write_json_atomic

    cfg = BenchConfig(
        models=list(args.models), img_size=tuple(args.img_size), batch_size=args.batch_size,
        num_classes=args.num_classes, device=args.device, threads=args.threads, amp=args.amp,
        modes=tuple(args.modes), repeats=args.repeats, warmup=args.warmup, steps=args.steps,
        clock=args.clock, compile=args.compile, life_reference=args.life_reference, seed=args.seed,
    )
    record = bench(cfg, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(format_table(record))
    if args.out:
        path = write_json_atomic(args.out, record)
        print(f"record: {path}")
    return 0
