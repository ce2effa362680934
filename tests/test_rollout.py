"""Attention roll-out and Dense Attention Roll-Out: the definitions on constructed attention,
an independent numpy reference, capture from real (tiny) models, localisation scores, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

import lifestudy  # noqa: F401  (registers the tiny test models)
from lifestudy.errors import ConfigError, UnsupportedModelError
from lifestudy.rollout import (
    attention_maps,
    attention_rollout,
    capture_attention,
    class_maps,
    dense_attention_rollout,
    discard_lowest,
    last_layer_attention,
    predicted_token_weights,
    rollout,
)
from lifestudy.rollout.localisation import localisation_scores, localisation_table, score_map

torch.set_num_threads(1)


def make(name: str, **kwargs):
    torch.manual_seed(0)
    return timm.create_model(name, num_classes=5, **kwargs).eval()


# --- the definitions, on constructed attention --------------------------------------------


def numpy_rollout(attentions, head_fusion="mean", discard_ratio=0.0):
    """Independent reference: per image, loops and numpy only."""
    fuse = {"mean": np.mean, "max": np.max, "min": np.min}[head_fusion]
    out = []
    for b in range(attentions[0].shape[0]):
        R = None
        for attn in attentions:
            A = fuse(attn[b].numpy().astype(np.float64), axis=0)
            N = A.shape[0]
            k = int(discard_ratio * N * (N - 1))
            if k:
                off = [(i, j) for i in range(N) for j in range(N) if i != j]
                order = sorted(off, key=lambda ij: A[ij])
                for ij in order[:k]:
                    A[ij] = 0.0
            A = A + np.eye(N)
            A = A / A.sum(axis=1)[:, None]
            R = A if R is None else A @ R
        out.append(R)
    return np.stack(out)


def random_attention(B=3, heads=2, N=7, layers=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, heads, N, N, generator=g).mul(2).softmax(-1) for _ in range(layers)]


def test_two_layer_example_by_hand():
    A1 = torch.tensor([[0.5, 0.5], [0.2, 0.8]])
    A2 = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    # (A1 + I) / rowsum = [[.75, .25], [.1, .9]];  (A2 + I) / 2 = all 0.5;  R = Â2 Â1
    R = rollout([A1[None, None], A2[None, None]])
    assert torch.allclose(R[0], torch.tensor([[0.425, 0.575], [0.425, 0.575]]))


@pytest.mark.parametrize("head_fusion", ["mean", "max", "min"])
@pytest.mark.parametrize("discard_ratio", [0.0, 0.3, 0.9])
def test_rollout_matches_numpy_reference(head_fusion, discard_ratio):
    attns = random_attention()
    R = rollout(attns, head_fusion, discard_ratio)
    np.testing.assert_allclose(R.double().numpy(), numpy_rollout(attns, head_fusion, discard_ratio), atol=1e-5)
    assert torch.allclose(R.sum(-1), torch.ones(R.shape[:2]), atol=1e-5)  # rows stay stochastic


def test_discard_keeps_the_diagonal():
    A = torch.full((1, 4, 4), 0.01)
    A[0].fill_diagonal_(0.0)  # the diagonal is the lowest, and still kept
    out = discard_lowest(A, 0.99)
    assert torch.equal(out.diagonal(dim1=1, dim2=2), A.diagonal(dim1=1, dim2=2))
    assert out.sum() == 0.01 * (12 - int(0.99 * 12))


def test_uniform_attention_gives_a_uniform_map():
    N, P, (gh, gw) = 1 + 12, 1, (3, 4)
    uniform = [torch.full((2, 3, N, N), 1.0 / N)] * 4
    R = rollout(uniform)
    row = R[:, 0, P:]
    assert torch.allclose(row, row[:, :1].expand_as(row))
    # the dense map too, with uniform weights (each token's own row keeps its residual peak)
    maps = class_maps(R, torch.ones(2, gh * gw, 3), P, (gh, gw))
    assert torch.allclose(maps, torch.full_like(maps, maps[0, 0, 0, 0].item()))


def test_identity_attention_gives_the_token_itself():
    N, P, (gh, gw) = 2 + 6, 2, (2, 3)
    R = rollout([torch.eye(N).expand(1, 2, N, N)] * 3)
    assert torch.allclose(R[0], torch.eye(N))
    w = torch.zeros(1, gh * gw, gh * gw)
    w[0, torch.arange(gh * gw), torch.arange(gh * gw)] = 1.0  # class k = token k
    maps = class_maps(R, w, P, (gh, gw))
    assert torch.allclose(maps.flatten(2)[0], torch.eye(gh * gw))


def test_one_hot_weights_give_that_tokens_rollout_row():
    P, (gh, gw) = 1, (2, 3)
    R = rollout(random_attention(B=2, N=P + gh * gw))
    w = torch.zeros(2, gh * gw, 3)
    w[:, 4, 0] = 1.0
    w[:, 1, 2] = 7.0  # any positive weight on a single token
    maps = class_maps(R, w, P, (gh, gw))
    assert torch.allclose(maps[:, 0].flatten(1), R[:, P + 4, P:])
    assert torch.allclose(maps[:, 2].flatten(1), R[:, P + 1, P:])
    assert torch.equal(maps[:, 1], torch.zeros(2, gh, gw))  # no weight, no map


def test_dense_map_is_the_weighted_mean_of_rows():
    P, (gh, gw) = 1, (2, 2)
    R = rollout(random_attention(B=1, N=P + 4))
    w = torch.tensor([[[1.0], [3.0], [0.0], [0.0]]])
    expected = (1 * R[0, P + 0, P:] + 3 * R[0, P + 1, P:]) / 4
    assert torch.allclose(class_maps(R, w, P, (gh, gw))[0, 0].flatten(), expected)


@pytest.mark.parametrize("bad", [torch.rand(1, 3, 2), -torch.rand(1, 4, 2)])
def test_bad_token_weights_are_explained(bad):
    R = rollout(random_attention(B=1, N=5))
    with pytest.raises(ConfigError, match="token_weights"):
        class_maps(R, bad, 1, (2, 2))


def test_bad_options_are_explained():
    with pytest.raises(ConfigError, match="head_fusion"):
        rollout(random_attention(), head_fusion="sum")
    with pytest.raises(ConfigError, match="discard_ratio"):
        rollout(random_attention(), discard_ratio=1.0)


# --- capture and maps from real tiny models ------------------------------------------------

VITS = {
    "deit": ("deit_test_patch4_32", {}),
    "deit-life": ("deit_test_patch4_32_life", {}),
    "distilled": ("deit_test_distilled_patch4_32", {}),
    "distilled-life": ("deit_test_distilled_patch4_32_life", {}),
    "registers": ("deit_test_patch4_32", {"reg_tokens": 2}),
    "no-class-token": ("deit_test_patch4_32_life", {"class_token": False, "global_pool": "avg"}),
}


@pytest.fixture(params=list(VITS), scope="module")
def vit(request):
    name, kwargs = VITS[request.param]
    return make(name, **kwargs)


def test_capture_reads_the_softmax_of_every_block(vit):
    x = torch.randn(3, 3, 32, 32)
    vit.blocks[0].attn.fused_attn = True
    maps = attention_maps(vit, x)
    N = vit.num_prefix_tokens + 64
    assert len(maps) == len(vit.blocks)
    assert all(m.shape == (3, vit.blocks[0].attn.num_heads, N, N) for m in maps)
    assert all(torch.allclose(m.sum(-1), torch.ones(3, m.shape[1], N), atol=1e-5) for m in maps)
    assert not any(m.requires_grad for m in maps)


def test_captured_maps_are_the_blocks_softmax_and_leave_the_output_unchanged(vit):
    """Parity: block 0's captured map equals softmax(q k^T * scale) recomputed from its input."""
    x = torch.randn(2, 3, 32, 32)
    attn = vit.blocks[0].attn
    seen = []
    handle = attn.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    try:
        with torch.no_grad():
            expected_out = vit(x)
            maps = attention_maps(vit, x)
            B, N, C = seen[-1].shape
            qkv = attn.qkv(seen[-1]).reshape(B, N, 3, attn.num_heads, C // attn.num_heads).permute(2, 0, 3, 1, 4)
            q, k = attn.q_norm(qkv[0]), attn.k_norm(qkv[1])
            reference = (q * attn.scale @ k.transpose(-2, -1)).softmax(-1)
            out_while_capturing = None
            with capture_attention(vit):
                out_while_capturing = vit(x)
    finally:
        handle.remove()
    assert torch.allclose(maps[0], reference, atol=1e-6)
    assert torch.allclose(out_while_capturing, expected_out, atol=1e-5)


def test_fused_attention_and_train_mode_restored(vit):
    attn = [b.attn for b in vit.blocks]
    for i, a in enumerate(attn):
        a.fused_attn = i % 2 == 0
    vit.train()
    attention_maps(vit, torch.randn(1, 3, 32, 32))
    assert [a.fused_attn for a in attn] == [i % 2 == 0 for i in range(len(attn))]
    assert vit.training and all(m.training for m in vit.modules())
    with pytest.raises(RuntimeError):  # a forward that fails inside the model
        with capture_attention(vit):
            vit(torch.randn(1, 2, 32, 32))
    assert [a.fused_attn for a in attn] == [i % 2 == 0 for i in range(len(attn))]
    assert all(not a.attn_drop._forward_hooks for a in attn)
    vit.eval()


def test_batch_equals_per_image(vit):
    x = torch.randn(3, 3, 32, 32)
    w = torch.rand(3, 64, 4)
    dense = dense_attention_rollout(vit, x, w)
    assert dense.shape == (3, 4, 8, 8)
    for b in range(3):
        assert torch.allclose(dense[b:b + 1], dense_attention_rollout(vit, x[b:b + 1], w[b:b + 1]), atol=1e-5)
    if vit.has_class_token:
        std = attention_rollout(vit, x)
        assert std.shape == (3, 8, 8)
        for b in range(3):
            assert torch.allclose(std[b:b + 1], attention_rollout(vit, x[b:b + 1]), atol=1e-5)


def test_prefix_tokens_are_not_patches(vit):
    """The class map of a one-hot token equals that token's row of R over patch tokens only."""
    x = torch.randn(2, 3, 32, 32)
    P = vit.num_prefix_tokens
    R = rollout(attention_maps(vit, x))
    w = torch.zeros(2, 64, 1)
    w[:, 10, 0] = 1.0
    assert torch.allclose(dense_attention_rollout(vit, x, w)[:, 0].flatten(1), R[:, P + 10, P:], atol=1e-6)
    if vit.has_class_token:
        assert torch.allclose(attention_rollout(vit, x).flatten(1), R[:, 0, P:], atol=1e-6)


def test_distillation_token_row():
    model = make("deit_test_distilled_patch4_32_life")
    x = torch.randn(2, 3, 32, 32)
    R = rollout(attention_maps(model, x))
    assert torch.allclose(attention_rollout(model, x, token=1).flatten(1), R[:, 1, 2:], atol=1e-6)
    with pytest.raises(ConfigError, match="prefix token"):
        attention_rollout(model, x, token=2)


def test_no_class_token_points_to_dense_rollout():
    model = make("deit_test_patch4_32", class_token=False, global_pool="avg")
    with pytest.raises(UnsupportedModelError, match="dense_attention_rollout"):
        attention_rollout(model, torch.randn(1, 3, 32, 32))


def test_grid_comes_from_patch_embed_for_rectangular_images():
    model = make("deit_test_patch4_32_life", dynamic_img_size=True)
    x = torch.randn(2, 3, 32, 48)
    assert attention_rollout(model, x).shape == (2, 8, 12)
    assert dense_attention_rollout(model, x, torch.rand(2, 96, 3)).shape == (2, 3, 8, 12)


def test_classifier_needs_explicit_weights():
    with pytest.raises(ConfigError, match="token_weights"):
        dense_attention_rollout(make("deit_test_patch4_32"), torch.randn(1, 3, 32, 32))


def test_models_without_vit_attention_are_explained():
    with pytest.raises(UnsupportedModelError, match="ViT"):
        attention_rollout(torch.nn.Linear(3, 3), torch.randn(1, 3, 32, 32))
    with pytest.raises(UnsupportedModelError, match="SwinV2"):
        attention_maps(tiny_swin(), torch.randn(1, 3, 32, 32))


# --- SwinV2: windows, shifts and merging written as full matrices -----------------------------


def tiny_swin(life=False):
    torch.manual_seed(0)
    # 8x8 grid, 4x4 windows: block 2 is shifted by 2; one merge to 4x4 (a single window)
    model = timm.models.swin_transformer_v2.SwinTransformerV2(
        img_size=32, patch_size=4, window_size=4, embed_dim=24, depths=(2, 2), num_heads=(1, 2), num_classes=3)
    return (lifestudy.apply_life(model) if life else model).eval()


def numpy_swin_rollout(model, x):
    """Independent reference: capture each block's window attention, place every window at
    its cells (shift undone with the explicit formula), merge 2x2 with a quarter each, and
    multiply the full matrices; the map is the mean of R's rows."""
    caps, layouts = [], []
    blocks = [m for m in model.modules() if hasattr(m, "shift_size")]
    hooks = [b.register_forward_pre_hook(lambda m, a: layouts.append((*a[0].shape[1:3], m.window_size, m.shift_size)))
             for b in blocks]
    hooks += [b.attn.attn_drop.register_forward_hook(lambda m, i, o: caps.append(i[0].mean(1).numpy().astype(np.float64)))
              for b in blocks]
    with torch.no_grad():
        model.forward_features(x)
    for h in hooks:
        h.remove()
    B = x.shape[0]
    maps = []
    for b in range(B):
        R, prev = None, None
        for A_w, (H, W, (wh, ww), (sh, sw)) in zip(caps, layouts):
            if prev is not None and prev != (H, W):  # a 2x2 merge from the previous grid
                Hf, Wf = prev
                M = np.zeros((H * W, Hf * Wf))
                for i in range(H):
                    for j in range(W):
                        for di in range(2):
                            for dj in range(2):
                                M[i * W + j, (2 * i + di) * Wf + 2 * j + dj] = 0.25
                R = M @ R
            nh, nw = H // wh, W // ww
            A_w = A_w.reshape(B, nh * nw, wh * ww, wh * ww)[b]
            full = np.zeros((H * W, H * W))
            cells = [[((a * wh + p + sh) % H) * W + (c * ww + q + sw) % W for p in range(wh) for q in range(ww)]
                     for a in range(nh) for c in range(nw)]
            for w, cell in enumerate(cells):
                full[np.ix_(cell, cell)] = A_w[w]
            full = full + np.eye(H * W)
            full = full / full.sum(1, keepdims=True)
            R = full if R is None else full @ R
            prev = (H, W)
        maps.append(R.mean(0).reshape(layouts[0][0], layouts[0][1]))
    return np.stack(maps)


@pytest.mark.parametrize("life", [False, True], ids=["swinv2", "swinv2-life"])
def test_swin_rollout_matches_full_matrices(life):
    model = tiny_swin(life)
    x = torch.randn(2, 3, 32, 32)
    got = attention_rollout(model, x)
    assert got.shape == (2, 8, 8)
    np.testing.assert_allclose(got.double().numpy(), numpy_swin_rollout(model, x), atol=1e-5)
    assert torch.allclose(got.sum((1, 2)), torch.ones(2), atol=1e-5)
    assert torch.allclose(got[1:], attention_rollout(model, x[1:]), atol=1e-6)


def test_swin_dense_rollout_weights_over_last_stage_tokens():
    model = tiny_swin()
    x = torch.randn(2, 3, 32, 32)
    uniform = dense_attention_rollout(model, x, torch.ones(2, 16, 1))
    assert torch.allclose(uniform[:, 0], attention_rollout(model, x), atol=1e-6)
    one_hot = torch.zeros(2, 16, 2)
    one_hot[:, 5, 0] = one_hot[:, 6, 1] = 1.0
    maps = dense_attention_rollout(model, x, one_hot)
    assert maps.shape == (2, 2, 8, 8) and not torch.allclose(maps[:, 0], maps[:, 1])
    with pytest.raises(ConfigError, match="token_weights"):
        dense_attention_rollout(model, x)
    with pytest.raises(ConfigError, match="discard_ratio"):
        attention_rollout(model, x, discard_ratio=0.5)


@pytest.fixture(scope="module")
def segmenter():
    from lifestudy.dense import build_segmenter

    torch.manual_seed(0)
    return build_segmenter("deit_test_patch4_32_life", num_classes=4, img_size=32, dim=16).eval()


def test_segmenter_default_weights_are_its_own_predictions(segmenter):
    x = torch.randn(2, 3, 32, 32)
    logits = segmenter(x)
    w = predicted_token_weights(logits, (8, 8))
    assert w.shape == (2, 64, 4)
    assert torch.allclose(w.sum(-1), torch.ones(2, 64), atol=1e-5)
    assert torch.allclose(dense_attention_rollout(segmenter, x), dense_attention_rollout(segmenter, x, w), atol=1e-6)
    last = last_layer_attention(segmenter, x)
    assert last.shape == (2, 4, 8, 8) and not torch.allclose(last, dense_attention_rollout(segmenter, x))


# --- localisation scores and figures --------------------------------------------------------


def test_score_map_perfect_and_opposite():
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[2:5, 3:6] = True
    assert score_map(mask.float(), mask) == {"pointing_game": 1.0, "iou_area": 1.0, "iou_half_max": 1.0}
    assert score_map((~mask).float(), mask) == {"pointing_game": 0.0, "iou_area": 0.0, "iou_half_max": 0.0}
    ramp = torch.arange(64.0).view(8, 8)  # top-9 pixels: the last 9 in raster order
    s = score_map(ramp, mask)
    assert s["pointing_game"] == 0.0 and s["iou_area"] == 0.0


def tiny_scenes(n=3):
    g = torch.Generator().manual_seed(0)
    items = []
    for i in range(n):
        image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=g)
        semantic = torch.zeros(32, 32, dtype=torch.long)
        semantic[4:12, 4:14] = 1 + i % 3
        semantic[20:28, 18:30] = 1 + (i + 1) % 3
        semantic[0, :] = 255  # ignored pixels
        items.append((image, {"semantic": semantic}))
    return items


