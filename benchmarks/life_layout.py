"""How the layout of LIFE's arithmetic changes its training speed (the study behind life.py).

Every variant computes the same function from the same :class:`lifestudy.life.LIFE`
parameters (checked before timing); only the order of copies, the memory format of the
depthwise convs and the grouping of matmuls differ:

- ``official``: the official code's layout (``MultiscaleQKV`` of the authors' LIFE repository):
  tokens transposed to NCHW, NCHW depthwise and 1x1 convs, prefix tokens through separate
  1x1 convs, q/k/v built by per-part slices and three concatenations, then one more;
- ``nchw``: as ``lifestudy`` but the depthwise convs in NCHW (a transpose copy each way);
- ``pw_all_tokens``: channels-last depthwise convs, but the prefix tokens are concatenated back
  in front of the patch tokens before every pointwise matmul (one matmul over all tokens);
- ``lifestudy``: what :class:`LIFE` does: one autograd function per module
  (``lifestudy.life._LIFEFunction``): two token streams, the patch stream a channels-last image
  throughout, each scale copied once into its q|k|v slots, a hand-written backward pass that
  saves the input, the output and the last depthwise conv's output and recomputes the rest;
  on grids of at most 16 cells ``lifestudy.life._LIFEGridFunction`` instead (each depthwise
  conv a batched matmul by one matrix per channel over the tokens);
- ``conv_path`` / ``grid_path``: ``lifestudy`` with one of those two functions on any grid;
- ``one_pass``: the block's attention as :func:`lifestudy.apply_life` makes it, a
  :class:`lifestudy.life.LIFEAttention`: on grids of at most 16 cells with one head per scale,
  LIFE and the attention in one autograd function that reads q, k and v where LIFE writes
  them (``lifestudy.life._LIFEAttentionGridFunction``); elsewhere it is ``lifestudy``;
- ``reference``: :meth:`LIFE.forward_reference`, LIFE's previous eager path (the modules' own
  forward passes, two streams concatenated per scale, autograd's backward pass, and the
  depthwise backward pass of :class:`lifestudy.life.DepthwiseConv2d`);
- ``native_dw``: as ``reference`` but with PyTorch's own depthwise backward pass (oneDNN's
  generic grouped kernel for the 5x5 weight gradient; what ``DepthwiseConv2d`` goes around);
- ``pw_only`` / ``no_5x5``: lower bounds: LIFE's three cascaded matmuls alone, and LIFE with
  the 5x5 depthwise conv replaced by a 3x3 one (not LIFE; it isolates the cost of the 5x5).

Each is timed in a timm ViT block (attention + MLP, forward and backward) against the block
with timm's plain ``qkv`` Linear; variants are interleaved, in alternating order, and the
median of the per-round ratios is reported (CPU time with one thread, so that other jobs on
a shared machine disturb it less; ``--wall`` for wall-clock time). ``ops`` is the number of
operator calls of one block's training step (forward and backward) as ``torch.profiler``
records them: ATen operators called from Python or from autograd, views excluded (on a GPU
each is at least one kernel launch, which is what bounds LIFE there).

    python benchmarks/life_layout.py --rounds 40            # DeiT-T block, 8x8 grid, batch 64
    python benchmarks/life_layout.py --dim 192 --grid 16 16 --rounds 20
    python benchmarks/life_layout.py --dim 96 --grid 4 4 --batch-size 16   # the cpu book's DeiT-micro
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import statistics
import time

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import nn

from lifestudy import life
from lifestudy.life import LIFE, LIFEAttention


def official(m: LIFE, x: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    B, N, C = x.shape
    P = m.num_prefix_tokens
    y1 = m.proj(x)
    aux, pat = y1[:, :P], y1[:, P:]
    img = pat.permute(0, 2, 1).reshape(B, -1, gh, gw)
    s2 = F.conv2d(F.conv2d(img, m.dw[0].weight, padding=m.dw[0].padding, groups=img.shape[1]),
                  m.pw[0].weight[:, :, None, None])
    s3 = F.conv2d(F.conv2d(s2, m.dw[1].weight, padding=m.dw[1].padding, groups=s2.shape[1]),
                  m.pw[1].weight[:, :, None, None])
    a1 = aux.transpose(1, 2).unsqueeze(-1)  # aux tokens as a (B, C, P, 1) "image"
    a2 = F.conv2d(a1, m.pw[0].weight[:, :, None, None])
    a3 = F.conv2d(a2, m.pw[1].weight[:, :, None, None])
    a1, a2, a3 = (a.squeeze(-1).transpose(1, 2) for a in (a1, a2, a3))
    s2 = s2.reshape(B, -1, gh * gw).permute(0, 2, 1)
    s3 = s3.reshape(B, -1, gh * gw).permute(0, 2, 1)
    parts = []
    for i, w in enumerate(m.scale_dims[:1] * 3):
        sl = slice(i * w, (i + 1) * w)
        patch = torch.cat([pat[..., sl], s2[..., sl], s3[..., sl]], dim=2)
        prefix = torch.cat([a1[..., sl], a2[..., sl], a3[..., sl]], dim=2)
        parts.append(torch.cat([prefix, patch], dim=1))
    return torch.cat(parts, dim=2)


def _cat(parts):
    return torch.cat(parts, -1)


def _streams(m, x, gh, gw, conv, cat=_cat):
    """LIFE's arithmetic as two streams (patches, prefix tokens) with the depthwise conv layout
    ``conv`` and the q|k|v concatenation ``cat`` swappable."""
    B, N, C = x.shape
    P = m.num_prefix_tokens
    prefix, patches = x.split([P, N - P], dim=1)
    y = m.proj(patches)
    pat = [y]
    for dw, pw in zip(m.dw, m.pw):
        y = pw(conv(dw, y, B, gh, gw))
        pat.append(y)
    qkv = cat([s.view(B, N - P, 3, -1) for s in pat])
    if P:
        a = m.proj(prefix)
        pre = [a]
        for pw in m.pw:
            a = pw(a)
            pre.append(a)
        qkv = torch.cat([cat([s.view(B, P, 3, -1) for s in pre]), qkv], 1)
    return qkv.view(B, N, 3 * C)


def _conv_channels_last(dw, y, B, gh, gw):
    """What LIFE does: the tokens viewed as a channels-last image, no copy."""
    return dw(y.view(B, gh, gw, -1).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).reshape(B, gh * gw, -1)


def _conv_native(dw, y, B, gh, gw):
    """As :func:`_conv_channels_last`, through ``nn.Conv2d``'s own forward (and backward) pass."""
    return _conv_channels_last(functools.partial(nn.Conv2d.forward, dw), y, B, gh, gw)


