"""``lifestudy eval``: evaluate a trained run's checkpoint on a dataset."""

from __future__ import annotations

import argparse
import json

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = "Writes <run>/eval-<data>.json (an 'eval' record) and prints the metrics."
    p.add_argument("--checkpoint", required=True, metavar="RUN",
                   help="run folder written by `lifestudy train` (or its checkpoint.pt)")
    p.add_argument("--data", default=None, help="dataset to evaluate on (default: the run's own)")
    p.add_argument("--root", default=None, help="dataset root (default: the run's, else $LIFESTUDY_DATA or <repo>/data)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=128, help="evaluation batch size (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the whole record as JSON")


def run(args: argparse.Namespace) -> int:
    from lifestudy.engine import evaluate_run

    record = evaluate_run(args.checkpoint, data=args.data, root=args.root, device=args.device,
                          batch_size=args.batch_size)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        m = record["metrics"]
        shown = ", ".join(f"{k} {v:.4g}" for k, v in m.items())
        print(f"{record['provenance']['model']} on {record['provenance']['dataset']}: {shown}")
    return 0
