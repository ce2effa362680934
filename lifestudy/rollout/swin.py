"""Attention roll-out through SwinV2: window attention, undone shifts, explicit patch merging.

No public roll-out handles Swin, because its token mixing is not one N x N softmax per
block. We write each piece as the matrix it is, on the token grid of its stage:

- **window attention** (W-MSA / SW-MSA). A block partitions its (cyclically shifted) grid
  into ``ws x ws`` windows and attends inside each. Token ``t`` of window ``w`` is the grid
  cell we obtain by applying timm's own ``torch.roll`` and ``window_partition`` to a grid
  of token indices, exactly as the block does to its features, so the shift is undone by
  construction. Scattering each window's ``(T, T)`` attention to those cells gives the
  block's full ``N x N`` matrix, block-diagonal up to that permutation. Pairs that the
  shift mask separates get ``exp(-100)`` attention from timm's mask: zero, as they should.
  Rows still sum to 1, and the roll-out step is the usual ``Â = (A + I) / rowsum``.
- **patch merging** concatenates each 2x2 neighbourhood and mixes it with a learned linear
  layer. Which four tokens a merged token comes from is exact; how much from each is not a
  fixed number, so we take a quarter each (the merged token's row of the merge matrix
  ``M`` has 1/4 on its four sources). This is the one assumption beyond roll-out's own
  (that the residual and the attention contribute equally), and it is stated wherever the
  maps are shown.

The roll-out is then ``R = Â_L ⋯ M ⋯ Â_1`` from the first stage's patch tokens to the last
stage's tokens. SwinV2 has no class token: its classifier averages the last stage's tokens,
so the standard map is the mean of R's rows; a class-weighted mean of rows (Dense Attention
Roll-Out) takes weights over the last stage's tokens. Rather than form the large products
(4096 x 4096 at 256 x 256 input), we push the K weight vectors from the top down
(``v <- v Â_l``, ``v <- v M``), which is exact and costs one pass over the windows.

Not supported (a clear error says so): grids that windows do not tile (timm pads them with
zero tokens that no matrix describes), odd grids at a merge, and ``discard_ratio`` (the
discard rule is defined on a full attention matrix).
"""

from __future__ import annotations

import torch
from timm.layers import to_2tuple
from timm.models.swin_transformer_v2 import window_partition
from torch import nn

from lifestudy.dense.backbone import is_swin
from lifestudy.errors import ConfigError, UnsupportedModelError
from lifestudy.rollout.tensors import fuse_heads, predicted_token_weights

__all__ = ["window_token_index", "swin_rollout", "propagate"]


def window_token_index(H: int, W: int, window_size, shift_size) -> torch.Tensor:
    """``(nW, T)``: the grid cell (row-major index in the unshifted ``H x W`` grid) of each
    window's tokens, computed with timm's own roll and ``window_partition``, as the block
    moves its features."""
    wh, ww = window_size
    if H % wh or W % ww:
        raise UnsupportedModelError(
            f"a {H}x{W} token grid is not tiled by {wh}x{ww} windows: timm pads it with zero "
            "tokens, which no roll-out matrix describes; use an input size whose stage grids "
            "the windows tile (e.g. 256x256 for swinv2_tiny_window8_256)."
        )
    grid = torch.arange(H * W).view(1, H, W, 1)
    if any(shift_size):
        grid = torch.roll(grid, shifts=(-shift_size[0], -shift_size[1]), dims=(1, 2))
    return window_partition(grid, (wh, ww)).reshape(-1, wh * ww)


