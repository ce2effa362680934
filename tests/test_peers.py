"""The locality peers (SPT + LSA, LocalViT, CvT projection, ConViT) and their comparison with LIFE."""

import copy

import pytest
import timm
import torch

import lifestudy  # noqa: F401  (registers the models)
from lifestudy.complexity import count_params
from lifestudy.errors import ConfigError
from lifestudy.models.locality import NotApplicable
from lifestudy.peers import HOSTS, METHODS, _build_host, compatibility, compatibility_record, costs, local_dependence

PEERS = ["spt_lsa", "localvit", "convproj"]

# What the table says; each "no" is a refusal test_refusals_are_real shows is not ours.
EXPECTED = {
    "LIFE": [True, True, True, True, True],
    "SPT + LSA": [True, True, True, True, False],
    "LocalViT": [True, True, True, True, True],
    "CvT projection": [True, True, True, True, True],
    "ConViT (GPSA)": [False, False, False, False, False],
}


def test_compatibility_table_is_decided_by_running():
    table = compatibility()
    assert list(table) == list(EXPECTED) and all(list(row) == list(HOSTS) for row in table.values())
    for method, row in table.items():
        assert [c["applies"] for c in row.values()] == EXPECTED[method], method
        for host, cell in row.items():
            if cell["applies"]:
                assert cell["reason"] is None and cell["checks"], (method, host)
                if HOSTS[host].kind == "vit" and METHODS[method].local:
                    assert any("reads exactly" in c for c in cell["checks"]), (method, host)
            else:
                assert cell["reason"], (method, host)
    record = compatibility_record(table)
    assert record["kind"] == "compatibility" and record["metrics"]["LIFE/SwinV2 windows"] == 1.0
    with pytest.raises(ConfigError, match="unknown method or host"):
        compatibility(["nope"])


def test_refusals_are_real():
    """Each 'no' of the table: the unchanged method does fail there, and our adapter is not the cause."""
    from timm.models.convit import GPSA

    gpsa = GPSA(24, num_heads=3)
    with pytest.raises(RuntimeError):  # a class token: 17 tokens, positions for int(sqrt(17))^2 = 16
        gpsa(torch.randn(2, 17, 24))
    with pytest.raises(RuntimeError):  # a 6x10 grid: positions for int(sqrt(60))^2 = 49
        gpsa(torch.randn(2, 60, 24))
    # control: GPSA in a ViT without prefix tokens on a square grid applies, adapter and all
    from timm.models.vision_transformer import VisionTransformer
    from lifestudy.models.convit import GatedPositionalAttention
    from lifestudy.models.locality import attach_grid

    vit = VisionTransformer(img_size=16, patch_size=4, embed_dim=24, depth=1, num_heads=3, num_classes=5,
                            class_token=False, global_pool="avg", attn_layer=GatedPositionalAttention)
    attach_grid(vit)
    vit(torch.randn(2, 3, 16, 16)).sum().backward()
    assert vit.blocks[0].attn.gating_param.grad is not None
    # LSA in SwinV2's window attention, unchanged: SwinV2 calls it with a window mask it has no input for
    from timm.models.swin_transformer_v2 import SwinTransformerV2
    from lifestudy.models.spt_lsa import LocalitySelfAttention

    swin = SwinTransformerV2(img_size=16, patch_size=2, window_size=4, embed_dim=24, depths=(1,), num_heads=(3,),
                             num_classes=5)
    swin.layers[0].blocks[0].attn = LocalitySelfAttention(24, num_heads=3)
    with pytest.raises(TypeError):
        swin(torch.randn(2, 3, 16, 16))
    with pytest.raises(NotApplicable, match="LSA"):
        _build_host(METHODS["SPT + LSA"], HOSTS["SwinV2 windows"])


@pytest.mark.parametrize("method", ["LIFE", "LocalViT", "CvT projection"])
def test_locality_check_catches_a_wrong_grid(method):
    """The check that decides grid cells fails when a layer reads the grid wrongly (transposed)."""
    model = _build_host(METHODS[method], HOSTS["rectangular, changing grid"])
    x = torch.randn(2, 3, 24, 40)
    grid, good, _ = local_dependence(model, METHODS[method].local, x, (1, 2))
    assert grid == (6, 10) and (1, 2) in good and (0, 1) in good and (5, 9) not in good
    module = model.blocks[0].attn.qkv if METHODS[method].local == "qkv" else model.blocks[0].mlp
    captured = {}
    h = module.register_forward_pre_hook(lambda m, a: captured.setdefault("x", a[0].detach()))
    model.eval()
    with torch.no_grad():
        model(x)
    h.remove()
    xi = captured["x"].clone().requires_grad_(True)
    if hasattr(module, "grid_state"):  # the grid read wrongly: transposed (10 x 6)
        module.grid_state.size = (10, 6)
    else:
        module.grid_size = (10, 6)
    out = module(xi)
    (g,) = torch.autograd.grad(out[0, 1 * 10 + 2].sum(), xi)
    wrong = {divmod(t, 10) for t in torch.nonzero(g[0].abs().sum(-1)).flatten().tolist()}
    assert wrong != good