def _conv_nchw(dw, y, B, gh, gw):
    img = y.transpose(1, 2).reshape(B, -1, gh, gw)  # a copy into NCHW
    return dw(img).flatten(2).transpose(1, 2)


def _conv_3x3_only(dw, y, B, gh, gw):
    w = dw.weight[:, :, 1:-1, 1:-1] if dw.weight.shape[-1] == 5 else dw.weight
    img = y.view(B, gh, gw, -1).permute(0, 3, 1, 2)
    return F.conv2d(img, w, padding=1, groups=img.shape[1]).permute(0, 2, 3, 1).reshape(B, gh * gw, -1)


def nchw(m, x, gh, gw):
    return _streams(m, x, gh, gw, _conv_nchw)


def native_dw(m, x, gh, gw):
    return _streams(m, x, gh, gw, _conv_native)


def no_5x5(m, x, gh, gw):
    return _streams(m, x, gh, gw, _conv_3x3_only)


def pw_all_tokens(m, x, gh, gw):
    B, N, C = x.shape
    P = m.num_prefix_tokens
    y = m.proj(x)
    scales = [y]
    for dw, pw in zip(m.dw, m.pw):
        img = y[:, P:].reshape(B, gh, gw, -1).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
        z = dw(img).permute(0, 2, 3, 1).reshape(B, gh * gw, -1)
        y = pw(torch.cat([y[:, :P], z], dim=1))
        scales.append(y)
    return torch.cat([s.view(B, N, 3, -1) for s in scales], dim=-1).view(B, N, 3 * C)


def lifestudy_layout(m, x, gh, gw):
    return m(x, (gh, gw))


def _with_grid_matrix_cells(cells: int, m, x, gh, gw):
    saved = life.GRID_MATRIX_MAX_CELLS
    life.GRID_MATRIX_MAX_CELLS = cells
    try:
        return m(x, (gh, gw))
    finally:
        life.GRID_MATRIX_MAX_CELLS = saved


conv_path = functools.partial(_with_grid_matrix_cells, 0)  # _LIFEFunction on every grid
grid_path = functools.partial(_with_grid_matrix_cells, 10**9)  # _LIFEGridFunction on every grid


def reference(m, x, gh, gw):
    return m.forward_reference(x, (gh, gw))


def pw_only(m, x, gh, gw):
    y = m.proj(x)
    scales = [y]
    for pw in m.pw:
        y = pw(y)
        scales.append(y)
    return torch.cat(scales, dim=-1)