def _window_step(v: torch.Tensor, A_w: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``v Â`` for one block: ``v`` ``(B, K, N)``, fused window attention ``A_w``
    ``(B, nW, T, T)``, ``index`` ``(nW, T)``; ``Â = (A + I) / rowsum(A + I)``."""
    B, K, N = v.shape
    rowsum = A_w.sum(-1) + 1.0  # (B, nW, T)
    u = v[:, :, index] / rowsum[:, None]  # (B, K, nW, T): v_i / s_i, by window
    out = torch.einsum("bkwt,bwts->bkws", u, A_w) + u
    res = torch.empty_like(v)
    res[:, :, index.flatten()] = out.flatten(2)
    return res


def _merge_step(v: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """``v M`` for a 2x2 patch merging from an ``H x W`` grid: each merged token's weight goes
    a quarter to each of its four sources."""
    if H % 2 or W % 2:
        raise UnsupportedModelError(f"patch merging of an odd {H}x{W} grid pads it; not supported by roll-out")
    B, K, _ = v.shape
    coarse = v.view(B, K, H // 2, 1, W // 2, 1) / 4.0
    return coarse.expand(B, K, H // 2, 2, W // 2, 2).reshape(B, K, H * W)


def propagate(steps: list[tuple], weights: torch.Tensor) -> torch.Tensor:
    """``weights R`` for a sequence of steps, first to last: ``("attn", A_w, index)`` with
    fused window attention ``(B, nW, T, T)``, or ``("merge", H, W)`` (the fine grid).

    Args:
        steps: the model's token-mixing steps in forward order.
        weights: ``(B, K, N_last)`` weights over the last step's tokens.

    Returns:
        ``(B, K, N_first)``: the weighted rows of R over the first grid's tokens.
    """
    v = weights.float()
    for step in reversed(steps):
        if step[0] == "attn":
            v = _window_step(v, step[1].float(), step[2].to(v.device))
        else:
            v = _merge_step(v, step[1], step[2])
    return v


def swin_rollout(
    model: nn.Module,
    images: torch.Tensor,
    token_weights: torch.Tensor | str | None = "mean",
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
) -> torch.Tensor:
    """Class maps ``(B, K, gh, gw)`` on the patch grid of a SwinV2 model (module docstring).

    Args:
        model: a timm SwinTransformerV2 (LIFE or not), or a dense model holding one as
            ``.backbone``; ``model(images)`` runs once.
        images: ``(B, C, H, W)`` preprocessed.
        token_weights: ``(B, N_last, K)`` non-negative weights over the last stage's tokens;
            "mean" for the mean over them (the classifier's average pooling, K = 1); None
            for a segmenter's own predictions pooled to the last stage's grid.
        head_fusion: "mean", "max" or "min".
        discard_ratio: must be 0 for Swin.
    """
    if discard_ratio:
        raise ConfigError("discard_ratio is not defined for Swin's window attention; leave it at 0")
    if not is_swin(model):
        raise UnsupportedModelError(f"swin_rollout needs a SwinV2 model (or one as .backbone); got {type(model).__name__}")
    swin = getattr(model, "backbone", model)
    blocks = [m for m in swin.modules() if hasattr(m, "shift_size") and hasattr(m, "attn")]
    merges = [m for m in swin.modules() if type(m).__name__ == "PatchMerging"]
    events: list[tuple] = []
    captured: list[torch.Tensor] = []

    def on_block(mod, args):
        _, H, W, _ = args[0].shape
        events.append(("attn", mod, H, W))

    def on_merge(mod, args):
        _, H, W, _ = args[0].shape
        events.append(("merge", H, W))

    def on_softmax(_mod, inputs, _output):
        captured.append(inputs[0].detach())

    training = [(m, m.training) for m in model.modules()]
    handles = [b.register_forward_pre_hook(on_block) for b in blocks]
    handles += [m.register_forward_pre_hook(on_merge) for m in merges]
    handles += [b.attn.attn_drop.register_forward_hook(on_softmax) for b in blocks]
    try:
        model.eval()
        with torch.no_grad():
            output = model(images)
    finally:
        for h in handles:
            h.remove()
        for m, flag in training:
            m.training = flag
    if len(captured) != len(blocks):
        raise UnsupportedModelError(f"captured {len(captured)} window attentions from {len(blocks)} blocks")
    B = images.shape[0]
    steps, attn = [], iter(captured)
    for ev in events:
        if ev[0] == "merge":
            steps.append(ev)
            continue
        _, blk, H, W = ev
        index = window_token_index(H, W, to_2tuple(blk.window_size), to_2tuple(blk.shift_size))
        A = fuse_heads(next(attn), head_fusion)  # (B * nW, T, T), windows of one image together
        steps.append(("attn", A.view(B, index.shape[0], *A.shape[-2:]), index))
    first = next(e for e in events if e[0] == "attn")
    last_hw = next((e[2], e[3]) for e in reversed(events) if e[0] == "attn")
    N_last = last_hw[0] * last_hw[1]
    if isinstance(token_weights, str) and token_weights == "mean":
        token_weights = torch.full((B, N_last, 1), 1.0 / N_last)
    elif token_weights is None:
        token_weights = predicted_token_weights(output, last_hw)
    if token_weights.shape[:2] != (B, N_last) or (token_weights < 0).any():
        raise ConfigError(
            f"token_weights must be non-negative (B, N_last, K) = ({B}, {N_last}, K) over the last "
            f"stage's {last_hw[0]}x{last_hw[1]} tokens; got {tuple(token_weights.shape)}"
        )
    w = token_weights.float().transpose(1, 2).to(images.device)  # (B, K, N_last)
    den = w.sum(-1, keepdim=True)
    rows = propagate(steps, w)
    maps = torch.where(den > 0, rows / den.clamp_min(torch.finfo(rows.dtype).tiny), torch.zeros_like(rows))
    return maps.view(B, -1, first[2], first[3])
