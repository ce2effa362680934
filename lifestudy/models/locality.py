"""Shared pieces of the locality peers: the patch grid, and a peer built as a timm ViT.

The patch grid, for layers that work on tokens but need to know where each patch lies.

A layer inside a timm ``Block`` receives tokens ``(B, N, C)`` and nothing else; a depthwise
convolution over the patches needs the grid ``(gh, gw)`` too, and ``sqrt(N)`` is wrong for a
rectangular grid, for a changing one (timm's ``dynamic_img_size``) and whenever prefix tokens
(class, distillation, register) come first. Here the grid is *recorded*, not guessed:

- :class:`GridState` is a small plain object holding the last grid; every grid-aware layer
  of a model keeps a reference to one (``layer.grid_state``);
- :func:`attach_grid` gives a timm ViT one ``GridState`` and a forward hook on its
  ``patch_embed`` that writes the grid of each input into it (from the NHWC output under
  ``dynamic_img_size``, else from the input size); a ``copy.deepcopy`` of the model copies the
  state once and keeps every copied layer pointing at the copy;
- :func:`prefix_and_patches` splits a layer's tokens into the leading tokens without a grid
  position (``N - gh * gw`` of them, however many the model has) and the patch tokens.

The models of :mod:`lifestudy.models.localvit`, :mod:`~lifestudy.models.cvt_proj`,
:mod:`~lifestudy.models.spt_lsa` and :mod:`~lifestudy.models.convit` use it; LIFE keeps its
own bookkeeping (:mod:`lifestudy.life`).
"""

from __future__ import annotations

import math
import sys
from functools import partial
from typing import Any

import torch
from timm.models import generate_default_cfgs
from torch import nn

from lifestudy.errors import ConfigError, UnsupportedModelError
from lifestudy.models.registry import register

__all__ = ["GridState", "NotApplicable", "attach_grid", "grid_layers", "prefix_and_patches", "patch_grid_of",
           "small_cfg", "build_peer", "SIZES"]


class NotApplicable(UnsupportedModelError):
    """A method cannot be put into a host model without changing the method or the host."""


class GridState:
    """The patch grid ``(gh, gw)`` of the tokens a model is working on now (None: unknown)."""

    def __init__(self, size: tuple[int, int] | None = None) -> None:
        self.size = None if size is None else (int(size[0]), int(size[1]))

    def __repr__(self) -> str:
        return f"GridState({self.size})"


def grid_layers(model: nn.Module) -> list[nn.Module]:
    """The layers of ``model`` that read a patch grid (those with a ``grid_state`` attribute)."""
    return [m for m in model.modules() if hasattr(m, "grid_state")]


def patch_grid_of(patch_embed: nn.Module, image: torch.Tensor, tokens: torch.Tensor) -> tuple[int, int]:
    """The grid a timm patch embedding made of ``image``: read from its NHWC output (timm's
    ``dynamic_img_size``), else computed from the image size the way the embedding does."""
    if tokens.ndim == 4:
        fmt = str(getattr(patch_embed, "output_fmt", "NHWC"))
        return tuple(tokens.shape[2:4]) if fmt.endswith("NCHW") else tuple(tokens.shape[1:3])
    H, W = image.shape[-2:]
    if hasattr(patch_embed, "dynamic_feat_size"):
        return tuple(int(s) for s in patch_embed.dynamic_feat_size((H, W)))
    ph, pw = patch_embed.patch_size
    return math.ceil(H / ph), math.ceil(W / pw)


def _record(patch_embed: nn.Module, inputs: tuple, output) -> None:
    tokens = output[0] if isinstance(output, (tuple, list)) else output
    patch_embed.grid_state.size = patch_grid_of(patch_embed, inputs[0], tokens)


