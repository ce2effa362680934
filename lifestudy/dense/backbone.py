"""ViT backbones for dense prediction: a timm model read out as a patch-feature grid.

A dense head needs the backbone's tokens as an image-like grid ``(B, C, gh, gw)``. For a
ViT/DeiT this is its last-layer patch tokens with the prefix tokens (class, distillation,
register) dropped, reshaped to the patch grid — as SETR (Zheng et al., CVPR 2021) and
ViTDet (Li et al., ECCV 2022) read a plain ViT. The backbone is built with timm's
``dynamic_img_size=True``, so any ``H x W`` that the patch size divides works (the
position embedding is resampled by timm per input). SwinV2 (paper profile) is read from
the final stage of timm's ``forward_features`` (NHWC), at the fixed size it was built for.

The module kept in dense models is the timm model itself (``model.backbone``), prefix
tokens and all, so attention roll-out and checkpoint loading see the same names as in
classification. Initialisation from one of our classification checkpoints is the offline
analogue of the paper's ImageNet-1k initialisation: :func:`load_backbone_checkpoint`.
"""

from __future__ import annotations

import os
from typing import Any

import timm
import torch
from timm.layers import resample_abs_pos_embed, to_2tuple
from timm.models.swin_transformer_v2 import SwinTransformerV2
from torch import nn

import lifestudy.models  # noqa: F401  (registers the study's timm models)
from lifestudy.errors import ConfigError, UnsupportedModelError
from lifestudy.life import patch_grid as embed_grid
from lifestudy.weights import checkpoint_path, read_weights

__all__ = [
    "is_swin",
    "create_backbone",
    "backbone_width",
    "backbone_stride",
    "patch_grid",
    "feature_grid",
    "load_backbone_checkpoint",
    "describe_dense_model",
]


def is_swin(model: nn.Module) -> bool:
    """A timm SwinTransformerV2 (LIFE or not), or a dense model holding one as ``.backbone``:
    the one rule for "is this Swin?" (its token grid, stride and roll-out differ from a ViT's)."""
    return any(isinstance(m, SwinTransformerV2) for m in (model, getattr(model, "backbone", None)))


def create_backbone(
    name: str,
    img_size: tuple[int, int],
    in_chans: int = 3,
    pretrained: bool = False,
    **kwargs: Any,
) -> nn.Module:
    """A timm backbone without classifier, ready for :func:`feature_grid`.

    Args:
        name: a registered timm name, e.g. ``deit_tiny_patch16_224_life`` or ``deit_test_patch4_32``.
        img_size: ``(H, W)`` the model is built for (its position-embedding grid); ViTs
            accept other sizes at run time (``dynamic_img_size``), SwinV2 does not.
        in_chans: input channels (1 for grey images).
        pretrained: load timm's pretrained weights (needs them in the local cache or network).
        kwargs: passed to ``timm.create_model`` (``drop_path_rate``, ...).
    """
    if not timm.is_model(name):
        raise ConfigError(
            f"unknown backbone {name!r}; use a registered timm name such as "
            "'deit_tiny_patch16_224_life' or 'deit_test_patch4_32' (see `timm.list_models()`)"
        )
    H, W = (int(v) for v in to_2tuple(img_size))
    opts: dict[str, Any] = dict(num_classes=0, in_chans=in_chans, img_size=(H, W), **kwargs)
    if not name.startswith("swin"):
        opts.setdefault("dynamic_img_size", True)
    try:
        model = timm.create_model(name, pretrained=pretrained, **opts)
    except (RuntimeError, OSError, ValueError) as err:
        if not pretrained:
            raise
        raise ConfigError(
            f"could not load timm's pretrained weights for {name!r} ({err}); put them in the "
            "Hugging Face cache (HF_HOME) on a machine with network access, or use "
            "--init CKPT with a classification checkpoint of ours"
        ) from err
    return model


def backbone_width(model: nn.Module) -> int:
    """Channels C of the feature grid."""
    return int(model.num_features)


def backbone_stride(model: nn.Module) -> tuple[int, int]:
    """Pixels per feature-grid cell (the patch size for a ViT, 32 for SwinV2)."""
    if is_swin(model):
        return 32, 32
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    if patch is None:
        raise UnsupportedModelError(
            f"{type(model).__name__} is not a backbone the dense heads can read as a patch grid; "
            "use a ViT/DeiT (e.g. deit_tiny_patch16_224_life) or a SwinV2 backbone"
        )
    return tuple(int(v) for v in to_2tuple(patch))


def patch_grid(model: nn.Module, H: int, W: int) -> tuple[int, int]:
    """The feature grid ``(gh, gw)`` for an ``H x W`` input; raises ConfigError when the
    stride does not divide the image."""
    sh, sw = backbone_stride(model)
    if H % sh or W % sw:
        raise ConfigError(
            f"image size {H}x{W} is not divisible by the backbone's stride {sh}x{sw}; "
            f"resize or crop to a multiple of it (e.g. --img-size {H // sh * sh or sh} {W // sw * sw or sw})"
        )
    if is_swin(model):
        return H // sh, W // sw
    gh, gw = embed_grid(model.patch_embed, (H, W))
    return int(gh), int(gw)


