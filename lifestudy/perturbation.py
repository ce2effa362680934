"""Receptive fields of a ``qkv`` layer, measured by perturbing one patch token.

Perturb the patch token at one grid position and record, for every output channel and
every token, how much the layer's output changes (chapter 1). A channel of LIFE's first
scale changes only at the perturbed position, the second scale (3x3 depthwise) over a
3x3 neighbourhood and the third (a 5x5 depthwise applied to the second) over 7x7; prefix
tokens (class, distillation) go through the pointwise parts only, so they do not change.
Attention heads take the q, k and v channels in order, so the field of a head's query
channels says which scale it attends with.
"""

from __future__ import annotations

import timm
import torch
from torch import nn

import lifestudy.models  # noqa: F401  (registers the study's models)

__all__ = ["perturbation_response", "reached", "extent", "scale_fields", "head_fields", "SCALE_OF_FIELD"]

#: The receptive field side (patches) of each LIFE scale with kernels (3, 5).
SCALE_OF_FIELD = {1: 1, 3: 2, 7: 3}


def perturbation_response(qkv: nn.Module, grid_size: tuple[int, int], num_prefix_tokens: int, dim: int,
                          at: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """|change| of every output channel at every token when one patch token is perturbed.

    Args:
        qkv: a layer ``(B, N, dim) -> (B, N, 3 dim)`` called as ``qkv(x, grid_size=...)``
            (LIFE) or ``qkv(x)`` (timm's Linear).
        grid_size: the patch grid ``(gh, gw)``.
        num_prefix_tokens: tokens before the patch tokens.
        dim: the layer's input width.
        at: the perturbed grid position; None: the centre.

    Returns:
        ``(patches (3 dim, gh, gw), prefix (num_prefix_tokens, 3 dim))``. The inputs are drawn
        from torch's global generator (seed it for a repeatable draw).
    """
    gh, gw = grid_size
    at = at if at is not None else (gh // 2, gw // 2)
    x = torch.randn(1, num_prefix_tokens + gh * gw, dim)
    x2 = x.clone()
    x2[0, num_prefix_tokens + at[0] * gw + at[1]] += torch.randn(dim)

    def call(t):
        try:
            return qkv(t, grid_size=grid_size)
        except TypeError:  # a plain Linear takes no grid
            return qkv(t)

    with torch.no_grad():
        delta = (call(x2) - call(x)).abs()[0]
    patches = delta[num_prefix_tokens:].T.reshape(3 * dim, gh, gw)
    return patches, delta[:num_prefix_tokens]


def reached(response: torch.Tensor, rel: float = 1e-5) -> torch.Tensor:
    """Where ``response`` is above a tiny fraction of its maximum (what the perturbation reached)."""
    return response > rel * response.max().clamp_min(1e-30)


def extent(mask: torch.Tensor) -> tuple[int, int]:
    """Rows and columns spanned by the ``True`` cells of a 2-D mask (``(0, 0)`` when none)."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if len(ys) == 0:
        return 0, 0
    return int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)


def scale_fields(life: nn.Module, grid_size: tuple[int, int]) -> tuple[list[dict], list[torch.Tensor], float]:
    """Per scale of a LIFE module and per part (q, k, v): positions the perturbation of the
    centre token reached and their extent; per scale the map of its queries' response; and
    the largest change of the prefix tokens' q|k|v (0 for LIFE).

    Returns:
        ``(rows, maps, prefix_change)``: rows ``{"scale", "part", "positions changed",
        "extent (patches)"}``; maps ``(gh, gw)``, one per scale.
    """
    C = life.dim
    patches, prefix = perturbation_response(life, grid_size, life.num_prefix_tokens, C)
    bounds = torch.tensor((0, *life.scale_dims)).cumsum(0).tolist()
    rows, maps = [], []
    for s, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]), start=1):
        for part, offset in zip("qkv", (0, C, 2 * C)):
            m = reached(patches[offset + lo: offset + hi].amax(0))
            h, w = extent(m)
            rows.append({"scale": s, "part": part, "positions changed": int(m.sum()), "extent (patches)": f"{h}x{w}"})
        maps.append(patches[lo:hi].amax(0))
    return rows, maps, float(prefix.max()) if prefix.numel() else 0.0


def head_fields(model_name: str, num_classes: int = 100) -> list[dict]:
    """The receptive field of each attention head's query channels in the first block of a
    timm ViT (``model_name``, e.g. ``deit_tiny_patch16_224_life``), and the LIFE scale it
    matches (``"mixed"`` when none)."""
    model = timm.create_model(model_name, num_classes=num_classes).eval()
    attn = model.blocks[0].attn
    C = attn.qkv.in_features
    patches, _ = perturbation_response(attn.qkv, model.patch_embed.grid_size, model.num_prefix_tokens, C)
    head_dim = C // attn.num_heads
    out = []
    for h in range(attn.num_heads):
        side, width = extent(reached(patches[h * head_dim:(h + 1) * head_dim].amax(0)))
        out.append({"model": model_name, "head": h, "channels": f"{h * head_dim}-{(h + 1) * head_dim - 1}",
                    "receptive field (patches)": f"{side}x{width}", "scale": SCALE_OF_FIELD.get(side, "mixed")})
    return out
