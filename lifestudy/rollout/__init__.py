"""Attention roll-out and Dense Attention Roll-Out, measured against ground-truth masks.

- :mod:`lifestudy.rollout.capture` — every block's softmax attention ``(B, heads, N, N)``,
  also under timm's fused attention (switched off for the call only), for any batch size;
- :mod:`lifestudy.rollout.tensors` — the definitions, on tensors: attention roll-out
  (Abnar & Zuidema 2020) and Dense Attention Roll-Out (Akkaya et al. 2023), written out in
  its docstring;
- :mod:`lifestudy.rollout.maps` — the same on a model: one forward pass, the maps;
- :mod:`lifestudy.rollout.localisation` — pointing game and top-region IoU of class maps
  against the scenes' masks, per method;
- :mod:`lifestudy.rollout.figures` — image, ground truth and per-class maps with colour bars;
- :mod:`lifestudy.rollout.swin` — roll-out through SwinV2: window attention placed as
  full-size block matrices, shifts undone with timm's own roll and partition, 2x2 patch
  merging as an explicit matrix (a quarter to each source: the one assumption, stated);
- :mod:`lifestudy.rollout.runs` — maps and scores of a trained run folder (the CLI's engine).

Which models: timm ViT/DeiT with any number of prefix tokens (class, distillation,
register) or none, with and without LIFE, any patch grid; dense models that hold such a
ViT as ``.backbone``; SwinV2 (with and without LIFE) for :func:`attention_rollout` and
:func:`dense_attention_rollout` (its classifier averages the last stage's tokens, so its
standard map is the mean of the roll-out's rows).
"""

from lifestudy.rollout.capture import (
    attention_maps,
    attention_modules,
    capture_attention,
    forward_with_attention,
    has_class_token,
    num_prefix_tokens,
    patch_grid,
    vision_backbone,
)
from lifestudy.rollout.maps import attention_rollout, dense_attention_rollout, last_layer_attention, rollout_all
from lifestudy.dense.backbone import is_swin
from lifestudy.rollout.swin import swin_rollout
from lifestudy.rollout.tensors import (
    HEAD_FUSIONS,
    class_maps,
    discard_lowest,
    fuse_heads,
    predicted_token_weights,
    rollout,
)

__all__ = [
    "HEAD_FUSIONS",
    "attention_maps",
    "attention_modules",
    "attention_rollout",
    "capture_attention",
    "class_maps",
    "dense_attention_rollout",
    "discard_lowest",
    "forward_with_attention",
    "fuse_heads",
    "has_class_token",
    "is_swin",
    "last_layer_attention",
    "num_prefix_tokens",
    "patch_grid",
    "predicted_token_weights",
    "rollout",
    "rollout_all",
    "swin_rollout",
    "vision_backbone",
]
