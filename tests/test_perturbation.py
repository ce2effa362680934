"""Chapter 1's perturbation analysis: LIFE's three receptive fields, untouched prefix tokens,
and which scale each attention head of DeiT-Tiny with LIFE attends with."""

from __future__ import annotations

import torch
from torch import nn

from lifestudy.life import LIFE
from lifestudy.perturbation import extent, head_fields, perturbation_response, reached, scale_fields


def test_each_scale_reaches_its_receptive_field_and_prefix_tokens_stay():
    torch.manual_seed(0)
    life = LIFE(24, num_prefix_tokens=2).eval()
    rows, maps, prefix_change = scale_fields(life, (9, 9))
    extents = {(r["scale"], r["part"]): r["extent (patches)"] for r in rows}
    for part in "qkv":
        assert [extents[(s, part)] for s in (1, 2, 3)] == ["1x1", "3x3", "7x7"]
    assert [r["positions changed"] for r in rows if r["part"] == "q"] == [1, 9, 49]
    assert prefix_change == 0.0 and all(m.shape == (9, 9) for m in maps)


def test_a_linear_qkv_reaches_only_the_perturbed_token():
    torch.manual_seed(0)
    linear = nn.Linear(8, 24)
    patches, prefix = perturbation_response(linear, (5, 6), 1, 8, at=(1, 4))
    mask = reached(patches.amax(0))
    assert extent(mask) == (1, 1) and bool(mask[1, 4]) and float(prefix.abs().max()) == 0.0
    assert extent(torch.zeros(3, 3, dtype=torch.bool)) == (0, 0)


def test_deit_tiny_heads_each_see_one_scale():
    torch.manual_seed(0)
    heads = head_fields("deit_tiny_patch16_224_life")
    assert [h["scale"] for h in heads] == [1, 2, 3]
    assert [h["receptive field (patches)"] for h in heads] == ["1x1", "3x3", "7x7"]
