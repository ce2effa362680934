"""``lifestudy data check|fetch|list``: is a dataset usable, and how to get it.

    lifestudy data check fashion-mnist --root data      # one line, exit 0; else a message, exit 2
    lifestudy data check tiny-imagenet --full           # also opens every image
    lifestudy data fetch fashion-mnist --root data      # link the Debian files, or download
    lifestudy data list                                 # names, tasks, classes, input sizes
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from lifestudy.data import DATASETS

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    root_help = "the data root holding every dataset's folder (default: $LIFESTUDY_DATA, else <repo>/data)"
    check = sub.add_parser("check", help="check that a dataset is usable; print a one-line summary",
                           description="Exit 0 with a summary when NAME is usable under the root; "
                                       "otherwise exit 2 with the expected layout and how to get it.")
    check.add_argument("name", choices=DATASETS, metavar="NAME", help=", ".join(DATASETS))
    check.add_argument("--root", default=None, help=root_help)
    check.add_argument("--full", action="store_true",
                       help="open every image (default: one per class folder / a few per split)")
    fetch = sub.add_parser("fetch", help="download or link a dataset, or print the manual steps",
                           description="Download what torchvision can download, link the Debian "
                                       "package's Fashion-MNIST, print the steps for manual datasets.")
    fetch.add_argument("name", choices=DATASETS, metavar="NAME", help=", ".join(DATASETS))
    fetch.add_argument("--root", default=None, help=root_help)
    sub.add_parser("list", help="list the datasets with their task, classes and input size")


def run(args: argparse.Namespace) -> int:
    from lifestudy import data

    if getattr(args, "root", None) is not None:
        from lifestudy.engine.runfolder import folder_problem
        from lifestudy.errors import ConfigError

        problem = folder_problem(args.root, "--root", writable=args.action == "fetch")
        if problem:
            raise ConfigError(problem)
    if args.action == "check":
        print(data.check(args.name, args.root, full=args.full))
    elif args.action == "fetch":
        print(data.fetch(args.name, args.root))
    else:
        for name in data.DATASETS:
            spec = data.SPECS[name]
            H, W = spec.input_size
            print(f"{name:14s} {spec.task:15s} {spec.num_classes:4d} classes  "
                  f"input {H}x{W}x{spec.in_chans}  {spec.note}")
    return 0