def attach_grid(model: nn.Module, state: GridState | None = None) -> GridState:
    """Give every grid-aware layer of a timm ViT ``model`` one :class:`GridState` and keep it
    current with a forward hook on ``model.patch_embed``; returns the state."""
    patch_embed = getattr(model, "patch_embed", None)
    if patch_embed is None:
        raise ConfigError(f"{type(model).__name__} has no patch_embed to read the patch grid from")
    state = state or GridState(getattr(patch_embed, "grid_size", None))
    for m in grid_layers(model):
        m.grid_state = state
    patch_embed.grid_state = state
    if not getattr(patch_embed, "_grid_hooked", False):
        patch_embed.register_forward_hook(_record)
        patch_embed._grid_hooked = True
    return state


def prefix_and_patches(layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """Split tokens ``(B, N, C)`` into prefix tokens ``(B, P, C)`` and patch tokens ``(B, gh*gw, C)``,
    with ``P = N - gh * gw`` from the grid ``layer.grid_state`` holds; also returns ``(gh, gw)``."""
    state = getattr(layer, "grid_state", None)
    if state is None or state.size is None:
        raise ConfigError(
            f"{type(layer).__name__} does not know the patch grid: build the model with "
            "lifestudy.models.grid.attach_grid(model) (the registered models do), or set "
            "layer.grid_state = GridState((gh, gw))"
        )
    gh, gw = state.size
    N = x.shape[1]
    if N < gh * gw:
        raise ConfigError(
            f"{type(layer).__name__} got {N} tokens for a {gh}x{gw} patch grid: the recorded grid "
            "is not this input's (was the model's patch_embed bypassed?)"
        )
    prefix, patches = x.split([N - gh * gw, gh * gw], dim=1)
    return prefix, patches, (gh, gw)


# --------------------------------------------------------------------------------------------
# A peer as a timm VisionTransformer of the study's sizes

#: the sizes every peer is registered at (DeiT-micro, the cpu profile's, and a test size),
#: the same as ``lifestudy.models.vit``'s ``deit_micro_patch4_32`` / ``deit_test_patch4_32``
SIZES: dict[str, dict[str, Any]] = {
    "micro": dict(embed_dim=96, depth=6, num_heads=3),
    "test": dict(embed_dim=48, depth=2, num_heads=3),
}


def small_cfg(**kwargs: Any) -> dict[str, Any]:
    """timm's pretrained config of a 32x32, patch-4 model without weights."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    return {
        "url": "", "num_classes": 1000, "input_size": (3, 32, 32), "pool_size": None, "crop_pct": 1.0,
        "interpolation": "bicubic", "fixed_input_size": True, "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD, "first_conv": "patch_embed.proj", "classifier": "head", **kwargs,
    }


def build_peer(variant: str, size: str, layers: dict[str, Any], pretrained: bool = False, **kwargs: Any):
    """``deit_<size>_patch4_32`` with ``layers`` (``embed_layer`` / ``attn_layer`` / ``mlp_layer``)
    passed to timm's ``VisionTransformer``, its grid-aware layers attached to the patch grid."""
    from timm.models import build_model_with_cfg
    from timm.models.vision_transformer import VisionTransformer

    if pretrained:
        raise ConfigError(f"{variant} has no pretrained weights (the study trains it from scratch): "
                          "use pretrained=False")
    args = dict(img_size=32, patch_size=4, mlp_ratio=4, qkv_bias=True, **SIZES[size], **layers)
    model = build_model_with_cfg(
        VisionTransformer, variant, pretrained=False,
        feature_cfg=dict(out_indices=kwargs.pop("out_indices", 3), feature_cls="getter"),
        **dict(args, **kwargs),
    )
    attach_grid(model)
    return model


def register_peers(module: str, suffix: str, layers: dict[str, Any], docs: dict[str, str], **cfg: Any) -> None:
    """Register ``deit_<size>_patch4_32_<suffix>`` for each ``size`` in ``docs`` (size ->
    docstring): :func:`build_peer` with ``layers``, an entrypoint of ``module`` in timm's
    registry, with :func:`small_cfg` (``cfg`` changed) in that module's ``default_cfgs``."""
    names = {size: f"deit_{size}_patch4_32_{suffix}" for size in docs}
    sys.modules[module].default_cfgs = generate_default_cfgs({name: small_cfg(**cfg) for name in names.values()})
    for size, name in names.items():
        register(module, name, partial(build_peer, name, size, layers), docs[size])
