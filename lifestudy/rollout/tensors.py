"""Attention roll-out and Dense Attention Roll-Out on tensors: the definitions.

**Attention roll-out** (Abnar & Zuidema, "Quantifying Attention Flow in Transformers",
ACL 2020). For each block l with softmax attention ``A_l`` ``(B, heads, N, N)``:

1. fuse the heads: the mean, max or min over heads -> ``(B, N, N)``;
2. optionally discard: zero the lowest ``discard_ratio`` fraction of the fused matrix's
   off-diagonal entries (per image; the diagonal is never discarded);
3. add the identity for the residual connection and renormalise the rows:
   ``Â_l = (A_l + I) / rowsum(A_l + I)``, so every row of ``Â_l`` sums to 1;
4. multiply the layers in order: ``R = Â_L ⋯ Â_2 Â_1``.

Row i of ``R`` says how much of token i's final representation flows, through all the
layers, from each input token. The standard roll-out map is the class token's row
restricted to the patch tokens, ``R[0, P:]`` (P = number of prefix tokens), reshaped to
the patch grid ``(gh, gw)``.

**Dense Attention Roll-Out** (Akkaya et al., arXiv 2305.08551, Sec. "Dense Attention
Roll-Out"). A dense model has no class token whose row we could read: every patch token
makes its own prediction. We restrict ``R`` to the patch tokens, rows *and* columns,
``R_pp = R[P:, P:]`` (paths through prefix tokens in the intermediate layers still count,
because the product runs over all N tokens; we only drop the prefix tokens as *inputs*,
which are learned embeddings, not image locations). With ``w_ik >= 0`` token i's weight
for class k, the map of class k is the weighted mean of the patch tokens' roll-out rows::

    map_k = Σ_i w_ik R_pp[i, :] / Σ_i w_ik

i.e. "where, on average, do the tokens that predict class k take their information from".
By default ``w_ik`` is the model's own predicted probability of class k at token i (a
segmenter's softmax output averaged over each patch), so the tokens that predict k weigh
most; one-hot weights on a single token give exactly that token's roll-out row. The paper
describes this weighting in words; the exact normalisation above is ours.

A property to keep in mind when reading these maps: every ``Â_l`` keeps at least half of
each row on the diagonal (mean fusion), so ``R`` keeps at least ``2^-L`` of every token on
itself, and ``map_k`` always contains the weights ``w_k`` themselves, scaled by R's
diagonal. When attention is close to uniform (untrained, or very shallow models),
``R ≈ a I + b 11ᵀ`` and the dense map is an increasing affine function of ``w_k``: it ranks
pixels exactly as the model's prediction does. That is why the localisation scores
(:mod:`lifestudy.rollout.localisation`) always report the prediction itself as a baseline.

Every function here keeps the batch dimension and works in float32 (also for attention
captured under autocast). :mod:`lifestudy.rollout.maps` applies them to models (ViT/DeiT,
dense models on one) and :mod:`lifestudy.rollout.swin` to SwinV2's windows.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from lifestudy.errors import ConfigError

__all__ = ["HEAD_FUSIONS", "fuse_heads", "discard_lowest", "rollout", "class_maps", "predicted_token_weights"]

HEAD_FUSIONS = ("mean", "max", "min")


def fuse_heads(attn: torch.Tensor, head_fusion: str = "mean") -> torch.Tensor:
    """Fuse the heads of ``attn`` ``(B, heads, N, N)`` into ``(B, N, N)``.

    Args:
        attn: softmax attention of one block.
        head_fusion: "mean" (Abnar & Zuidema), "max" or "min" (jacobgil/vit-explain).
    """
    if head_fusion not in HEAD_FUSIONS:
        raise ConfigError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}.")
    if attn.dim() != 4 or attn.shape[-1] != attn.shape[-2]:
        raise ConfigError(f"attention must be (B, heads, N, N); got {tuple(attn.shape)}.")
    attn = attn.float()
    if head_fusion == "mean":
        return attn.mean(dim=1)
    if head_fusion == "max":
        return attn.amax(dim=1)
    return attn.amin(dim=1)


def discard_lowest(A: torch.Tensor, discard_ratio: float) -> torch.Tensor:
    """Zero the lowest ``floor(discard_ratio * N * (N - 1))`` off-diagonal entries of each
    ``(N, N)`` matrix in ``A`` ``(B, N, N)``; the diagonal is kept whatever its value.

    Args:
        A: fused attention.
        discard_ratio: in [0, 1); 0 returns ``A`` unchanged.
    """
    if not 0.0 <= discard_ratio < 1.0:
        raise ConfigError(f"discard_ratio must be in [0, 1), got {discard_ratio}.")
    B, N, _ = A.shape
    k = int(discard_ratio * N * (N - 1))
    if k == 0:
        return A
    diag = torch.eye(N, dtype=torch.bool, device=A.device)
    ranked = A.masked_fill(diag, float("inf")).flatten(1)
    idx = ranked.topk(k, dim=1, largest=False).indices
    return A.flatten(1).scatter(1, idx, 0.0).view(B, N, N)


def rollout(
    attentions: Sequence[torch.Tensor],
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
) -> torch.Tensor:
    """The rolled-out attention ``R = Â_L ⋯ Â_1`` ``(B, N, N)`` of a list of per-block
    attentions (module docstring, steps 1-4).

    Args:
        attentions: per block, in order, ``(B, heads, N, N)`` (or already fused ``(B, N, N)``).
        head_fusion: "mean", "max" or "min".
        discard_ratio: fraction of each fused matrix's off-diagonal entries to zero.
    """
    if len(attentions) == 0:
        raise ConfigError("roll-out needs at least one attention map; got none.")
    R = None
    for attn in attentions:
        A = fuse_heads(attn, head_fusion) if attn.dim() == 4 else attn.float()
        A = discard_lowest(A, discard_ratio)
        A = A + torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
        A = A / A.sum(dim=-1, keepdim=True)
        R = A if R is None else A @ R
    return R


def class_maps(
    R: torch.Tensor,
    token_weights: torch.Tensor,
    num_prefix_tokens: int,
    grid: tuple[int, int],
) -> torch.Tensor:
    """Class-specific maps ``(B, K, gh, gw)`` from a token-to-token matrix ``R`` ``(B, N, N)``:
    ``map_k = Σ_i w_ik R_pp[i, :] / Σ_i w_ik`` over the patch tokens (module docstring).

    Args:
        R: rolled-out (or any row-stochastic) attention over all N tokens.
        token_weights: ``(B, N - num_prefix_tokens, K)``, non-negative; a class whose
            weights are all zero gets an all-zero map.
        num_prefix_tokens: tokens before the patch tokens.
        grid: the patch grid ``(gh, gw)``, ``gh * gw == N - num_prefix_tokens``.
    """
    B, N, _ = R.shape
    gh, gw = grid
    P = num_prefix_tokens
    if gh * gw != N - P:
        raise ConfigError(
            f"the patch grid {gh}x{gw} does not match {N} tokens with {P} prefix tokens."
        )
    w = token_weights.to(R.device, torch.float32)
    if w.dim() != 3 or w.shape[:2] != (B, N - P):
        raise ConfigError(
            f"token_weights must be (B, N_patches, K) = ({B}, {N - P}, K); got {tuple(w.shape)}."
        )
    if (w < 0).any():
        raise ConfigError("token_weights must be non-negative (they weight a mean of roll-out rows).")
    R_pp = R[:, P:, P:]
    num = torch.einsum("bik,bij->bkj", w, R_pp)
    den = w.sum(dim=1).unsqueeze(-1)
    maps = torch.where(den > 0, num / den.clamp_min(torch.finfo(num.dtype).tiny), torch.zeros_like(num))
    return maps.reshape(B, -1, gh, gw)


def predicted_token_weights(output, grid: tuple[int, int]) -> torch.Tensor:
    """A dense model's own per-token class probabilities ``(B, gh * gw, K)``: the softmax of
    its logits ``(B, K, H, W)`` averaged over each patch (adaptive average pooling to the grid).

    Args:
        output: what the model returned for the images.
        grid: the backbone's patch grid.
    """
    if not (isinstance(output, torch.Tensor) and output.dim() == 4):
        got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ConfigError(
            f"default token weights need per-pixel logits (B, K, H, W) from a segmentation model; "
            f"the model returned {got}. Pass token_weights (B, N_patches, K) explicitly "
            "(e.g. one-hot on the tokens of interest), or use attention_rollout for a classifier."
        )
    probs = output.float().softmax(dim=1)
    pooled = F.adaptive_avg_pool2d(probs, grid)
    return pooled.flatten(2).transpose(1, 2)
