"""T2T-ViT-12 (not in timm) and its LIFE twin, as timm models.

Yuan et al., "Tokens-to-Token ViT: Training Vision Transformers from Scratch on ImageNet",
ICCV 2021; architecture as in github.com/yitu-opensource/T2T-ViT (``models/t2t_vit.py``,
``models/token_performer.py``): a tokens-to-token embedding of three soft splits
(unfold 7x7/4, 3x3/2, 3x3/2) with a Performer layer after the first two, then 12 plain ViT
blocks (256 wide, 4 heads, MLP ratio 2, no qkv bias) with a class token and a fixed
sinusoidal position embedding.

Here the backbone *is* timm's ``VisionTransformer`` (:class:`T2TViT` only passes
:class:`T2TEmbed` in as its ``embed_layer`` and keeps the sinusoid table as a buffer), so timm's
``Attention`` blocks, heads, ``forward_features`` / ``forward_head`` / ``forward_intermediates``,
``features_only`` and :func:`lifestudy.apply_life` all work as for DeiT. The grid of a 224x224
input is 14x14 (an overall stride of 16).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import to_2tuple
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from lifestudy.errors import ConfigError
from lifestudy.models.vit import _create_life, life_cfg

__all__ = ["T2TEmbed", "T2TViT", "TokenPerformer", "sinusoid_pos_embed"]


def sinusoid_pos_embed(num_tokens: int, dim: int) -> torch.Tensor:
    """The fixed sine/cosine table of Vaswani et al. 2017 as T2T-ViT uses it: (1, num_tokens, dim)."""
    pos = torch.arange(num_tokens, dtype=torch.float64)[:, None]
    inv = torch.pow(10000.0, -2.0 * (torch.arange(dim) // 2) / dim).to(torch.float64)
    table = pos * inv[None]
    table[:, 0::2] = torch.sin(table[:, 0::2])
    table[:, 1::2] = torch.cos(table[:, 1::2])
    return table.float()[None]


class TokenPerformer(nn.Module):
    """One Performer layer (single head, positive random features) of the T2T embedding.

    Choromanski et al., "Rethinking Attention with Performers", ICLR 2021. As in T2T-ViT,
    the value is the skip connection of the attention part (the token width changes there).

    Args:
        dim: input token width (channels of an unfolded patch).
        in_dim: output token width.
        kernel_ratio: random features per output channel.
    """

    def __init__(self, dim: int, in_dim: int, kernel_ratio: float = 0.5, drop: float = 0.1) -> None:
        super().__init__()
        self.emb = in_dim
        self.kqv = nn.Linear(dim, 3 * in_dim)
        self.dp = nn.Dropout(drop)
        self.proj = nn.Linear(in_dim, in_dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(in_dim)
        self.mlp = nn.Sequential(nn.Linear(in_dim, in_dim), nn.GELU(), nn.Linear(in_dim, in_dim), nn.Dropout(drop))
        self.m = int(in_dim * kernel_ratio)
        w = nn.init.orthogonal_(torch.empty(self.m, in_dim)) * math.sqrt(self.m)
        self.register_buffer("w", w)  # fixed random features (a frozen parameter in T2T-ViT)
        self.epsilon = 1e-8

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """exp(w^T x - |x|^2 / 2) / sqrt(m): positive random features of the softmax kernel."""
        xd = (x * x).sum(dim=-1, keepdim=True) / 2
        wtx = torch.einsum("bti,mi->btm", x.float(), self.w)
        return torch.exp(wtx - xd) / math.sqrt(self.m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kqv = self.kqv(self.norm1(x))
        k, q, v = kqv[..., :self.emb], kqv[..., self.emb:2 * self.emb], kqv[..., 2 * self.emb:]
        kp, qp = self._features(k), self._features(q)  # (B, T, m)
        D = torch.einsum("bti,bi->bt", qp, kp.sum(dim=1)).unsqueeze(-1)  # (B, T, 1)
        kptv = torch.einsum("bin,bim->bnm", v.float(), kp)  # (B, emb, m)
        y = torch.einsum("bti,bni->btn", qp, kptv) / (D + self.epsilon)
        x = v + self.dp(self.proj(y))
        return x + self.mlp(self.norm2(x))


class T2TEmbed(nn.Module):
    """Tokens-to-token embedding, usable as timm ``VisionTransformer(embed_layer=T2TEmbed)``.

    Args:
        img_size: input size the position embedding is built for.
        patch_size: must be 16 (the T2T embedding's overall stride).
        in_chans: image channels.
        embed_dim: output token width.
        token_dim: token width inside the T2T embedding.
        output_fmt: "NHWC" for timm's ``dynamic_img_size`` (tokens as a grid), else flat tokens.
    """

    # (kernel, stride, padding) of the three soft splits (a constant for TorchScript)
    __constants__ = ["_splits"]
    _splits = ((7, 4, 2), (3, 2, 1), (3, 2, 1))

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int | tuple[int, int] = 16,
        in_chans: int = 3,
        embed_dim: int = 256,
        token_dim: int = 64,
        output_fmt: str | None = None,
        strict_img_size: bool = True,
        dynamic_img_pad: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if to_2tuple(patch_size) != (16, 16):
            raise ConfigError(f"T2T-ViT's tokens-to-token embedding has stride 16, got patch_size={patch_size}")
        if dynamic_img_pad:
            raise ConfigError("T2T-ViT does not pad inputs (dynamic_img_pad=False)")
        self.patch_size = (16, 16)
        self.dynamic_img_pad = False
        self.output_fmt = output_fmt or "NLC"
        self.strict_img_size = strict_img_size
        self.soft_split = nn.ModuleList(nn.Unfold(k, padding=p, stride=s) for k, s, p in self._splits)
        self.attention1 = TokenPerformer(in_chans * 7 * 7, token_dim)
        self.attention2 = TokenPerformer(token_dim * 3 * 3, token_dim)
        self.project = nn.Linear(token_dim * 3 * 3, embed_dim)
        self.img_size = to_2tuple(img_size)
        self.grid_size = self.dynamic_feat_size(self.img_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]

    def feat_ratio(self, as_scalar: bool = True) -> int | tuple[int, int]:
        return 16 if as_scalar else (16, 16)

    def dynamic_feat_size(self, img_size: tuple[int, int]) -> tuple[int, int]:
        """The token grid the three soft splits make of an ``img_size`` input (integer
        arithmetic: the sizes may be symbolic inside a traced graph)."""
        h, w = img_size[0], img_size[1]
        for split in self._splits:
            h, w = _unfolded(h, split), _unfolded(w, split)
        return h, w

    def _check_size(self, H: int, W: int) -> None:
        if not self.strict_img_size:
            return
        if not torch.jit.is_scripting():
            if isinstance(H, torch.fx.Proxy):  # symbolic tracing: the check becomes part of the graph
                torch._assert(H == self.img_size[0], "T2T-ViT: input height does not match img_size")
                torch._assert(W == self.img_size[1], "T2T-ViT: input width does not match img_size")
                return
        if H != self.img_size[0] or W != self.img_size[1]:
            raise ConfigError(
                f"T2T-ViT built for {self.img_size}, got {H}x{W}: pass img_size, or dynamic_img_size=True"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        self._check_size(H, W)
        split1, split2, split3 = self._splits
        # soft split to (B, tokens, C * k * k), a Performer layer, back to an image; twice; project
        x = self.attention1(self.soft_split[0](x).transpose(1, 2))
        h, w = _unfolded(H, split1), _unfolded(W, split1)
        x = x.transpose(1, 2).reshape(B, -1, h, w)
        x = self.attention2(self.soft_split[1](x).transpose(1, 2))
        h, w = _unfolded(h, split2), _unfolded(w, split2)
        x = x.transpose(1, 2).reshape(B, -1, h, w)
        x = self.project(self.soft_split[2](x).transpose(1, 2))
        h, w = _unfolded(h, split3), _unfolded(w, split3)
        if self.output_fmt == "NHWC":
            return x.reshape(B, h, w, -1)
        return x


def _unfolded(size: int, split: tuple[int, int, int]) -> int:
    """Positions an unfold of (kernel, stride, padding) ``split`` takes along a ``size`` axis."""
    k, s, p = split
    return (size + 2 * p - k) // s + 1


class T2TViT(VisionTransformer):
    """T2T-ViT: timm's ``VisionTransformer`` with the tokens-to-token embedding and T2T-ViT's
    fixed sine/cosine position table, a buffer (it is not learned; ``pos_embed`` in the state dict
    as before). Takes ``VisionTransformer``'s arguments and ``token_dim``."""

    def __init__(self, token_dim: int = 64, **kwargs: Any) -> None:
        super().__init__(embed_layer=partial(T2TEmbed, token_dim=token_dim), **kwargs)
        if self.pos_embed is not None:
            table = sinusoid_pos_embed(self.pos_embed.shape[1], self.pos_embed.shape[2]).to(self.pos_embed)
            del self.pos_embed
            self.register_buffer("pos_embed", table)


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {
        "url": "", "num_classes": 1000, "input_size": (3, 224, 224), "test_input_size": (3, 224, 224),
        "pool_size": None, "crop_pct": 0.9, "interpolation": "bicubic", "fixed_input_size": True,
        "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.attention1.kqv", "classifier": "head",
        "license": "mit", "paper_ids": "arXiv:2101.11986",
        "paper_name": "Tokens-to-Token ViT: Training Vision Transformers from Scratch on ImageNet",
        **kwargs,
    }


_T2T_CFG = _cfg()
default_cfgs = generate_default_cfgs({"t2t_vit_12": _T2T_CFG, "t2t_vit_12_life": life_cfg(_T2T_CFG)})


def _create_t2t_vit(variant: str, pretrained: bool = False, **kwargs: Any) -> T2TViT:
    if pretrained:
        raise ConfigError(f"{variant}: no pretrained weights are provided; use pretrained=False")
    return build_model_with_cfg(
        T2TViT, variant, pretrained=False,
        feature_cfg=dict(out_indices=kwargs.pop("out_indices", 3), feature_cls="getter"),
        **kwargs,
    )


@register_model
def t2t_vit_12(pretrained: bool = False, **kwargs) -> T2TViT:
    """T2T-ViT-12 (Performer tokens-to-token; 256 wide, 12 deep, 4 heads, MLP ratio 2)."""
    model_args = dict(
        patch_size=16, embed_dim=256, depth=12, num_heads=4, mlp_ratio=2.0, qkv_bias=False,
        norm_layer=nn.LayerNorm,
    )
    return _create_t2t_vit("t2t_vit_12", pretrained, **dict(model_args, **kwargs))


@register_model
def t2t_vit_12_life(pretrained: bool = False, **kwargs) -> T2TViT:
    """T2T-ViT-12 with LIFE in its 12 ViT blocks (the T2T embedding is unchanged)."""
    return _create_life("t2t_vit_12_life", t2t_vit_12, pretrained, **kwargs)
