"""Capturing a vision transformer's attention maps: every block's softmax output.

timm's :class:`timm.layers.Attention` computes, when its ``fused_attn`` flag is off::

    attn = (q * scale) @ k.transpose(-2, -1)
    attn = attn.softmax(dim=-1)
    attn = self.attn_drop(attn)          # <- we read the input of this module
    x = attn @ v

With ``fused_attn`` on (the default on recent torch) the whole product runs inside
``F.scaled_dot_product_attention`` and the softmax never exists as a tensor, which is why
the common public roll-out scripts silently capture nothing. :func:`capture_attention`
therefore switches ``fused_attn`` off on every attention module for the duration of the
call only, hooks ``attn_drop`` (whose *input* is exactly the softmax, whatever the dropout
rate), puts the model in eval mode, and restores every flag, hook and train/eval state
afterwards, also when the forward raises. Maps come out as ``(B, heads, N, N)`` in block
order, detached, for any batch size.

The LIFE module (:mod:`lifestudy.life`) only replaces ``attn.qkv``; the attention module
and its softmax stay timm's, so LIFE models are captured the same way.

Learned from: jacobgil/vit-explain (hooking the attention dropout), timm's
``vision_transformer.py`` (``fused_attn``, ``num_prefix_tokens``, ``dynamic_img_size``).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from lifestudy.dense.backbone import is_swin
from lifestudy.errors import ConfigError, UnsupportedModelError
from lifestudy.life import patch_grid as embed_grid

__all__ = [
    "vision_backbone",
    "attention_modules",
    "capture_attention",
    "attention_maps",
    "forward_with_attention",
    "patch_grid",
    "num_prefix_tokens",
    "has_class_token",
]


def vision_backbone(model: nn.Module) -> nn.Module:
    """The timm ViT whose attention we read: ``model`` itself, or ``model.backbone``
    (the study's detectors and segmenters keep their ViT there, prefix tokens inside).

    Raises:
        UnsupportedModelError: for anything without ViT ``blocks`` and ``patch_embed``
            (SwinV2 has its own roll-out in :mod:`lifestudy.rollout.swin`).
    """
    for candidate in (model, getattr(model, "backbone", None)):
        if isinstance(candidate, nn.Module) and hasattr(candidate, "blocks") and hasattr(
            candidate, "patch_embed"
        ):
            return candidate
    name = type(model).__name__
    if is_swin(model):
        raise UnsupportedModelError(
            f"{name} has windowed attention, not one N x N softmax per block: "
            "attention_rollout and dense_attention_rollout handle SwinV2 "
            "(lifestudy.rollout.swin); per-block maps and last-layer attention are for ViT/DeiT."
        )
    raise UnsupportedModelError(
        f"attention roll-out needs a timm VisionTransformer (with .blocks and .patch_embed), "
        f"or a model holding one as .backbone; got {name}. Use a ViT/DeiT model, "
        "e.g. deit_tiny_patch16_224 or deit_tiny_patch16_224_life."
    )


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The attention modules of the backbone's blocks, in execution order: every module
    inside ``blocks`` that owns an ``attn_drop`` dropout (timm's ``Attention`` and its
    relatives). Attention outside the blocks (a T2T stem, an attention-pool head, a
    decoder) is not part of the backbone's token mixing and is left out."""
    vit = vision_backbone(model)
    found = [m for m in vit.blocks.modules() if isinstance(getattr(m, "attn_drop", None), nn.Module)]
    if not found:
        raise UnsupportedModelError(
            f"no attention modules with an 'attn_drop' were found in the blocks of "
            f"{type(vit).__name__}; roll-out reads timm's Attention softmax there."
        )
    return found


def num_prefix_tokens(model: nn.Module) -> int:
    """Number of tokens before the patch tokens (class, distillation, register tokens)."""
    return int(getattr(vision_backbone(model), "num_prefix_tokens", 0))


def has_class_token(model: nn.Module) -> bool:
    vit = vision_backbone(model)
    if hasattr(vit, "has_class_token"):
        return bool(vit.has_class_token)
    return getattr(vit, "cls_token", None) is not None


def patch_grid(model: nn.Module, images: torch.Tensor) -> tuple[int, int]:
    """The patch grid ``(gh, gw)`` the backbone uses for ``images``, read from its
    ``patch_embed`` (dynamic image sizes and padding included), never guessed from sqrt(N)."""
    H, W = images.shape[-2:]
    gh, gw = embed_grid(vision_backbone(model).patch_embed, (H, W))
    return int(gh), int(gw)


@contextmanager
def capture_attention(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Within the block, every forward of ``model`` appends each block's softmax attention
    ``(B, heads, N, N)`` to the yielded list, in execution order.

    Fused attention is switched off and the model is in eval mode only inside the block;
    on leaving (normally or by an exception) every module's ``fused_attn`` flag and
    ``training`` flag are restored and the hooks removed.
    """
    modules = attention_modules(model)
    maps: list[torch.Tensor] = []

    def hook(_module, inputs, _output):
        maps.append(inputs[0].detach())

    fused = [(m, m.fused_attn) for m in modules if hasattr(m, "fused_attn")]
    training = [(m, m.training) for m in model.modules()]
    handles = []
    try:
        for m, _ in fused:
            m.fused_attn = False
        model.eval()
        handles = [m.attn_drop.register_forward_hook(hook) for m in modules]
        yield maps
    finally:
        for h in handles:
            h.remove()
        for m, flag in fused:
            m.fused_attn = flag
        for m, flag in training:
            m.training = flag


def forward_with_attention(model: nn.Module, images: torch.Tensor):
    """Run ``model(images)`` once without gradients; return ``(output, maps)`` where maps
    is the list of ``(B, heads, N, N)`` softmax attentions of the backbone's blocks."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ConfigError(
            f"images must be a float tensor (B, C, H, W); got "
            f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}. "
            "Add a batch dimension with images[None] for a single image."
        )
    expected = len(attention_modules(model))
    with capture_attention(model) as maps, torch.no_grad():
        output = model(images)
    if len(maps) != expected:
        raise UnsupportedModelError(
            f"captured {len(maps)} attention maps from {expected} attention modules: the model's "
            "forward does not run each block exactly once, so no roll-out can be built from it."
        )
    return output, list(maps)


def attention_maps(model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """Every block's softmax attention ``(B, heads, N, N)``, in block order (see module doc)."""
    return forward_with_attention(model, images)[1]
