"""LocalViT: a depthwise convolution in the feed-forward network, as a timm ``mlp_layer``.

Li, Zhang, Cao, Timofte, Van Gool, "LocalViT: Bringing Locality to Vision Transformers",
arXiv 2104.05707 (IROS 2023 as "LocalViT: Analyzing locality in vision transformers");
reference code: ``LocalityFeedForward`` and ``Block`` in ofsoundof/LocalViT
``models/localvit.py`` (read, not copied).

The feed-forward network of every block becomes an inverted residual over the patch grid:
1x1 conv (no bias) + BatchNorm + h-swish, **3x3 depthwise conv** (no bias) + BatchNorm +
h-swish, 1x1 conv (no bias) + BatchNorm, hidden width ``mlp_ratio x C`` (4x, as DeiT).
The registered model is timm's ``VisionTransformer`` with ``mlp_layer=LocalityFeedForward``.

Prefix tokens (class, distillation, register tokens) have no grid position: as in the
reference (which splits the class token off before the FFN and concatenates it back), they
skip the feed-forward network: its output for them is zero, so timm's residual keeps them.

Where we differ from the reference (and why):

- timm's ``Block`` keeps its LayerNorm before the FFN and its residual around it; the reference
  drops ``norm2`` and adds the residual inside the FFN (the BatchNorms normalise instead);
- the activation is h-swish without the squeeze-excitation module (the reference's ``act=2``,
  "hs"): SE pools over the whole grid and is a channel-attention add-on the paper ablates
  separately; the local part the paper is about is the depthwise conv;
- the grid is recorded from the patch embedding (:mod:`lifestudy.models.locality`), not
  ``int(sqrt(N))``, and any number of prefix tokens is taken, not exactly one.

Registered: ``deit_micro_patch4_32_localvit`` (96 wide, 6 deep, 3 heads, patch 4, 32x32) and
``deit_test_patch4_32_localvit`` (48, 2, 3), for tests.
"""

from __future__ import annotations

import torch
from torch import nn

from lifestudy.models.locality import GridState, prefix_and_patches, register_peers

__all__: list[str] = []  # filled by register_peers (timm's register_model)


class LocalityFeedForward(nn.Module):
    """Inverted-residual FFN over the patch grid; a drop-in for timm's ``Mlp`` (same keywords).

    Args:
        in_features: token channels C.
        hidden_features: hidden width (timm passes ``mlp_ratio * C``).
        out_features: output channels (default C).
        kernel_size: the depthwise kernel (LocalViT: 3).
        act_layer, norm_layer, bias, drop: timm's ``Mlp`` keywords, accepted and not used
            (h-swish and BatchNorm are the method's; its convs have no bias).
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        kernel_size: int = 3,
        act_layer=None,
        norm_layer=None,
        bias: bool = True,
        drop: float = 0.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        hidden = hidden_features or 4 * in_features
        out = out_features or in_features
        dd = {"device": device, "dtype": dtype}
        self.conv = nn.Sequential(
            nn.Conv2d(in_features, hidden, 1, bias=False, **dd), nn.BatchNorm2d(hidden, **dd), nn.Hardswish(),
            nn.Conv2d(hidden, hidden, kernel_size, padding=kernel_size // 2, groups=hidden, bias=False, **dd),
            nn.BatchNorm2d(hidden, **dd), nn.Hardswish(),
            nn.Conv2d(hidden, out, 1, bias=False, **dd), nn.BatchNorm2d(out, **dd),
        )
        self.drop = nn.Dropout(drop)
        self.out_features = out
        self.grid_state: GridState | None = None  # set by attach_grid (or a host's own hook)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        prefix, patches, (gh, gw) = prefix_and_patches(self, x)
        B, _, C = patches.shape
        image = patches.transpose(1, 2).reshape(B, C, gh, gw)
        y = self.drop(self.conv(image).flatten(2).transpose(1, 2))
        if prefix.shape[1] == 0:
            return y
        return torch.cat([y.new_zeros(B, prefix.shape[1], self.out_features), y], dim=1)


LAYERS = dict(mlp_layer=LocalityFeedForward)  # what the peer passes into timm's VisionTransformer

register_peers(__name__, "localvit", LAYERS, {
    "micro": "DeiT-micro with LocalViT's depthwise-conv feed-forward network in every block.",
    "test": "The test-size DeiT with LocalViT's feed-forward network.",
})