@pytest.mark.parametrize("peer", PEERS)
def test_registered_peers_are_deit_micro_variants(peer):
    base = timm.create_model("deit_micro_patch4_32", num_classes=10, in_chans=1)
    model = timm.create_model(f"deit_micro_patch4_32_{peer}", num_classes=10, in_chans=1)
    assert type(model) is type(base) and len(model.blocks) == 6 and model.embed_dim == 96
    assert model.blocks[0].attn.num_heads == 3 and model.patch_embed.patch_size == (4, 4)
    assert 1.0 < count_params(model) / count_params(base) < 1.1
    small = timm.create_model(f"deit_test_patch4_32_{peer}", num_classes=10, in_chans=1, dynamic_img_size=True)
    for size in [(32, 32), (24, 40)]:
        out = small(torch.randn(2, 1, *size))
        assert out.shape == (2, 10)
        out.sum().backward()
    with pytest.raises(ConfigError, match="no pretrained weights"):
        timm.create_model(f"deit_test_patch4_32_{peer}", pretrained=True)


def test_deepcopy_keeps_each_copy_on_its_own_grid():
    model = timm.create_model("deit_test_patch4_32_localvit", num_classes=3, dynamic_img_size=True)
    twin = copy.deepcopy(model)
    model(torch.randn(2, 3, 24, 40))
    twin(torch.randn(2, 3, 32, 32))
    assert model.blocks[1].mlp.grid_state.size == (6, 10) and twin.blocks[1].mlp.grid_state.size == (8, 8)
    assert twin.blocks[0].mlp.grid_state is twin.patch_embed.grid_state


def test_convit_at_the_study_size():
    model = timm.create_model("convit_micro_patch4_32", num_classes=10, in_chans=1)
    assert model.embed_dim == 96 and len(model.blocks) == 6 and model.local_up_to_layer == 5
    assert sum(b.use_gpsa for b in model.blocks) == 5
    model(torch.randn(2, 1, 32, 32)).sum().backward()


def test_spt_shifts_by_half_a_patch_along_the_diagonals():
    from lifestudy.models.spt_lsa import ShiftedPatchProjection

    spt = ShiftedPatchProjection(1, 8, (4, 4))
    x = torch.randn(1, 1, 8, 8)
    cat = spt.shifted(x)
    assert cat.shape == (1, 5, 8, 8) and torch.equal(cat[:, 0], x[:, 0])
    assert torch.equal(cat[:, 1, 2:, 2:], x[:, 0, :-2, :-2])  # content moved down-right
    assert torch.equal(cat[:, 4, :-2, :-2], x[:, 0, 2:, 2:])  # content moved up-left
    assert cat[:, 1, :2].abs().sum() == 0  # zero padding where nothing moved in


def test_lsa_masks_the_diagonal_and_learns_a_temperature():
    from lifestudy.models.spt_lsa import LocalitySelfAttention

    lsa = LocalitySelfAttention(12, num_heads=3, qkv_bias=True)
    x = torch.randn(2, 2, 12)
    out = lsa(x)
    v = lsa.qkv(x)[..., 24:]
    # two tokens, each may only attend to the other: token 0's output is the projection of v_1
    torch.testing.assert_close(out[:, 0], lsa.proj(v[:, 1]))
    lsa(torch.randn(2, 3, 12)).pow(2).sum().backward()  # three tokens: the temperature matters
    assert lsa.log_temperature.grad is not None and lsa.log_temperature.grad != 0


def test_costs_are_ratios_from_one_run():
    result = costs(["deit_test_patch4_32_localvit", "deit_test_patch4_32_life"], baseline="deit_test_patch4_32",
                   batch_size=4, repeats=1, in_chans=1)
    rows = result["rows"]
    assert list(rows) == ["deit_test_patch4_32", "deit_test_patch4_32_localvit", "deit_test_patch4_32_life"]
    assert all(v == 1.0 for v in rows["deit_test_patch4_32"]["ratios"].values())
    life = rows["deit_test_patch4_32_life"]
    assert life["ratios"]["params"] == pytest.approx(life["params"] / rows["deit_test_patch4_32"]["params"])
    assert life["macs"] > rows["deit_test_patch4_32"]["macs"] and life["activation_mb"] > 0
    assert life["train_img_s"] > 0 and life["infer_img_s"] > 0
    with pytest.raises(ConfigError):
        costs(["deit_test_patch4_32_life"], repeats=0)


def test_costs_build_the_models_at_the_input_they_time():
    """The cpu book trains at 16x16: the models timed must take that input (timm's patch
    embedding refuses any other than the one it was built for)."""
    small = costs(["deit_test_patch4_32_convproj"], baseline="deit_test_patch4_32", img_size=(16, 16),
                  batch_size=2, repeats=1, in_chans=1)["rows"]
    large = costs(["deit_test_patch4_32_convproj"], baseline="deit_test_patch4_32", img_size=(32, 32),
                  batch_size=2, repeats=1, in_chans=1)["rows"]
    assert small["deit_test_patch4_32"]["macs"] < large["deit_test_patch4_32"]["macs"]  # 16 tokens, not 64