def test_localisation_scores_on_known_masks(segmenter):
    data = tiny_scenes()
    scores = localisation_scores(segmenter, data, n=3, batch_size=2, mean=(0.5,) * 3, std=(0.25,) * 3)
    assert scores["n_images"] == 3 and scores["n_pairs"] == 6
    assert set(scores["methods"]) == {"dense-rollout", "last-layer", "cls-rollout", "prediction"}
    for metrics in scores["methods"].values():
        assert set(metrics) == {"pointing_game", "iou_area", "iou_half_max"}
        assert all(0.0 <= v["mean"] <= 1.0 for v in metrics.values())
    q = np.array([80, 96] * 3) / (32 * 32 - 32)
    assert scores["chance"]["pointing_game"]["mean"] == pytest.approx(q.mean())
    table = localisation_table({"DeiT-T-LIFE": scores})
    assert set(table["method"]) == {"dense-rollout", "last-layer", "cls-rollout", "prediction", "chance"}
    with pytest.raises(ConfigError, match="mean and std"):
        localisation_scores(segmenter, data, n=1)


def test_localisation_without_class_token_leaves_cls_rollout_out():
    from lifestudy.dense import build_segmenter

    seg = build_segmenter("deit_test_patch4_32", num_classes=4, img_size=32, dim=16,
                          class_token=False, global_pool="avg").eval()
    scores = localisation_scores(seg, tiny_scenes(2), mean=(0.5,) * 3, std=(0.25,) * 3)
    assert "cls-rollout" not in scores["methods"] and scores["unavailable"] == ["cls-rollout"]


