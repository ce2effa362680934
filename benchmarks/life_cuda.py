"""Where LIFE's time goes on a GPU, and which layout of its depthwise convs is fastest there.

Times a whole-model training step (forward, backward, AdamW; bf16 autocast) of a LIFE model
against its baseline on CUDA, with LIFE's depthwise-conv path swapped between layouts:

- ``channels_last``: what :class:`lifestudy.life.LIFE` does (channels-last views, no copy);
- ``nchw``: the patch tokens copied into a contiguous NCHW image for the conv and back;
- ``fp32``: as ``channels_last`` with the depthwise conv run in float32 outside autocast;
- ``no_dw``: the depthwise convs skipped (not LIFE: a lower bound on what they cost).

Then prints the top CUDA kernels of one LIFE training step (torch.profiler).

    python benchmarks/life_cuda.py --model deit_tiny_patch4_32 --img-size 32 --batch-size 256 1024
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import timm  # noqa: E402

import lifestudy  # noqa: E402,F401
from lifestudy import records  # noqa: E402
from lifestudy.life import LIFE  # noqa: E402
from benchmarks.life_layout import _conv_channels_last, _streams  # noqa: E402



class DepthwiseLayout(torch.nn.Module):
    """Runs a LIFE depthwise conv (given a channels-last view) in another layout."""

    def __init__(self, conv: torch.nn.Conv2d, layout: str):
        super().__init__()
        self.conv, self.layout = conv, layout

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.layout == "nchw":
            return self.conv(image.contiguous())
        if self.layout == "fp32":
            with torch.autocast("cuda", enabled=False):
                return self.conv(image.float()).to(image.dtype)
        if self.layout == "no_dw":
            return image
        return self.conv(image)


LAYOUTS = ("channels_last", "nchw", "fp32", "no_dw")


class _CatContiguousGrad(torch.autograd.Function):
    """``torch.cat(parts, -1)`` whose backward hands each part a *contiguous* gradient
    (autograd's own backward gives strided slices, which the Linear backward then reduces
    over slowly on CUDA)."""

    @staticmethod
    def forward(ctx, *parts):
        ctx.widths = [p.shape[-1] for p in parts]
        return torch.cat(parts, dim=-1)

    @staticmethod
    def backward(ctx, grad):
        return tuple(g.contiguous() for g in grad.split(ctx.widths, dim=-1))


def forward_contiguous_grads(self, x, grid_size=None):
    """LIFE.forward with the q|k|v concatenations through :class:`_CatContiguousGrad`."""
    gh, gw = self._grid(x.shape[1], grid_size)
    return _streams(self, x, gh, gw, _conv_channels_last, cat=lambda parts: _CatContiguousGrad.apply(*parts))


def step_rate(model, x, y, opt, steps: int, warmup: int) -> float:
    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(steps):
        step()
    end.record()
    torch.cuda.synchronize()
    return steps * x.shape[0] / (start.elapsed_time(end) / 1e3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="deit_tiny_patch4_32")
    ap.add_argument("--img-size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd models")
    ap.add_argument("--profile-kernels", action="store_true", help="print the top CUDA kernels of a LIFE step")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    results = []
    for bs in args.batch_size:
        x = torch.randn(bs, 3, args.img_size, args.img_size, device=dev)
        y = torch.randint(0, 100, (bs,), device=dev)
        base = timm.create_model(args.model, num_classes=100, img_size=args.img_size).to(dev)
        life = timm.create_model(args.model + "_life", num_classes=100, img_size=args.img_size).to(dev)
        rates = {"baseline": step_rate(base, x, y, torch.optim.AdamW(base.parameters()), args.steps, args.warmup)}
        for name in LAYOUTS:
            set_layout(life, name)
            rates[name] = step_rate(life, x, y, torch.optim.AdamW(life.parameters()), args.steps, args.warmup)
        set_layout(life, "channels_last")
        original = LIFE.forward
        LIFE.forward = forward_contiguous_grads
        rates["contiguous_grads"] = step_rate(life, x, y, torch.optim.AdamW(life.parameters()), args.steps, args.warmup)
        LIFE.forward = original
        if args.compile:
            for name, m in (("baseline_compiled", base), ("life_compiled", life)):
                cm = torch.compile(m)
                rates[name] = step_rate(cm, x, y, torch.optim.AdamW(m.parameters()), args.steps, args.warmup + 5)
        row = {"batch_size": bs, **{k: round(v, 1) for k, v in rates.items()},
               **{f"ratio_{k}": round(v / rates["baseline"], 3) for k, v in rates.items() if k != "baseline"}}
        if args.compile:
            row["ratio_compiled"] = round(rates["life_compiled"] / rates["baseline_compiled"], 3)
        results.append(row)
        print(json.dumps(row))
    table = None
    if args.profile_kernels:  # kernel breakdown of one LIFE step at the last batch size
        opt = torch.optim.AdamW(life.parameters())
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            step_rate(life, x, y, opt, steps=3, warmup=0)
        table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=70)
        print(table)
    if args.out:
        records.write_json_atomic(args.out, {"kind": "life_cuda_layouts", "model": args.model,
                                             "img_size": args.img_size, "results": results,
                                             "kernels": table,
                                             "provenance": records.provenance(device="cuda")})


if __name__ == "__main__":
    main()
