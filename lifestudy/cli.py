"""The ``lifestudy`` command line (also ``python -m lifestudy``).

Each subcommand lives in its own module under :mod:`lifestudy.commands` and provides
``add_arguments(parser)`` and ``run(args) -> int``; modules are imported only when their
subcommand runs, so ``lifestudy data --help`` does not pay for building models.
Errors derived from :class:`lifestudy.errors.LifestudyError` are printed as a message
(no traceback) with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from lifestudy.errors import LifestudyError

__all__ = ["main", "build_parser", "SUBCOMMANDS"]

#: subcommand -> (module under lifestudy.commands, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "train a model (classification, detection or segmentation) and write a run record"),
    "eval": ("evaluate", "evaluate a trained run's checkpoint on a dataset"),
    "complexity": ("complexity", "parameters (M) and GMACs of a model, beside the paper's figures"),
    "bench": ("bench", "throughput and peak memory of LIFE models against their baselines"),
    "data": ("data", "check or fetch a dataset"),
    "rollout": ("rollout", "attention roll-out / Dense Attention Roll-Out maps of a trained model"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lifestudy",
        description="Reproducible study of LIFE for Vision Transformers (arXiv 2305.08551).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = sys.argv[1] if len(sys.argv) > 1 else None
    for name, (module, help_) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        # Only the chosen subcommand's module is imported (its options need it).
        if name == wanted or wanted in (None, "-h", "--help"):
            if name == wanted:
                mod = importlib.import_module(f"lifestudy.commands.{module}")
                mod.add_arguments(p)
                p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:])
    try:
        return int(args._run(args) or 0)
    except LifestudyError as err:
        print(f"lifestudy {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"lifestudy {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