def test_figure_has_image_truth_and_one_panel_per_class(segmenter, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from lifestudy.rollout.figures import plot_class_maps

    image, target = tiny_scenes(1)[0]
    x = (image.float()[None] / 255 - 0.5) / 0.25
    maps = {"dense roll-out": dense_attention_rollout(segmenter, x)[0],
            "last layer": last_layer_attention(segmenter, x)[0]}
    fig = plot_class_maps(image, maps, target["semantic"], class_names=["bg", "a", "b", "c"])
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == (1 + 1 + 2) + 2  # image, truth and two present classes; then two maps
    assert len(fig.axes) == 2 * 4 + (1 + 2) + 2  # the grid, and a colour bar per truth and map panel
    fig.savefig(tmp_path / "maps.png")
    assert (tmp_path / "maps.png").stat().st_size > 0


# --- the CLI on real (tiny) runs ---------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from lifestudy.engine import TrainConfig, train

    root = tmp_path_factory.mktemp("runs")
    scenes = {"train_length": 8, "test_length": 4, "data_options": {"item_size": (8, 20), "source": "digits"}}
    train(TrainConfig(task="segmentation", data="scenes-seg", model="deit_test_patch4_32_life", profile="smoke",
                      epochs=1, img_size=(48, 48), quiet=True, options=scenes, out=str(root / "seg")))
    train(TrainConfig(task="classification", data="digits", model="deit_test_patch4_32", profile="smoke",
                      epochs=1, subset=2, batch_size=20, quiet=True, out=str(root / "cls")))
    return root


def cli(*argv):
    from lifestudy.cli import main

    return main([str(a) for a in argv])


@pytest.mark.slow
def test_cli_draws_class_maps_of_a_segmentation_run(runs, tmp_path):
    from lifestudy.records import read_json

    out = tmp_path / "maps.png"
    assert cli("rollout", "--checkpoint", runs / "seg", "--data", "scenes", "--index", 1,
               "--method", "all", "--out", out) == 0
    rec = read_json(tmp_path / "maps.json")
    assert out.stat().st_size > 0 and rec["kind"] == "rollout" and rec["index"] == 1
    assert rec["methods"] == ["dense-rollout", "last-layer", "cls-rollout", "prediction"]
    assert rec["metrics"]["dense-rollout"]  # scored against the scene's masks
    assert rec["provenance"]["model"] == "deit_test_patch4_32_life"


@pytest.mark.slow
def test_cli_scores_a_segmentation_run(runs, tmp_path, capsys):
    from lifestudy.records import read_json

    out = tmp_path / "scores.json"
    assert cli("rollout", "--checkpoint", runs / "seg", "--data", "scenes-seg", "--score", 4, "--out", out) == 0
    rec = read_json(out)
    assert rec["kind"] == "localisation" and rec["n_images"] == 4
    assert set(rec["metrics"]) == {"dense-rollout", "last-layer", "cls-rollout", "prediction"}
    table = localisation_table({"seg": rec})
    assert len(table) == 5 and table["pointing_game"].between(0, 1).all()
    assert "chance" in capsys.readouterr().out


@pytest.mark.slow
def test_cli_draws_the_class_token_rollout_of_an_image_file(runs, tmp_path):
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30), dtype=np.uint8)).save(tmp_path / "x.png")
    assert cli("rollout", "--checkpoint", runs / "cls", "--image", tmp_path / "x.png", "--out", tmp_path / "x_maps.png") == 0
    assert (tmp_path / "x_maps.png").stat().st_size > 0 and (tmp_path / "x_maps.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("run, argv, message", [
    ("cls", ["--data", "digits", "--method", "dense-rollout"], "per-token predictions"),
    ("cls", ["--data", "digits", "--score", "4", "--out-json"], "segmentation run"),
    ("seg", ["--data", "digits"], "trained on 'scenes-seg'"),
    ("seg", ["--data", "scenes", "--index", "99"], "outside the test split"),
    ("seg", ["--image", "missing.png"], "no image file"),
    ("nothing", ["--data", "scenes"], "no checkpoint"),
])
def test_cli_explains_bad_input(runs, tmp_path, capsys, run, argv, message):
    out = tmp_path / "x.png"
    if "--out-json" in argv:
        argv, out = [a for a in argv if a != "--out-json"], tmp_path / "x.json"
    assert cli("rollout", "--checkpoint", runs / run, *argv, "--out", out) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()
