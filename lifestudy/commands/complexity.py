"""``lifestudy complexity``: parameters (M) and GMACs of a model, beside the paper's figures.

Example (the paper's table: 100 classes at 224x224)::

    lifestudy complexity --model deit_tiny_patch16_224_life --num-classes 100 --img-size 224 224
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", nargs="+", required=True, help="timm model name(s), e.g. deit_tiny_patch16_224_life")
    parser.add_argument("--num-classes", type=int, default=100)
    parser.add_argument("--img-size", nargs=2, type=int, default=None, metavar=("H", "W"),
                        help="input size (default: the model's own, e.g. 224 224; SwinV2-T 256 256)")
    parser.add_argument("--in-chans", type=int, default=3)
    parser.add_argument("--json", default=None, metavar="OUT", help="also write the results as a JSON record")


def run(args: argparse.Namespace) -> int:
    import lifestudy  # noqa: F401  (registers the models)
    from lifestudy.complexity import complexity, complexity_record, default_img_size
    from lifestudy.records import write_json_atomic

    rows = []
    print(f"{'model':32s} {'H x W':>9s} {'classes':>7s} {'params (M)':>10s} {'GMACs':>7s}   paper (M / GMACs)")
    for name in args.model:
        size = tuple(args.img_size) if args.img_size else default_img_size(name)
        row = complexity(name, num_classes=args.num_classes, img_size=size, in_chans=args.in_chans)
        rows.append(row)
        ref = row["paper"]
        paper_txt = f"paper: {ref['params_m']:.2f} / {ref['gmacs']:.2f}" if ref else "-"
        print(f"{name:32s} {size[0]:>4d}x{size[1]:<4d} {args.num_classes:7d} "
              f"{row['params_m']:10.2f} {row['gmacs']:7.2f}   {paper_txt}")
    if args.json:
        write_json_atomic(args.json, complexity_record(rows, device="cpu"))
    return 0
