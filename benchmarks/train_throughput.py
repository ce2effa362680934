"""Where does the time of a training run go: the model step, or the data pipeline?

Trains a model on synthetic CIFAR-shaped data (by default 50,000 random 32x32 RGB images,
10 classes) with the engine's recipe pieces and reports images/s of:

- ``model``: the training step alone on batches already on the device (forward,
  SoftTargetCrossEntropy after timm ``Mixup``/cutmix on the device, backward, AdamW);
- ``pil``: the same step fed by the engine's pipeline: a DataLoader with ``--workers``
  processes running the classification transforms on PIL images (random crop with
  padding, flip, timm RandAugment, random erasing), pinned memory, non-blocking copies;
- ``gpu``: uint8 images kept on the device, augmented there in batches (random crop with
  padding and flip per image, torchvision's tensor RandAugment per batch, timm's
  ``RandomErasing`` on the device), then the same step: the path to take when the
  CPU pipeline is the bottleneck.

From the rates it estimates the wall time of a 300-epoch CIFAR-10 run (epochs x images /
rate, ignoring evaluation). Examples::

    python benchmarks/train_throughput.py --device cpu --threads 2 --model deit_tiny_patch4_32_life
    python benchmarks/train_throughput.py --device cuda --amp --workers 14 --batch-size 256 \\
        --model deit_tiny_patch4_32_life --channels-last --compile --out runs/bench/train_tp.json

Results go to stdout and, with ``--out``, to a record (``kind: "train_throughput"``).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lifestudy  # noqa: E402,F401  (registers the models)
from lifestudy import records  # noqa: E402
from lifestudy.engine.distributed import resolve_device  # noqa: E402
from lifestudy.profiles import get_profile  # noqa: E402
from lifestudy.tasks.classification import build_classifier, classification_transforms  # noqa: E402

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class SyntheticImages(torch.utils.data.Dataset):
    """``n`` random uint8 HxWx3 images as PIL (what a CIFAR dataset hands its transforms)."""

    def __init__(self, n: int, size: tuple[int, int], num_classes: int, transform=None):
        g = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (n, *size, 3), dtype=torch.uint8, generator=g).numpy()
        self.labels = torch.randint(0, num_classes, (n,), generator=g).tolist()
        self.transform = transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image

        img = Image.fromarray(self.images[i])
        return (self.transform(img) if self.transform else img), self.labels[i]


class _Spec:
    """The slice of a DatasetSpec the transforms read."""

    def __init__(self, size):
        self.mean, self.std, self.in_chans = CIFAR_MEAN, CIFAR_STD, 3
        self.input_size = self.native_size = tuple(size)


def gpu_augment(images: torch.Tensor, recipe: dict, randaug) -> torch.Tensor:
    """Batched augmentation on the device: uint8 (B, 3, H, W) -> normalised float."""
    B, _, H, W = images.shape
    pad = recipe["crop_padding"]
    if pad:
        padded = F.pad(images, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (B,), device=images.device)
        dx = torch.randint(0, 2 * pad + 1, (B,), device=images.device)
        rows = (dy[:, None] + torch.arange(H, device=images.device)[None])[:, None, :, None]
        cols = (dx[:, None] + torch.arange(W, device=images.device)[None])[:, None, None, :]
        images = padded[torch.arange(B, device=images.device)[:, None, None, None],
                        torch.arange(3, device=images.device)[None, :, None, None], rows, cols]
    if recipe["hflip"] > 0:
        flip = torch.rand(B, device=images.device) < recipe["hflip"]
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    if randaug is not None:
        images = randaug(images)
    x = images.float().div_(255)
    mean = torch.tensor(CIFAR_MEAN, device=x.device)[None, :, None, None]
    std = torch.tensor(CIFAR_STD, device=x.device)[None, :, None, None]
    return (x - mean) / std


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="deit_tiny_patch4_32_life")
    p.add_argument("--profile", default="paper", help="whose recipe to use (default: %(default)s)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--img-size", type=int, nargs=2, default=(32, 32), metavar=("H", "W"))
    p.add_argument("--num-images", type=int, default=50_000)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (compile, cudnn autotune)")
    p.add_argument("--workers", type=int, default=8, help="DataLoader workers of the PIL pipeline")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--pipelines", nargs="+", default=["model", "pil", "gpu"], choices=["model", "pil", "gpu"])
    p.add_argument("--epochs", type=int, default=300, help="for the run-time estimate")
    p.add_argument("--out", default=None, help="write a record (JSON) here")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    recipe = dict(vars(get_profile(args.profile).recipe))
    H, W = args.img_size
    torch.manual_seed(0)

    from timm.data import Mixup
    from timm.data.random_erasing import RandomErasing
    from timm.loss import SoftTargetCrossEntropy
    from timm.optim import create_optimizer_v2

    model = build_classifier(args.model, args.num_classes, 3, (H, W), recipe["drop_path"]).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = create_optimizer_v2(model, opt="adamw", lr=5e-4, weight_decay=0.05)
    step_model = torch.compile(model) if args.compile else model
    mixup = Mixup(mixup_alpha=recipe["mixup"], cutmix_alpha=recipe["cutmix"], label_smoothing=0.1,
                  num_classes=args.num_classes) if recipe["mixup"] or recipe["cutmix"] else None
    loss_fn = SoftTargetCrossEntropy()
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if args.amp and cuda
                else contextlib.nullcontext())

    def step(x, y):
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if mixup is not None:
            x, y = mixup(x, y)
        else:
            y = F.one_hot(y, args.num_classes).float()
        with autocast:
            loss = loss_fn(step_model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    def timed(batches, n_steps):
        """images/s over ``n_steps`` after ``args.warmup`` untimed ones."""
        it = iter(batches)
        for _ in range(args.warmup):
            step(*next(it))
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n_steps):
            loss = step(*next(it))
        loss.item()
        if cuda:
            torch.cuda.synchronize()
        return n_steps * args.batch_size / (time.perf_counter() - t0)

    B = args.batch_size
    results: dict[str, float] = {}
    if "model" in args.pipelines:
        x = torch.randn(B, 3, H, W, device=device)
        y = torch.randint(0, args.num_classes, (B,), device=device)
        results["model"] = timed(iter(lambda: (x, y), None), args.steps)

    if "pil" in args.pipelines:
        tf = classification_transforms(recipe, _Spec((H, W)), (H, W), train=True)
        ds = SyntheticImages(min(args.num_images, B * (args.steps + args.warmup + 2)), (H, W),
                             args.num_classes, tf)
        loader = torch.utils.data.DataLoader(ds, batch_size=B, shuffle=True, drop_last=True,
                                             num_workers=args.workers, pin_memory=cuda,
                                             persistent_workers=args.workers > 0)

        def batches():
            while True:
                for x, y in loader:
                    yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)

        results["pil"] = timed(batches(), args.steps)
        # The pipeline alone: how many images/s the workers deliver.
        t0 = time.perf_counter()
        n = 0
        for x, _ in loader:
            n += len(x)
        results["pil_pipeline_only"] = n / (time.perf_counter() - t0)

    if "gpu" in args.pipelines:
        from torchvision.transforms import v2

        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (args.num_images, 3, H, W), dtype=torch.uint8, generator=g).to(device)
        labels = torch.randint(0, args.num_classes, (args.num_images,), generator=g).to(device)
        randaug = v2.RandAugment(num_ops=2, magnitude=9) if recipe["randaugment"] else None
        erase = RandomErasing(recipe["reprob"], mode="pixel", max_count=1, device=str(device)) \
            if recipe["reprob"] else None

        def gpu_batches():
            while True:
                order = torch.randperm(args.num_images, device=device)
                for i in range(0, args.num_images - B + 1, B):
                    idx = order[i:i + B]
                    x = gpu_augment(images[idx], recipe, randaug)
                    yield (erase(x) if erase else x), labels[idx]

        results["gpu"] = timed(gpu_batches(), args.steps)

    line = ", ".join(f"{k} {v:,.0f} img/s" for k, v in results.items())
    print(f"{args.model} {H}x{W} batch {B} on {records.device_name(device)}: {line}")
    for k in ("model", "pil", "gpu"):
        if k in results:
            minutes = args.epochs * args.num_images / results[k] / 60
            print(f"  {k:>5}: {args.epochs} epochs x {args.num_images:,} images ~ {minutes:,.1f} min")
    if args.out:
        records.write_json_atomic(args.out, {
            "kind": "train_throughput",
            "metrics": {f"{k}_images_per_s": v for k, v in results.items()},
            "provenance": records.provenance(model=args.model, device=str(device), batch_size=B,
                                             img_size=[H, W], amp=args.amp, compile=args.compile,
                                             channels_last=args.channels_last, workers=args.workers,
                                             threads=torch.get_num_threads(), profile=args.profile),
        })
    return 0


if __name__ == "__main__":
    sys.exit(main())