def feature_grid(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Last-layer features of ``images`` (B, in_chans, H, W) as a grid (B, C, gh, gw).

    ViT/DeiT: the final-norm patch tokens, prefix tokens dropped. SwinV2: the last stage.
    """
    B, _, H, W = images.shape
    gh, gw = patch_grid(model, H, W)
    x = model.forward_features(images)
    if x.ndim == 4:  # SwinV2 and other NHWC hierarchical models
        return x.permute(0, 3, 1, 2).contiguous()
    x = x[:, getattr(model, "num_prefix_tokens", 1):]
    return x.transpose(1, 2).reshape(B, -1, gh, gw)


def _channels_differ_only(value: torch.Tensor, target: torch.Tensor) -> bool:
    return (value.ndim == 4 and value.shape[0] == target.shape[0]
            and value.shape[2:] == target.shape[2:] and value.shape[1] != target.shape[1])


def _adapt_in_chans(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """A first conv's weight for another number of input channels, as timm's
    ``adapt_input_conv`` does: grey -> RGB repeats the kernel and divides by the channels
    (a grey image copied to RGB gives the same response); RGB -> grey sums them."""
    if weight.shape[1] == 1:
        return weight.repeat(1, in_chans, 1, 1) / in_chans
    return weight.sum(dim=1, keepdim=True)


def load_backbone_checkpoint(model: nn.Module, path: str | os.PathLike) -> dict[str, Any]:
    """Load a classification checkpoint of ours into a dense model's backbone.

    Keys are matched by name after dropping ``module.`` / ``backbone.`` prefixes; the
    classifier (``head*``) and anything whose shape differs is skipped, except the
    absolute position embedding, which is resampled to this backbone's grid with timm's
    ``resample_abs_pos_embed``, and a patch embedding trained on grey images (Fashion-MNIST)
    used for RGB ones (the scenes), or the other way round. Returns what happened: ``{"path", "loaded", "skipped",
    "missing", "resampled"}`` (lists of key names), so a run record can say it.

    Args:
        model: the timm backbone (``detector.backbone`` / ``segmenter.backbone``).
        path: a ``checkpoint.pt`` or a run folder holding one.
    """
    path = checkpoint_path(path)
    source = read_weights(path)  # the weights the run evaluated (its EMA's when it kept one)
    own = model.state_dict()
    loaded, skipped, resampled = [], [], []
    new_state = {}
    for key, value in source.items():
        for prefix in ("module.", "backbone."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        if key not in own or key.startswith("head"):
            skipped.append(key)
            continue
        target = own[key]
        if value.shape != target.shape:
            if key == "pos_embed" and value.ndim == 3 and value.shape[-1] == target.shape[-1]:
                npt = 0 if getattr(model, "no_embed_class", False) else model.num_prefix_tokens
                gh, gw = model.patch_embed.grid_size
                value = resample_abs_pos_embed(value, new_size=[gh, gw], num_prefix_tokens=npt)
                resampled.append(key)
            elif _channels_differ_only(value, target) and (value.shape[1] == 1 or target.shape[1] == 1):
                value = _adapt_in_chans(value, target.shape[1])
                resampled.append(key)
            else:
                skipped.append(key)
                continue
        new_state[key] = value.to(target.dtype)
        loaded.append(key)
    if not loaded:
        raise ConfigError(
            f"none of the weights in {path} fit this backbone; --init expects a classification "
            "checkpoint of the same backbone family (e.g. deit_tiny_patch4_32_life for a "
            "deit_tiny_patch4_32_life detector)"
        )
    model.load_state_dict(new_state, strict=False)
    missing = sorted(set(own) - set(new_state))
    return {"path": str(path), "loaded": loaded, "skipped": skipped, "missing": missing,
            "resampled": resampled}


def describe_dense_model(model: nn.Module) -> dict[str, Any]:
    """What a run record should say about a detector or segmenter: its head sizes, its
    trainable parameters (backbone and head apart), and what ``--init`` loaded."""
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    backbone = sum(p.numel() for p in model.backbone.parameters() if p.requires_grad)
    report = getattr(model, "init_report", None)
    init = None
    if report:
        init = {"path": report["path"], "loaded": len(report["loaded"]), "skipped": len(report["skipped"]),
                "missing": len(report["missing"]), "resampled": report["resampled"]}
    return {"head_config": getattr(model, "head_config", None), "params_m": total / 1e6,
            "backbone_params_m": backbone / 1e6, "head_params_m": (total - backbone) / 1e6, "init": init}
