"""``lifestudy rollout``: attention roll-out / Dense Attention Roll-Out maps of a trained run.

Examples::

    lifestudy rollout --checkpoint runs/cpu/rollout/seg-life --data scenes --index 3 --out maps.png
    lifestudy rollout --checkpoint runs/cpu/rollout/seg-life --data scenes --index 3 --method all --out maps.png
    lifestudy rollout --checkpoint runs/cpu/classification/deit --image cat.png --out cat_rollout.png
    lifestudy rollout --checkpoint runs/cpu/rollout/seg-life --data scenes --score 200 --out scores.json

A figure comes with a record beside it (``maps.json``: what was drawn, the scores of each
class map against the ground truth when the dataset has masks, and provenance). With
``--score N`` the command scores the first N test images instead and writes the record only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lifestudy.errors import ConfigError

METHOD_CHOICES = ("dense-rollout", "last-layer", "cls-rollout", "prediction", "all")
FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="DIR",
                        help="a run folder of `lifestudy train` (or its checkpoint.pt)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", metavar="FILE", help="an image file (resized to the run's input size)")
    source.add_argument("--data", metavar="NAME",
                        help="a dataset's test split: the run's own, or for scenes runs any scenes variant")
    parser.add_argument("--index", type=int, default=0, help="the test image to draw (with --data; default 0)")
    parser.add_argument("--out", required=True, metavar="PATH",
                        help="the figure (.png/.pdf/.svg); with --score, the record (.json)")
    parser.add_argument("--method", choices=METHOD_CHOICES, default=None,
                        help="map(s) to draw: default dense-rollout for segmentation runs, "
                             "cls-rollout for classifiers; 'all' draws one row per method")
    parser.add_argument("--score", type=int, default=None, metavar="N",
                        help="score the maps of the first N test images against their masks "
                             "(pointing game, top-region IoU) and write a record to --out")
    parser.add_argument("--head-fusion", choices=("mean", "max", "min"), default="mean")
    parser.add_argument("--discard-ratio", type=float, default=0.0,
                        help="fraction of each fused attention matrix's off-diagonal entries zeroed")
    parser.add_argument("--root", default=None, help="dataset root (default: the run's)")
    parser.add_argument("--device", default="cpu")


def _methods(choice: str | None, task: str) -> list[str] | None:
    from lifestudy.rollout.localisation import METHODS

    if choice == "all":
        return list(METHODS) if task == "segmentation" else ["cls-rollout"]
    if choice is None:
        return ["dense-rollout"] if task == "segmentation" else ["cls-rollout"]
    return [choice]


def _save_figure(fig, out: Path) -> None:
    """Save to a temp file beside ``out`` and rename it over ``out`` (never half a figure)."""
    from lifestudy.records import atomic_write

    with atomic_write(out, "wb") as f:
        fig.savefig(f, format=out.suffix.lstrip(".") or "png", dpi=150, bbox_inches="tight")


def run(args: argparse.Namespace) -> int:
    import time

    import torch

    from lifestudy.engine.trained import load_run
    from lifestudy.records import provenance, write_json_atomic
    from lifestudy.rollout.runs import image_scores, load_image, run_dataset, run_maps, score_run

    out = Path(args.out)
    if args.score is not None:
        if args.data is None:
            raise ConfigError("--score needs --data (the test split whose masks score the maps)")
        if out.suffix != ".json":
            raise ConfigError(f"with --score, --out is the record: give a .json path, not {out}")
        methods = None if args.method in (None, "all") else [args.method]
        kwargs = {"methods": methods} if methods else {}
        rec = score_run(args.checkpoint, n=args.score, data=args.data, root=args.root, out=out,
                        device=args.device, head_fusion=args.head_fusion,
                        discard_ratio=args.discard_ratio, **kwargs)
        for method, metrics in rec["metrics"].items():
            print(f"{method:14s} " + "  ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
        print(f"{'chance':14s} " + "  ".join(f"{k} {v:.3f}" for k, v in rec["chance"].items()))
        print(f"{rec['n_pairs']} (image, class) pairs from {rec['n_images']} images -> {out}")
        return 0
    if out.suffix.lower() not in FIGURE_SUFFIXES:
        raise ConfigError(f"--out is the figure: give one of {', '.join(FIGURE_SUFFIXES)}, not {out}")

    start = time.time()
    model, cfg, spec = load_run(args.checkpoint, device=args.device)
    names = list(spec.class_names) if cfg.task == "segmentation" else ["class-token roll-out"]
    semantic = None
    if args.data is not None:  # the data's spec: its statistics and name (the model's classes stay)
        dataset, spec = run_dataset(cfg, args.data, args.root)
        if not 0 <= args.index < len(dataset):
            raise ConfigError(f"--index {args.index} is outside the test split of {spec.name} (0..{len(dataset) - 1})")
        image, target = dataset[args.index]
        image = torch.as_tensor(image).as_subclass(torch.Tensor)
        if isinstance(target, dict) and "semantic" in target:
            semantic = torch.as_tensor(target["semantic"]).as_subclass(torch.Tensor)
        images = image[None]
        source = {"data": spec.name, "split": "test", "index": args.index}
    else:
        images = load_image(args.image, spec, cfg.img_size)
        source = {"image": str(args.image)}

    maps = run_maps(model, cfg.task, images.to(args.device), _methods(args.method, cfg.task),
                    args.head_fusion, args.discard_ratio)
    maps = {m: v[0].cpu() for m, v in maps.items()}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lifestudy.rollout.figures import plot_class_maps

    title = f"{cfg.model} ({cfg.profile} profile, seed {cfg.seed}): {', '.join(maps)}"
    fig = plot_class_maps(images[0], maps, semantic, class_names=names, mean=spec.mean, std=spec.std,
                          ignore_index=spec.ignore_index, title=title)
    _save_figure(fig, out)
    plt.close(fig)

    record = {
        "kind": "rollout",
        "task": cfg.task,
        "run": str(args.checkpoint),
        "model": cfg.model,
        **source,
        "figure": out.name,
        "methods": list(maps),
        "head_fusion": args.head_fusion,
        "discard_ratio": args.discard_ratio,
        "metrics": image_scores(maps, semantic, ignore_index=spec.ignore_index) if semantic is not None else {},
        "provenance": provenance(profile=cfg.profile, dataset=spec.name, model=cfg.model, seed=cfg.seed,
                                 device=args.device, wall_time_s=round(time.time() - start, 2)),
    }
    write_json_atomic(out.with_suffix(".json"), record)
    print(f"{', '.join(maps)} maps -> {out} (record {out.with_suffix('.json')})")
    return 0
