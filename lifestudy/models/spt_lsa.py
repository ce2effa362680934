"""SPT + LSA: shifted patch tokenization and locality self-attention, as timm layers.

Lee, Lee, Song, "Vision Transformer for Small-Size Datasets", arXiv 2112.13492 (2021);
reference code: ``ShiftedPatchTokenization`` / ``PatchShifting`` (``models/SPT.py``) and the
LSA ``Attention`` of ``models/vit.py`` in aanna0701/SPT_LSA_ViT (read, not copied).

- **SPT** (:class:`ShiftedPatchEmbed`, a timm ``embed_layer``): the image and four copies of
  it shifted by half a patch along the diagonals (zero padding) are concatenated on the
  channels (5 x C), cut into patches, each flattened patch layer-normalised and projected
  linearly to the embedding. It is timm's ``PatchEmbed`` with only its ``proj`` replaced, so
  timm's size checks, padding, ``dynamic_img_size`` (NHWC output) and flattening are kept.
- **LSA** (:class:`LocalitySelfAttention`, a timm ``attn_layer``): timm's ``Attention`` with a
  learnable temperature (the softmax scale ``exp(t)``, ``t`` initialised to ``log(d_head^-1/2)``,
  one per layer) and *diagonal masking* (each token's score with itself is -inf, so attention
  goes to the other tokens).

Prefix tokens: SPT works on the image, before any prefix token exists; LSA treats every token
alike (none is spatial), so class, distillation and register tokens need nothing special.

Where we differ from the reference: the flattened patch's channel order is (row, column,
channel) as the reference's ``(p1 p2 c)``; the reference's SPT also re-merges tokens inside
its pooling-based models (PiT, Swin), which DeiT has no use for; LSA is computed with
``F.scaled_dot_product_attention`` (q scaled by the temperature, the diagonal as an additive
mask), the same function as the reference's explicit softmax.

Registered: ``deit_micro_patch4_32_spt_lsa`` (96 wide, 6 deep, 3 heads, patch 4, 32x32) and
``deit_test_patch4_32_spt_lsa`` (48, 2, 3), for tests.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import Attention, PatchEmbed
from torch import nn

from lifestudy.models.locality import register_peers

__all__: list[str] = []  # filled by register_peers (timm's register_model)


class ShiftedPatchProjection(nn.Module):
    """Image ``(B, C, H, W)`` -> patch embeddings ``(B, D, H/p, W/p)``: SPT's shift, concatenate,
    patchify, LayerNorm, linear."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: tuple[int, int], bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.patch_size = tuple(patch_size)
        self.shift = (self.patch_size[0] // 2, self.patch_size[1] // 2)
        patch_dim = 5 * in_chans * self.patch_size[0] * self.patch_size[1]
        self.norm = nn.LayerNorm(patch_dim, **dd)
        self.linear = nn.Linear(patch_dim, embed_dim, bias=bias, **dd)

    def shifted(self, x: torch.Tensor) -> torch.Tensor:
        """The image and its four diagonal half-patch shifts, concatenated: ``(B, 5C, H, W)``."""
        sh, sw = self.shift
        H, W = x.shape[-2:]
        pad = F.pad(x, (sw, sw, sh, sh))
        crops = [pad[..., dy:dy + H, dx:dx + W] for dy in (0, 2 * sh) for dx in (0, 2 * sw)]
        return torch.cat([x, *crops], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.shifted(x)
        B, C, H, W = x.shape
        ph, pw = self.patch_size
        patches = x.view(B, C, H // ph, ph, W // pw, pw).permute(0, 2, 4, 3, 5, 1).reshape(B, H // ph, W // pw, -1)
        return self.linear(self.norm(patches)).permute(0, 3, 1, 2)


class ShiftedPatchEmbed(PatchEmbed):
    """timm's ``PatchEmbed`` (same keywords) with SPT as its projection."""

    def __init__(self, img_size=224, patch_size=16, in_chans=3, embed_dim=768, bias=True, **kwargs) -> None:
        super().__init__(img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim,
                         bias=bias, **kwargs)
        dd = {k: kwargs[k] for k in ("device", "dtype") if k in kwargs}
        self.proj = ShiftedPatchProjection(in_chans, embed_dim, self.patch_size, bias=bias, **dd)


class LocalitySelfAttention(Attention):
    """timm's ``Attention`` (same keywords) with LSA: learnable temperature, diagonal masking."""

    def __init__(self, dim: int, num_heads: int = 8, **kwargs) -> None:
        super().__init__(dim, num_heads=num_heads, **kwargs)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(self.head_dim ** -0.5)))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        if is_causal:
            raise NotImplementedError("LSA is a bidirectional self-attention (is_causal=False)")
        B, N, _ = x.shape
        gate = self.gate(x).sigmoid() if getattr(self, "gate", None) is not None else None
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        diagonal = torch.eye(N, dtype=torch.bool, device=x.device)
        mask = torch.zeros(N, N, dtype=q.dtype, device=x.device).masked_fill(diagonal, float("-inf"))
        if attn_mask is not None:
            mask = mask + attn_mask
        x = F.scaled_dot_product_attention(
            q * self.log_temperature.exp(), k, v, attn_mask=mask,
            dropout_p=self.attn_drop.p if self.training else 0.0, scale=1.0,
        )
        x = self.norm(x.transpose(1, 2).reshape(B, N, self.attn_dim))
        if gate is not None:
            x = x * gate
        return self.proj_drop(self.proj(x))


LAYERS = dict(embed_layer=ShiftedPatchEmbed, attn_layer=LocalitySelfAttention)  # what the peer passes into timm's VisionTransformer

register_peers(__name__, "spt_lsa", LAYERS, {
    "micro": "DeiT-micro with shifted patch tokenization and locality self-attention.",
    "test": "The test-size DeiT with SPT + LSA.",
}, first_conv=None)
