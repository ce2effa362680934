"""``lifestudy train``: train a model on a dataset with a profile's recipe and write a run record.

Also under torchrun: ``torchrun --nproc_per_node=N -m lifestudy train ...``.
"""

from __future__ import annotations

import argparse
import json

__all__ = ["add_arguments", "run", "config_from_args"]


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _recipe_override(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE (e.g. mixup=0), got {text!r}")
    key, value = text.split("=", 1)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = None if value.lower() in ("none", "null", "off") else value
    return key.strip(), parsed


def add_arguments(p: argparse.ArgumentParser) -> None:
    from lifestudy.profiles import PROFILES

    p.epilog = (
        "Writes config.json, metrics.csv, checkpoint.pt (every epoch) and record.json into --out. "
        "Several processes: torchrun --nproc_per_node=N -m lifestudy train ... "
        "(--batch-size stays the global batch)."
    )
    p.add_argument("--task", default="classification",
                   help="classification | detection | segmentation (default: %(default)s)")
    p.add_argument("--data", required=True, help="dataset name, e.g. digits, fashion-mnist, cifar10, scenes-det")
    p.add_argument("--model", required=True,
                   help="timm model name; `import lifestudy` adds e.g. deit_tiny_patch4_32_life, "
                        "deit_micro_patch4_32, deit_tiny_distilled_patch4_32_life; CNNs: resnet18, resnet50")
    p.add_argument("--profile", default="cpu", choices=list(PROFILES),
                   help="recipe and sizes: smoke (seconds), cpu (laptop), paper (GPU) (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seeds weights, data order and augmentation (default: 0)")
    p.add_argument("--out", required=True,
                   help="run folder to write: new or empty (one run writes it at a time), or the run to --resume")
    p.add_argument("--root", default=None, help="dataset root (default: $LIFESTUDY_DATA or <repo>/data)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: the profile's)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="global batch size over all processes (default: the profile's)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 5e-4 x batch / 512)")
    p.add_argument("--subset", type=int, default=None,
                   help="training images per class (0: all; default: the profile's)")
    p.add_argument("--img-size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="input size the model sees (default: the profile's, else the dataset's)")
    p.add_argument("--teacher", default=None,
                   help="run folder (or checkpoint.pt) of a trained teacher: trains a distilled "
                        "DeiT with DeiT's hard distillation through its distillation token")
    p.add_argument("--head", default=None, help="detection head: encdec | encdec-linear | encdec-life")
    p.add_argument("--init", default=None, help="run folder / checkpoint to initialise the backbone from")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (exactly, on CPU); every "
                        "setting must be the checkpoint's except --quiet, --root, --out and the spelling "
                        "of --device (auto, cuda, cuda:N: the same kind of device)")
    p.add_argument("--allow-change", dest="allow_change", type=_names, action="append", default=[],
                   metavar="NAME[,NAME]",
                   help="with --resume: let lr and/or clip_grad differ from the checkpoint's (a diverged "
                        "run continued from its last good checkpoint, e.g. --resume --allow-change lr "
                        "--lr 2e-4); config.json, the record and metrics.csv say from which epoch")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N | auto (default: auto)")
    p.add_argument("--num-workers", type=int, default=None, help="DataLoader workers (default: the profile's)")
    p.add_argument("--ema", action="store_true", default=None, help="keep and evaluate an EMA of the weights")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    p.add_argument("--set", dest="recipe", type=_recipe_override, action="append", default=[],
                   metavar="FIELD=VALUE",
                   help="change a recipe field, e.g. --set mixup=0 --set clip_grad=1.0 (repeatable; "
                        "see lifestudy.profiles.Recipe)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def config_from_args(args: argparse.Namespace):
    from lifestudy.engine import TrainConfig

    recipe = dict(args.recipe)
    if args.ema:
        recipe["ema"] = True
    return TrainConfig(
        task=args.task, data=args.data, model=args.model, profile=args.profile, seed=args.seed,
        out=args.out, root=args.root, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        subset=args.subset, img_size=tuple(args.img_size) if args.img_size else None,
        teacher=args.teacher, head=args.head, init=args.init, resume=args.resume,
        allow_change=tuple(n for names in args.allow_change for n in names), device=args.device,
        num_workers=args.num_workers, compile=args.compile, channels_last=args.channels_last,
        quiet=args.quiet, recipe=recipe,
    )


def run(args: argparse.Namespace) -> int:
    import os

    from lifestudy.engine import train

    record = train(config_from_args(args))
    if int(os.environ.get("RANK", "0")) == 0:
        m = record["metrics"]
        head = m.get("headline")
        shown = ", ".join(
            f"{k} {v:.4g}" for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
        )
        print(f"{record['task']} {record['config']['model']} on {record['config']['data']}: "
              f"{head} {m.get(head, float('nan')):.4g} ({shown}) -> {args.out}/record.json")
    return 0
