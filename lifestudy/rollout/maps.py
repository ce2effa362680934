"""Attention roll-out and Dense Attention Roll-Out of a model: one forward pass, the maps.

The definitions (head fusion, the residual step, the product over layers, the class-weighted
mean of rows) are written out in :mod:`lifestudy.rollout.tensors`, which computes them on
tensors; this module captures a model's attention (:mod:`lifestudy.rollout.capture`) and
applies them: :func:`attention_rollout` (the class token's row), :func:`dense_attention_rollout`
(Dense Attention Roll-Out) and :func:`last_layer_attention` (the same weighting of the last
block alone). A SwinV2 model goes to :mod:`lifestudy.rollout.swin`.
"""

from __future__ import annotations

import torch
from torch import nn

from lifestudy.dense.backbone import is_swin
from lifestudy.errors import ConfigError, UnsupportedModelError
from lifestudy.rollout.capture import (
    forward_with_attention,
    has_class_token,
    num_prefix_tokens,
    patch_grid,
)
from lifestudy.rollout.swin import swin_rollout
from lifestudy.rollout.tensors import class_maps, fuse_heads, predicted_token_weights, rollout

__all__ = [
    "attention_rollout",
    "dense_attention_rollout",
    "last_layer_attention",
    "RolloutResult",
    "rollout_all",
]

class RolloutResult(dict):
    """What :func:`rollout_all` computed for a batch (a dict, so it prints plainly):
    ``output`` (the model's output), ``attentions`` (per block), ``R`` ``(B, N, N)``,
    ``grid``, ``num_prefix_tokens``, ``token_weights`` ``(B, N_patches, K)`` or None."""


def rollout_all(
    model: nn.Module,
    images: torch.Tensor,
    token_weights: torch.Tensor | None = None,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    need_weights: bool = True,
) -> RolloutResult:
    """One forward pass, everything the map functions need: attention, ``R``, grid, weights.

    Args:
        model: a timm ViT/DeiT (LIFE or not), or a model holding one as ``.backbone``.
        images: ``(B, C, H, W)``, preprocessed as the model expects.
        token_weights: ``(B, N_patches, K)``; None to use the model's own predictions
            (only when ``need_weights``).
        head_fusion, discard_ratio: see :func:`rollout`.
        need_weights: False when only the class-token roll-out is wanted.
    """
    output, attentions = forward_with_attention(model, images)
    grid = patch_grid(model, images)
    P = num_prefix_tokens(model)
    N = attentions[0].shape[-1]
    if grid[0] * grid[1] != N - P:
        raise UnsupportedModelError(
            f"the backbone's patch grid {grid} ({grid[0] * grid[1]} patches) plus {P} prefix "
            f"tokens does not give the {N} tokens its attention has; roll-out needs one token "
            "per patch after the prefix tokens."
        )
    if need_weights and token_weights is None:
        token_weights = predicted_token_weights(output, grid)
    return RolloutResult(
        output=output,
        attentions=attentions,
        R=rollout(attentions, head_fusion, discard_ratio),
        grid=grid,
        num_prefix_tokens=P,
        token_weights=token_weights,
    )


def attention_rollout(
    model: nn.Module,
    images: torch.Tensor,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    token: int = 0,
) -> torch.Tensor:
    """Standard attention roll-out of a model with a class token: ``R[token, P:]`` on the
    patch grid, ``(B, gh, gw)``. Each map is a distribution's patch part (non-negative,
    summing to at most 1); normalise for display, not for comparison.

    Args:
        model: a timm ViT/DeiT classifier (LIFE or not) or a model holding one as ``.backbone``.
        images: ``(B, C, H, W)``, preprocessed as the model expects.
        head_fusion: "mean", "max" or "min".
        discard_ratio: fraction of each fused matrix's off-diagonal entries to zero.
        token: which prefix token's row to read: 0 the class token, 1 the distillation
            token of a distilled DeiT.

    A SwinV2 model (no class token) gets the mean of its roll-out rows over the last stage's
    tokens, which is what its average-pooling classifier reads (:mod:`lifestudy.rollout.swin`).

    Raises:
        UnsupportedModelError: a ViT without a class token (use :func:`dense_attention_rollout`).
    """
    if is_swin(model):  # no class token: the mean of R's rows, what its average pooling reads
        if token != 0:
            raise ConfigError("SwinV2 has no prefix tokens: leave token at 0")
        return swin_rollout(model, images, "mean", head_fusion, discard_ratio)[:, 0]
    if not has_class_token(model):
        raise UnsupportedModelError(
            "attention_rollout reads the class token's row, and this model has no class token "
            "(e.g. global_pool='avg', class_token=False); use dense_attention_rollout(model, "
            "images, token_weights) for models without one."
        )
    P = num_prefix_tokens(model)
    if not 0 <= token < P:
        raise ConfigError(f"token must index a prefix token, 0 <= token < {P}; got {token}.")
    res = rollout_all(model, images, None, head_fusion, discard_ratio, need_weights=False)
    gh, gw = res["grid"]
    return res["R"][:, token, P:].reshape(-1, gh, gw)


def dense_attention_rollout(model: nn.Module, images: torch.Tensor, token_weights: torch.Tensor | None = None,
                            head_fusion: str = "mean", discard_ratio: float = 0.0) -> torch.Tensor:
    """Dense Attention Roll-Out ``(B, K, gh, gw)``: per class k, the mean of the patch tokens'
    roll-out rows weighted by their weights for k (module docstring).

    Args:
        model: a segmenter holding a timm ViT as ``.backbone`` (its output ``(B, K, H, W)``
            logits give the default weights), or a ViT with explicit ``token_weights``, or a
            SwinV2 (or a segmenter on one) with weights ``(B, N_last, K)`` over its last
            stage's tokens.
        images: ``(B, C, H, W)``, preprocessed as the model expects.
        token_weights: ``(B, N_patches, K)`` non-negative; None for the model's own
            per-token predicted probabilities.
        head_fusion, discard_ratio: see :func:`rollout`.
    """
    if is_swin(model):  # weights over the last stage's tokens (default: a segmenter's predictions)
        return swin_rollout(model, images, token_weights, head_fusion, discard_ratio)
    res = rollout_all(model, images, token_weights, head_fusion, discard_ratio)
    return class_maps(res["R"], res["token_weights"], res["num_prefix_tokens"], res["grid"])


def last_layer_attention(
    model: nn.Module,
    images: torch.Tensor,
    token_weights: torch.Tensor | None = None,
    head_fusion: str = "mean",
) -> torch.Tensor:
    """The simpler alternative to Dense Attention Roll-Out: the same class-weighted mean of
    rows, of the last block's head-fused attention alone (no roll-out, no identity)
    ``(B, K, gh, gw)``. Arguments as :func:`dense_attention_rollout`."""
    res = rollout_all(model, images, token_weights, head_fusion)
    A = fuse_heads(res["attentions"][-1], head_fusion)
    return class_maps(A, res["token_weights"], res["num_prefix_tokens"], res["grid"])
