"""The detection heads compared where a CPU cannot: longer training on a GPU.

At the cpu profile's scale the DETR-style detectors stay near chance (chapter 5), so the
three heads cannot be ranked there. This script trains DeiT-T (patch 4) detectors with
each head on the generated scenes (64x64 canvases) for as long as a few GPU minutes
allow, seed by seed, and writes the usual run records (one folder per run under --out).
The head sizes and recipe are the cpu profile's; only epochs, canvases and device change.

    python benchmarks/detection_gpu.py --out runs/gpu/detection --epochs 40 --seeds 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lifestudy.engine import TrainConfig, train  # noqa: E402

HEADS = ("encdec", "encdec-linear", "encdec-life")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--backbone", default="deit_tiny_patch4_64")
    ap.add_argument("--img-size", type=int, nargs=2, default=[64, 64])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--canvases", type=int, nargs=2, default=[4000, 500], metavar=("TRAIN", "TEST"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    for seed in args.seeds:
        for head in HEADS:
            record = train(TrainConfig(
                task="detection", data="scenes-det", model=args.backbone, head=head, profile="cpu",
                seed=seed, epochs=args.epochs, batch_size=args.batch_size, img_size=tuple(args.img_size),
                device=args.device, quiet=True, out=str(Path(args.out) / head / f"seed{seed}"),
                options={"train_length": args.canvases[0], "test_length": args.canvases[1]},
            ))
            m = record["metrics"]
            print(f"{head} seed {seed}: mAP@0.5 {m.get('map_50'):.2f}  mAP {m.get('map'):.2f}  F1 {m.get('f1'):.2f}  "
                  f"({record['provenance'].get('wall_time_s', 0):.0f} s)", flush=True)


if __name__ == "__main__":
    main()