VARIANTS = {
    "official": official, "nchw": nchw, "pw_all_tokens": pw_all_tokens, "native_dw": native_dw,
    "lifestudy": lifestudy_layout, "conv_path": conv_path, "grid_path": grid_path, "reference": reference,
    "one_pass": lifestudy_layout,  # its qkv is LIFE itself; the block's attention is a LIFEAttention
    "pw_only": pw_only, "no_5x5": no_5x5,
}
EXACT = ("official", "nchw", "pw_all_tokens", "native_dw", "lifestudy", "conv_path", "grid_path", "reference")


class _Layout(nn.Module):
    def __init__(self, life: LIFE, fn, grid):
        super().__init__()
        self.life, self.fn, self.grid = life, fn, grid

    def forward(self, x):
        return self.fn(self.life, x, *self.grid)


#: ATen operators that only make views or empty tensors (no kernel, no copy of their own)
VIEW_OPS = frozenset(
    f"aten::{name}" for name in (
        "view", "_unsafe_view", "reshape", "_reshape_alias", "slice", "select", "narrow", "t", "transpose",
        "permute", "unflatten", "flatten", "unbind", "split", "split_with_sizes", "chunk", "alias", "expand",
        "expand_as", "as_strided", "unsqueeze", "squeeze", "detach", "empty", "empty_like", "empty_strided",
        "new_empty", "resize_", "contiguous", "lift_fresh", "result_type",
    )
)


def operator_calls(step) -> int:
    """Operator calls of one ``step()``: the ATen operators that Python code or autograd calls
    directly (not those an operator calls inside itself), views and empty tensors excluded."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    return sum(
        1 for e in prof.events()
        if e.name.startswith("aten::") and e.name not in VIEW_OPS
        and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::"))
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--heads", type=int, default=3)
    ap.add_argument("--grid", type=int, nargs=2, default=[8, 8])
    ap.add_argument("--prefix", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--wall", action="store_true", help="wall-clock instead of process CPU time")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    gh, gw = args.grid
    B, C, P = args.batch_size, args.dim, args.prefix
    N = P + gh * gw
    clock = time.perf_counter if args.wall else time.process_time

    if P == 0 and "official" in args.variants:  # the official layout assumes one aux token
        args.variants.remove("official")
    life = LIFE(C, num_prefix_tokens=P, grid_size=(gh, gw))
    x0 = torch.randn(2, N, C)
    ref = life(x0)
    for name in (v for v in EXACT if v in args.variants):
        torch.testing.assert_close(VARIANTS[name](life, x0, gh, gw), ref, rtol=1e-4, atol=1e-5)

    base = Block(C, args.heads, qkv_bias=True)
    blocks = {"timm qkv": base}
    for name in args.variants:
        blk = copy.deepcopy(base)
        if name == "one_pass":
            blk.attn.qkv = copy.deepcopy(life)
            blk.attn.__class__ = LIFEAttention
            plain = copy.deepcopy(base)  # the same block with timm's attention calling LIFE
            plain.attn.qkv = copy.deepcopy(life)
            torch.testing.assert_close(blk(x0), plain(x0), rtol=1e-4, atol=1e-5)
        else:
            blk.attn.qkv = _Layout(copy.deepcopy(life), VARIANTS[name], (gh, gw))
        blocks[name] = blk
    x = torch.randn(B, N, C, requires_grad=True)
    g = torch.randn(B, N, C)
    steps = {k: (lambda b=b: b(x).backward(g)) for k, b in blocks.items()}
    for step in steps.values():
        step()
    ops = {k: operator_calls(step) for k, step in steps.items()}
    times: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(args.rounds):
        order = list(steps) if r % 2 == 0 else list(steps)[::-1]
        for k in order:
            t = clock()
            steps[k]()
            times[k].append(clock() - t)
    base_t = times["timm qkv"]
    result = {
        k: {"ms": 1e3 * statistics.median(v), "ratio": statistics.median([b / t for b, t in zip(base_t, v)]),
            "ratio_min": min(b / t for b, t in zip(base_t, v)), "ops": ops[k]}
        for k, v in times.items()
    }
    print(f"block: C={C}, heads={args.heads}, grid {gh}x{gw}, {P} prefix, batch {B}, "
          f"{args.threads} thread(s), {args.rounds} rounds, {'wall' if args.wall else 'CPU'} time")
    print(f"{'layout':16s} {'ms/step':>8s} {'throughput vs timm qkv':>24s} {'ops':>5s}")
    for k, r in result.items():
        print(f"{k:16s} {r['ms']:8.1f} {r['ratio']:24.3f} {r['ops']:5d}")
    if args.json:
        from lifestudy.records import provenance, write_json_atomic

        write_json_atomic(args.json, {"kind": "life_layout", "config": vars(args), "results": result,
                                      "provenance": provenance(device="cpu", threads=args.threads)})


if __name__ == "__main__":
    main()
