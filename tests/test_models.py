"""The model zoo: registry names, timm API round trips, LIFE twins of their baselines."""

from __future__ import annotations

import pytest
import timm
import torch

import lifestudy  # noqa: F401  (registers the models)
from lifestudy.errors import ConfigError
from lifestudy.life import LIFE, life_modules
from lifestudy.models import BASELINES, LIFE_MODELS, baseline_of, life_twin

CONTRACT = [
    "deit_tiny_patch16_224_life", "deit_small_patch16_224_life", "deit_tiny_distilled_patch16_224_life",
    "swinv2_tiny_window8_256_life", "t2t_vit_12", "t2t_vit_12_life",
    *[f"{base}{suffix}" for base in [
        "deit_tiny_patch4_32", "deit_tiny_patch4_64", "deit_tiny_distilled_patch4_32", "deit_small_patch4_32",
        "deit_micro_patch4_32", "deit_micro_distilled_patch4_32", "deit_test_patch4_32",
        "deit_test_distilled_patch4_32"] for suffix in ("", "_life")],
    "resnet18", "resnet50",
]
TINY = ["deit_test_patch4_32", "deit_test_patch4_32_life", "deit_test_distilled_patch4_32_life"]


def test_contract_names_are_registered():
    registered = set(timm.list_models())
    assert not [n for n in CONTRACT if n not in registered]
    assert set(LIFE_MODELS) <= registered
    assert all(BASELINES[n] in registered for n in LIFE_MODELS)


def test_twin_lookup():
    assert life_twin("deit_test_patch4_32") == "deit_test_patch4_32_life"
    assert baseline_of("deit_test_patch4_32_life") == "deit_test_patch4_32"
    with pytest.raises(ConfigError, match="no LIFE twin"):
        life_twin("resnet18")


@pytest.mark.parametrize("name", TINY)
def test_timm_api_round_trip(name):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=7).eval()
    x = torch.randn(2, 3, 32, 32)
    feats = model.forward_features(x)
    P = model.num_prefix_tokens
    assert feats.shape == (2, P + 64, 48)
    logits = model.forward_head(feats)
    assert logits.shape == (2, 7)
    torch.testing.assert_close(model(x), logits)
    assert model.forward_head(feats, pre_logits=True).shape == (2, 48)
    # strict state_dict round trip into a fresh model gives the same function
    fresh = timm.create_model(name, num_classes=7).eval()
    fresh.load_state_dict(model.state_dict(), strict=True)
    torch.testing.assert_close(fresh(x), logits)
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)
    assert model.pretrained_cfg["architecture"] == name


def test_twin_differs_from_baseline_only_in_qkv():
    base = timm.create_model("deit_test_patch4_32", num_classes=5).state_dict()
    twin = timm.create_model("deit_test_patch4_32_life", num_classes=5).state_dict()
    strip = lambda keys: {k for k in keys if ".attn.qkv." not in k}  # noqa: E731
    assert strip(base) == strip(twin)
    assert {k.split(".attn.qkv.")[1] for k in twin if ".attn.qkv." in k} == {
        "proj.weight", "proj.bias", "dw.0.weight", "dw.1.weight", "pw.0.weight", "pw.1.weight"
    }


def test_life_kwargs_and_timm_kwargs_pass_through():
    model = timm.create_model(
        "deit_test_patch4_32_life", num_classes=2, img_size=48, in_chans=1, drop_path_rate=0.1,
        life_kwargs=dict(kernel_sizes=(3,), qkv_norm=True),
    )
    lifes = life_modules(model)
    assert all(m.kernel_sizes == (3,) and isinstance(m.norm, torch.nn.LayerNorm) for m in lifes)
    model(torch.randn(1, 1, 48, 48))
    assert lifes[0].grid_size == (12, 12)


def test_distilled_twin_trains_with_two_heads():
    model = timm.create_model("deit_test_distilled_patch4_32_life", num_classes=4)
    model.set_distilled_training(True)
    out, out_dist = model(torch.randn(2, 3, 32, 32))
    assert out.shape == out_dist.shape == (2, 4)
    assert all(m.num_prefix_tokens == 2 for m in life_modules(model))


@pytest.mark.parametrize("name", ["deit_test_patch4_32", "t2t_vit_12"])
def test_small_variants_have_no_weights(name):
    with pytest.raises(ConfigError, match="pretrained=False"):
        timm.create_model(name, pretrained=True)


def test_t2t_vit_12_is_a_timm_vit_with_t2t_tokens():
    model = timm.create_model("t2t_vit_12_life", num_classes=3, img_size=64).eval()
    assert model.patch_embed.grid_size == (4, 4)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    assert not model.pos_embed.requires_grad  # fixed sinusoid table, as in T2T-ViT
    dyn = timm.create_model("t2t_vit_12_life", num_classes=3, img_size=64, dynamic_img_size=True).eval()
    dyn(torch.randn(1, 3, 48, 80))
    assert life_modules(dyn)[0].grid_size == (3, 5)


@pytest.mark.parametrize(
    "name,size", [("deit_tiny_patch16_224_life", 224), ("deit_tiny_distilled_patch16_224_life", 224),
                  ("swinv2_tiny_window8_256_life", 128)],
)
def test_paper_size_twins_build_and_run(name, size):
    model = timm.create_model(name, num_classes=10, img_size=size).eval()
    assert isinstance(life_modules(model)[0], LIFE)
    with torch.no_grad():
        assert model(torch.randn(1, 3, size, size)).shape == (1, 10)


def test_t2t_position_table_is_a_fixed_buffer():
    from lifestudy.models.t2t_vit import sinusoid_pos_embed

    model = timm.create_model("t2t_vit_12_life", num_classes=3, img_size=64, depth=1)
    assert "pos_embed" in dict(model.named_buffers()) and "pos_embed" not in dict(model.named_parameters())
    assert "pos_embed" in model.state_dict()  # checkpoints keep the key they had
    torch.testing.assert_close(model.pos_embed, sinusoid_pos_embed(1 + 16, 256))


@pytest.mark.parametrize("name,size", [("deit_tiny_patch4_64_life", 64), ("deit_tiny_patch4_32_life", 32),
                                       ("t2t_vit_12_life", 224), ("swinv2_tiny_window8_256_life", 256)])
def test_cfg_input_size_is_what_the_model_takes(name, size):
    cfg = timm.models.get_pretrained_cfg(name)
    assert cfg.input_size == cfg.test_input_size == (3, size, size)
    model = timm.create_model(name, **({"depths": (1, 1, 1, 1)} if name.startswith("swin") else {"depth": 1}))
    assert model.patch_embed.img_size == (size, size)


def test_features_only_twin_keeps_life_and_the_baselines_features():
    feats = timm.create_model("deit_test_patch4_32_life", features_only=True, out_indices=(0, 1)).eval()
    base = timm.create_model("deit_test_patch4_32", features_only=True, out_indices=(0, 1)).eval()
    assert feats.feature_info.channels() == base.feature_info.channels() == [48, 48]
    assert len(life_modules(feats)) == 2
    outs = feats(torch.randn(1, 3, 32, 32))
    assert [o.shape for o in outs] == [(1, 48, 8, 8)] * 2
