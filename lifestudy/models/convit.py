"""ConViT's gated positional self-attention at the study's size: timm's ``ConVit``, nothing copied.

d'Ascoli, Touvron, Leavitt, Morcos, Biroli, Sagun, "ConViT: Improving Vision Transformers
with Soft Convolutional Inductive Biases", ICML 2021; reference code facebookresearch/convit,
shipped by timm as ``timm.models.convit`` (``ConVit``, ``GPSA``), which is what runs here.

GPSA mixes, per head, content attention with a *positional* attention over the relative
offsets between patches (initialised to attend around a per-head offset, a soft convolution);
a learned gate per head decides the mix. ConViT uses GPSA in its first ``local_up_to_layer``
blocks (10 of 12) and plain self-attention after, and only then inserts the class token:
GPSA's positional scores exist between patches, so no token without a position may be there.

``convit_micro_patch4_32``: timm's ``ConVit`` at DeiT-micro's size (embed 96 = 32 per head x
3 heads, depth 6, patch 4, 32x32), GPSA in the first 5 blocks (ConViT's 10/12), locality
strength 1 (ConViT-Ti's). With 3 heads ConViT's local initialisation (an
``int(sqrt(heads))``-wide square of offsets) places one head; ConViT's own models use 4, 9
or 16 heads. ``convit_test_patch4_32`` (48 wide, 2 deep, GPSA in the first) is for tests.

:class:`GatedPositionalAttention` is timm's ``GPSA`` under the keywords of a ViT
``attn_layer``, so that the compatibility table (:mod:`lifestudy.peers`) can try GPSA in other
hosts unchanged; it refuses (:class:`~lifestudy.models.locality.NotApplicable`) where timm's
GPSA would compute a wrong or impossible positional attention: with prefix tokens, or a grid
that is not square (timm and the reference build the relative offsets from ``int(sqrt(N))``).
"""

from __future__ import annotations

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.convit import GPSA, ConVit

from lifestudy.errors import ConfigError
from lifestudy.models.locality import GridState, NotApplicable, prefix_and_patches, small_cfg

__all__: list[str] = []  # filled by @register_model


class GatedPositionalAttention(GPSA):
    """timm's ``GPSA`` taking a ViT ``attn_layer``'s keywords (those GPSA has no use for are dropped)."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, locality_strength: float = 1.0, device=None, dtype=None,
                 **unused) -> None:
        super().__init__(dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop,
                         locality_strength=locality_strength, device=device, dtype=dtype)
        self.local_init()
        self.grid_state: GridState | None = None

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False):
        prefix, _, (gh, gw) = prefix_and_patches(self, x)
        if prefix.shape[1]:
            raise NotApplicable(
                f"GPSA's positional attention is defined between patches only, and this model has "
                f"{prefix.shape[1]} token(s) without a position in the block (ConViT adds its class "
                "token after the last GPSA block)"
            )
        if gh != gw:
            raise NotApplicable(
                f"GPSA's relative positions are built for a square grid (int(sqrt(N)) in timm and the "
                f"reference code); this grid is {gh}x{gw}"
            )
        return super().forward(x)


default_cfgs = generate_default_cfgs({
    "convit_micro_patch4_32": small_cfg(),
    "convit_test_patch4_32": small_cfg(),
})


def _convit(variant: str, pretrained: bool, **kwargs) -> ConVit:
    if pretrained:
        raise ConfigError(f"{variant} has no pretrained weights (the study trains it from scratch): "
                          "use pretrained=False")
    return build_model_with_cfg(ConVit, variant, pretrained=False, **kwargs)


@register_model
def convit_micro_patch4_32(pretrained: bool = False, **kwargs) -> ConVit:
    """timm's ConViT at DeiT-micro's size: 96 wide (3 heads of 32), 6 deep, GPSA in the first 5."""
    args = dict(img_size=32, patch_size=4, embed_dim=32, num_heads=3, depth=6, local_up_to_layer=5,
                locality_strength=1.0, mlp_ratio=4)
    return _convit("convit_micro_patch4_32", pretrained, **dict(args, **kwargs))


@register_model
def convit_test_patch4_32(pretrained: bool = False, **kwargs) -> ConVit:
    """A test-size ConViT: 48 wide (3 heads of 16), 2 deep, GPSA in the first."""
    args = dict(img_size=32, patch_size=4, embed_dim=16, num_heads=3, depth=2, local_up_to_layer=1,
                locality_strength=1.0, mlp_ratio=4)
    return _convit("convit_test_patch4_32", pretrained, **dict(args, **kwargs))
