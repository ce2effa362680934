"""CvT's convolutional projection of q, k and v (single scale, stride 1), as a timm ``attn_layer``.

Wu, Xiao, Codella, Liu, Dai, Yuan, Zhang, "CvT: Introducing Convolutions to Vision
Transformers", ICCV 2021; reference code: ``Attention`` with ``method='dw_bn'``
(``conv_proj_q/k/v`` then ``proj_q/k/v``) in microsoft/CvT ``lib/models/cls_cvt.py`` (read,
not copied). The closest precedent of LIFE: both put a depthwise conv in front of the q/k/v
projection; CvT uses one 3x3 scale, LIFE cascades three (1x1, 3x3, 5x5).

For each of q, k and v: a 3x3 **depthwise conv** (no bias) + BatchNorm over the patch grid,
then a linear projection (``qkv_bias``). CvT's key/value convs have stride 2 (a cheaper,
coarser k/v); here every stride is 1, so k and v keep one entry per patch as LIFE does, and
the comparison is about locality, not token reduction.

:class:`ConvQKV` is a drop-in for timm ``Attention.qkv`` (tokens ``(B, N, C)`` -> ``(B, N, 3C)``
in timm's q|k|v layout), so :class:`ConvProjAttention` is timm's ``Attention`` with only its
``qkv`` replaced; its ``forward`` is timm's.

Prefix tokens (class, distillation, register tokens) have no grid position: as CvT does with
its class token (split off before the conv, concatenated back after it), they skip the conv
and BatchNorm and take only the linear projections.

Where we differ from the reference: stride 1 for k and v (above); the three depthwise convs
are one grouped conv with three filters per channel (the same function, one kernel call);
the grid is recorded from the patch embedding (:mod:`lifestudy.models.locality`), not passed
as ``h, w`` by CvT's stage code; any number of prefix tokens, not one.

Registered: ``deit_micro_patch4_32_convproj`` (96 wide, 6 deep, 3 heads, patch 4, 32x32) and
``deit_test_patch4_32_convproj`` (48, 2, 3), for tests.
"""

from __future__ import annotations

import torch
from timm.layers import Attention
from torch import nn

from lifestudy.life import QKVFeatures
from lifestudy.models.locality import GridState, prefix_and_patches, register_peers

__all__: list[str] = []  # filled by register_peers (timm's register_model)


class ConvQKV(QKVFeatures, nn.Module):
    """Depthwise conv + BatchNorm, then a linear layer, for each of q, k, v; a drop-in for ``qkv``.

    Args:
        dim: token channels C (the output has 3C: ``[q | k | v]``).
        bias: bias of the three linear projections.
        kernel_size: the depthwise kernel (CvT: 3).
    """

    def __init__(self, dim: int, bias: bool = True, kernel_size: int = 3, device=None, dtype=None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.dim = dim
        # output channel 3c + j is the depthwise filter of channel c for j = q, k, v
        self.conv = nn.Conv2d(dim, 3 * dim, kernel_size, padding=kernel_size // 2, groups=dim, bias=False, **dd)
        self.bn = nn.BatchNorm2d(3 * dim, **dd)
        self.proj = nn.ModuleList(nn.Linear(dim, dim, bias=bias, **dd) for _ in range(3))
        self.grid_state: GridState | None = None  # set by attach_grid (or a host's own hook)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        prefix, patches, (gh, gw) = prefix_and_patches(self, x)
        B, P, C = prefix.shape
        image = patches.transpose(1, 2).reshape(B, C, gh, gw)
        local = self.bn(self.conv(image)).view(B, C, 3, gh * gw).permute(0, 3, 2, 1)  # (B, gh*gw, 3, C)
        parts = torch.cat([prefix.unsqueeze(2).expand(B, P, 3, C), local], dim=1)  # (B, N, 3, C)
        return torch.cat([proj(parts[:, :, j]) for j, proj in enumerate(self.proj)], dim=-1)


class ConvProjAttention(Attention):
    """timm's ``Attention`` with CvT's convolutional q/k/v projection as its ``qkv``."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, kernel_size: int = 3, **kwargs) -> None:
        super().__init__(dim, num_heads=num_heads, qkv_bias=qkv_bias, **kwargs)
        dd = {k: kwargs[k] for k in ("device", "dtype") if k in kwargs}
        self.qkv = ConvQKV(dim, bias=qkv_bias, kernel_size=kernel_size, **dd)


LAYERS = dict(attn_layer=ConvProjAttention)  # what the peer passes into timm's VisionTransformer

register_peers(__name__, "convproj", LAYERS, {
    "micro": "DeiT-micro with CvT's convolutional q/k/v projection (stride 1) in every block.",
    "test": "The test-size DeiT with CvT's convolutional projection.",
})
