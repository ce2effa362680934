"""The LIFE module: shapes, the locality contract, prefix tokens, grids, gradients, conversion."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Attention
from torch import nn

import lifestudy
from lifestudy.errors import ConfigError, LifestudyError, UnsupportedModelError
from lifestudy.life import LIFE, DepthwiseConv2d, LIFEAttention, apply_life, life_modules, set_grid_size, split_channels


def reference_life(m: LIFE, x: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    """An independent, slow reading of the paper: per token, per scale, per part.

    NCHW convs as the official code does them, prefix tokens through the pointwise path,
    and every token's Q, K, V = [scale 1 | scale 2 | scale 3] parts (paper, not the official
    code's aux-token K).
    """
    B, N, C = x.shape
    P = m.num_prefix_tokens
    y = m.proj(x)
    pre, pat = [y[:, :P]], [y[:, P:]]
    for dw, pw in zip(m.dw, m.pw):
        img = pat[-1].transpose(1, 2).reshape(B, -1, gh, gw)
        img = F.conv2d(img, dw.weight, padding=dw.padding, groups=img.shape[1])
        img = F.conv2d(img, pw.weight[:, :, None, None])
        pat.append(img.flatten(2).transpose(1, 2))
        pre.append(pw(pre[-1]))
    scales = [torch.cat([a, p], dim=1) for a, p in zip(pre, pat)]
    parts = []
    for part in range(3):  # q, k, v
        for s, out in zip(m.scale_dims, scales):
            parts.append(out[..., part * s:(part + 1) * s])
    return torch.cat(parts, dim=-1)


def _life(dim=24, P=1, grid=(4, 5), **kw) -> LIFE:
    torch.manual_seed(0)
    m = LIFE(dim, num_prefix_tokens=P, **kw).double()
    set_grid_size(m, grid)
    return m


@pytest.mark.parametrize(
    "dim,P,grid", [(24, 1, (4, 4)), (48, 0, (3, 5)), (100, 2, (1, 6)), (7, 5, (4, 4)), (30, 1, (5, 2))]
)
def test_shape_and_parity_with_reference(dim, P, grid):
    m = _life(dim, P, grid)
    x = torch.randn(2, P + grid[0] * grid[1], dim, dtype=torch.float64)
    out = m(x)
    assert out.shape == (2, x.shape[1], 3 * dim)
    torch.testing.assert_close(out, reference_life(m, x, *grid))
    # grid passed per call wins over the recorded one
    torch.testing.assert_close(m(x, grid_size=grid), out)


def test_split_of_channels_not_divisible_by_three():
    assert split_channels(192) == (64, 64, 64)
    assert split_channels(100) == (34, 33, 33)
    assert split_channels(7) == (3, 2, 2)
    m = LIFE(100)
    assert m.scale_dims == (34, 33, 33)
    assert m.proj.out_features == 3 * 34 and m.pw[-1].out_features == 3 * 33
    with pytest.raises(ConfigError, match="at least 3 channels"):
        LIFE(2)


def _changed_tokens(m: LIFE, x: torch.Tensor, token: int, scale: int) -> set[int]:
    """Tokens whose q, k or v channels of ``scale`` change when ``token`` is perturbed."""
    x2 = x.clone()
    x2[:, token] += torch.randn_like(x2[:, token])
    delta = (m(x2) - m(x)).abs().view(*x.shape[:2], 3, -1)
    lo = sum(m.scale_dims[:scale])
    moved = delta[..., lo:lo + m.scale_dims[scale]].amax(dim=(0, 2, 3)) > 1e-12
    return set(torch.nonzero(moved).flatten().tolist())


@pytest.mark.parametrize(
    "grid,cell,P", [((6, 6), (2, 3), 1), ((5, 9), (0, 8), 0), ((9, 4), (4, 1), 3), ((3, 11), (1, 5), 2)]
)
def test_locality_per_scale(grid, cell, P):
    """Perturb one patch: scale 1 moves only it, scale 2 its 3x3 neighbourhood, scale 3 its
    7x7 neighbourhood (cascaded 3 then 5); prefix tokens never move."""
    gh, gw = grid
    m = _life(12, P, grid)
    x = torch.randn(2, P + gh * gw, 12, dtype=torch.float64)
    i, j = cell
    token = P + i * gw + j
    for scale, radius in enumerate([0, 1, 3]):
        expected = {
            P + a * gw + b
            for a in range(max(0, i - radius), min(gh, i + radius + 1))
            for b in range(max(0, j - radius), min(gw, j + radius + 1))
        }
        assert _changed_tokens(m, x, token, scale) == expected, f"scale {scale + 1}"


def test_locality_follows_kernel_sizes():
    m = _life(16, 1, (9, 9), kernel_sizes=(3, 3, 3))
    assert len(m.scale_dims) == 4
    x = torch.randn(1, 82, 16, dtype=torch.float64)
    token = 1 + 4 * 9 + 4  # centre
    for scale, radius in enumerate([0, 1, 2, 3]):
        assert len(_changed_tokens(m, x, token, scale)) == (2 * radius + 1) ** 2


@pytest.mark.parametrize("P", [1, 4])
def test_prefix_tokens_take_the_pointwise_path_only(P):
    m = _life(24, P, (3, 4))
    x = torch.randn(2, P + 12, 24, dtype=torch.float64)
    # a prefix token moves only itself
    for t in range(P):
        for scale in range(3):
            assert _changed_tokens(m, x, t, scale) == {t}
    # and its q|k|v is LIFE's pointwise cascade of that token alone
    out = m(x)[:, :P].reshape(2, P, 3, 24)
    a = m.proj(x[:, :P])
    expected = [a.view(2, P, 3, -1)]
    for pw in m.pw:
        a = pw(a)
        expected.append(a.view(2, P, 3, -1))
    torch.testing.assert_close(out, torch.cat(expected, dim=-1))


def test_official_code_aux_key_discrepancy_is_not_reproduced():
    """The class token's K takes k_1, k_2, k_3 (the official code repeats k_1 three times)."""
    m = _life(24, 1, (2, 2))
    x = torch.randn(1, 5, 24, dtype=torch.float64)
    k = m(x)[0, 0, 24:48]
    k1 = m.proj(x[:, :1])[0, 0, 8:16]
    assert not torch.allclose(k[8:16], k1), "K's second third must come from scale 2"


def test_gradients_reach_every_parameter_and_the_input():
    m = _life(24, 2, (3, 3), qkv_norm=True)
    x = torch.randn(2, 11, 24, dtype=torch.float64, requires_grad=True)
    m(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_gradcheck():
    m = _life(6, 1, (2, 3))
    x = torch.randn(1, 7, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: m(t), (x,))


@pytest.fixture(params=["conv", "grid"])
def life_path(request, monkeypatch):
    """Each of LIFE's two training paths: depthwise convs (``_LIFEFunction``) or, as on small
    grids, one matrix per channel over the tokens (``_LIFEGridFunction``), on every grid."""
    monkeypatch.setattr(lifestudy.life, "GRID_MATRIX_MAX_CELLS", 0 if request.param == "conv" else 10**6)
    return "_LIFEFunctionBackward" if request.param == "conv" else "_LIFEGridFunctionBackward"


@pytest.mark.parametrize(
    "dim,P,grid,kw",
    [(24, 1, (4, 4), {}), (48, 0, (3, 5), {}), (100, 2, (1, 6), {}), (7, 5, (4, 4), {"bias": False}),
     (16, 1, (6, 5), {"kernel_sizes": (3, 3, 7)}), (12, 0, (5, 5), {"kernel_sizes": (5,), "qkv_norm": True}),
     (18, 1, (3, 3), {"kernel_sizes": ()}), (9, 0, (2, 7), {"kernel_sizes": (3,)})],
)
def test_fused_path_matches_the_reference_path(dim, P, grid, kw, life_path):
    """LIFE.forward (one autograd function, hand-written backward) computes the outputs and
    the gradients of LIFE.forward_reference (the modules' own forward passes and autograd)."""
    m = _life(dim, P, grid, **kw)
    x = torch.randn(3, P + grid[0] * grid[1], dim, dtype=torch.float64, requires_grad=True)
    out, ref = m(x), m.forward_reference(x)
    assert type(m._qkv(x, *grid).grad_fn).__name__ == life_path
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(out)
    inputs = [x, *m.parameters()]
    for got, want in zip(torch.autograd.grad(out, inputs, g), torch.autograd.grad(ref, inputs, g)):
        torch.testing.assert_close(got, want)
    with torch.no_grad():  # the inference path: the same ops, no autograd function
        torch.testing.assert_close(m(x), ref)
    # only some inputs needing a gradient: the rest are still right
    m.proj.weight.requires_grad_(False)
    (gx,) = torch.autograd.grad(m(x), x, g)
    torch.testing.assert_close(gx, torch.autograd.grad(m.forward_reference(x), x, g)[0])


def test_inference_on_a_small_grid_takes_the_grid_path_up_to_its_batch_limit(monkeypatch):
    """Without a gradient, a 4x4 grid runs _life_forward_grid while the batch has at most
    GRID_MATRIX_MAX_INFERENCE_TOKENS tokens and the conv path beyond; both give the reference."""
    m = _life(24, 1, (4, 4))
    x = torch.randn(4, 17, 24, dtype=torch.float64)
    taken = []
    for name in ("_life_forward_grid", "_life_forward"):
        fn = getattr(lifestudy.life, name)
        monkeypatch.setattr(lifestudy.life, name, lambda *a, _fn=fn, _name=name: taken.append(_name) or _fn(*a))
    with torch.no_grad():
        ref = m.forward_reference(x)
        for limit, path in ((4 * 17, "_life_forward_grid"), (4 * 17 - 1, "_life_forward")):
            monkeypatch.setattr(lifestudy.life, "GRID_MATRIX_MAX_INFERENCE_TOKENS", limit)
            taken.clear()
            torch.testing.assert_close(m(x), ref)
            assert taken == [path]


@pytest.mark.parametrize("P,grid,kw", [(1, (2, 2), {}), (0, (2, 3), {"bias": False})])
def test_fused_backward_gradcheck(P, grid, kw, life_path):
    """The hand-written backward pass, against finite differences in double precision, for the
    input and every parameter (one channel per scale part keeps the Jacobian small)."""
    m = _life(3, P, grid, **kw)
    names = [n for n, _ in m.named_parameters()]
    x = torch.randn(1, P + grid[0] * grid[1], 3, dtype=torch.float64, requires_grad=True)

    def f(x, *params):
        return torch.func.functional_call(m, dict(zip(names, params)), (x,))

    assert torch.autograd.gradcheck(f, (x, *m.parameters()))


def _attention(dim=24, heads=3, P=1, grid=(4, 4), qkv_bias=True, **life_kw):
    """timm's Attention with LIFE as its qkv, as apply_life makes it (a LIFEAttention), in double."""
    torch.manual_seed(0)
    attn = Attention(dim, num_heads=heads, qkv_bias=qkv_bias)
    attn.qkv = LIFE(dim, num_prefix_tokens=P, bias=qkv_bias, **life_kw)
    set_grid_size(attn.qkv, grid)
    attn.__class__ = LIFEAttention
    return attn.double()


def _graph_names(t: torch.Tensor) -> set[str]:
    """The names of every node of the autograd graph behind ``t``."""
    seen, todo = set(), [t.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is not None and fn not in seen:
            seen.add(fn)
            todo += [f for f, _ in fn.next_functions]
    return {type(fn).__name__ for fn in seen}


@pytest.mark.parametrize("P,grid,bias,kw", [(1, (4, 4), True, {}), (0, (2, 3), False, {}), (2, (3, 4), True, {}),
                                             (1, (1, 1), True, {}), (1, (3, 3), True, {"heads": 1, "kernel_sizes": ()}),
                                             (0, (4, 4), True, {"heads": 2, "kernel_sizes": (5,)})])
def test_attention_with_life_in_one_pass_matches_timms_attention(P, grid, bias, kw):
    """On a small grid with one head per scale, LIFEAttention runs LIFE and the attention as
    one function (_LIFEAttentionGridFunction): the outputs and the gradients of the input and
    of every parameter are those of timm's Attention.forward calling LIFE as its qkv."""
    attn = _attention(P=P, grid=grid, qkv_bias=bias, **kw)
    x = torch.randn(3, P + grid[0] * grid[1], 24, dtype=torch.float64, requires_grad=True)
    out, ref = attn(x), Attention.forward(attn, x)
    assert "_LIFEAttentionGridFunctionBackward" in _graph_names(out)
    assert "_LIFEAttentionGridFunctionBackward" not in _graph_names(ref)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(out)
    inputs = [x, *attn.parameters()]
    for got, want in zip(torch.autograd.grad(out, inputs, g), torch.autograd.grad(ref, inputs, g)):
        torch.testing.assert_close(got, want)
    with torch.no_grad():  # inference: the same function without the autograd node
        torch.testing.assert_close(attn(x), ref)
    attn.qkv.proj.weight.requires_grad_(False)  # only some inputs need a gradient
    (gx,) = torch.autograd.grad(attn(x), x, g)
    torch.testing.assert_close(gx, torch.autograd.grad(Attention.forward(attn, x), x, g)[0])


def test_attention_with_life_in_one_pass_gradcheck():
    """The one-pass backward against finite differences (one channel per head and scale part)."""
    attn = _attention(dim=3, heads=3, P=1, grid=(2, 2))
    names = [n for n, _ in attn.named_parameters()]
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)

    def f(x, *params):
        return torch.func.functional_call(attn, dict(zip(names, params)), (x,))

    assert "_LIFEAttentionGridFunctionBackward" in _graph_names(f(x, *attn.parameters()))
    assert torch.autograd.gradcheck(f, (x, *attn.parameters()))


@pytest.mark.parametrize("case", ["heads", "grid", "dropout", "hook", "qkv_norm", "mask"])
def test_attention_with_life_takes_timms_forward_where_one_pass_does_not_apply(case):
    """More heads than scales, a grid above GRID_MATRIX_MAX_CELLS, attention dropout in
    training, a hook on the attention weights (roll-out's), LIFE's qkv_norm or an attention
    mask: timm's own forward runs, with LIFE as its qkv, and computes what it always did."""
    kw = {"heads": dict(heads=6), "grid": dict(grid=(5, 5)), "qkv_norm": dict(qkv_norm=True)}.get(case, {})
    attn = _attention(**kw)
    grid = attn.qkv.grid_size
    x = torch.randn(2, 1 + grid[0] * grid[1], 24, dtype=torch.float64, requires_grad=True)
    extra = {}
    if case == "dropout":
        attn.attn_drop.p = 0.5
    if case == "hook":
        attn.attn_drop.register_forward_hook(lambda *a: None)
    if case == "mask":
        extra = {"attn_mask": torch.zeros(x.shape[1], x.shape[1], dtype=torch.bool)}
    torch.manual_seed(1)
    out = attn(x, **extra)
    torch.manual_seed(1)
    ref = Attention.forward(attn, x, **extra)
    assert "_LIFEAttentionGridFunctionBackward" not in _graph_names(out)
    torch.testing.assert_close(out, ref)


def test_apply_life_lets_a_deit_attend_in_one_pass_with_the_same_function():
    """apply_life makes every timm Attention a LIFEAttention (still an Attention, the same
    state dict); a distilled DeiT-micro at 16x16 (two prefix tokens, a 4x4 grid) trains
    through the one-pass function and gets the outputs and gradients of timm's forward."""
    torch.manual_seed(0)
    model = timm.create_model("deit_micro_distilled_patch4_32_life", img_size=16, num_classes=4).double()
    plain = copy.deepcopy(model)
    for block in plain.blocks:
        assert type(block.attn) is LIFEAttention and isinstance(block.attn, Attention)
        block.attn.__class__ = Attention
    assert model.state_dict().keys() == plain.state_dict().keys()
    model.eval(), plain.eval()  # drop path off: the two forward passes draw nothing
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    out, ref = model(x), plain(x)
    assert "_LIFEAttentionGridFunctionBackward" in _graph_names(out)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(out)
    out.backward(g), ref.backward(g)
    for (name, p), q in zip(model.named_parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_fused_path_under_autocast_follows_the_reference():
    """Under bf16 autocast every LIFE op runs in bf16, as the reference's ops would; the
    parameters' gradients come back in their own dtype."""
    torch.manual_seed(0)
    m = LIFE(24, num_prefix_tokens=1, grid_size=(4, 4))
    x = torch.randn(2, 17, 24, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, ref = m(x), m.forward_reference(x)
    assert out.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref, rtol=2e-2, atol=2e-2)
    out.float().sum().backward()
    assert m.proj.weight.grad.dtype == torch.float32 and x.grad.dtype == torch.float32


def test_training_activations_are_those_of_a_plain_qkv():
    """LIFE saves for backward its input (as the plain qkv Linear does), its output (which
    attention saves anyway) and one depthwise conv's output: within 10% of the baseline."""
    from lifestudy.bench import activation_bytes

    base = timm.create_model("deit_test_patch4_32", num_classes=3)
    life = timm.create_model("deit_test_patch4_32_life", num_classes=3)
    x = torch.randn(4, 3, 32, 32)
    assert activation_bytes(life, x) <= 1.10 * activation_bytes(base, x)


@pytest.mark.parametrize("k", [3, 5, 7, 9])
@pytest.mark.parametrize("grid", [(8, 8), (5, 7), (2, 3)])
@pytest.mark.parametrize("channels_last", [True, False])
def test_depthwise_conv_gradients_match_pytorch(k, grid, channels_last):
    """LIFE's depthwise conv computes nn.Conv2d's function and gradients; kernels wider than 3
    take its own CPU backward pass (weight gradient in column strips, input gradient by the
    flipped kernel), which must agree with PyTorch's."""
    torch.manual_seed(k)
    conv = DepthwiseConv2d(12, k)
    x = torch.randn(3, 12, *grid)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    out = conv(x)
    assert (k > 3) == ("DepthwiseConvCPU" in type(out.grad_fn).__name__)
    ref = F.conv2d(x, conv.weight, padding=k // 2, groups=12)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, (x, conv.weight), g)
    want = torch.autograd.grad(ref, (x, conv.weight), g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # only the weight, or only the input, needing a gradient
    (gw,) = torch.autograd.grad(conv(x.detach()), conv.weight, g)
    torch.testing.assert_close(gw, want[1], rtol=1e-4, atol=1e-5)
    conv.weight.requires_grad_(False)
    (gx,) = torch.autograd.grad(conv(x), x, g)
    torch.testing.assert_close(gx, want[0], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_compiled_life_has_eager_gradients(life_path):
    """torch.compile traces the CPU depthwise backward (no graph break) and computes the same."""
    import torch._dynamo

    torch._dynamo.reset()
    torch.manual_seed(0)
    m = LIFE(24, num_prefix_tokens=1, grid_size=(4, 5))
    x = torch.randn(2, 21, 24, requires_grad=True)
    g = torch.randn(2, 21, 72)
    assert type(m(x).grad_fn).__name__ == life_path
    want = torch.autograd.grad(m(x), [x, *m.parameters()], g)
    got = torch.autograd.grad(torch.compile(m, fullgraph=True)(x), [x, *m.parameters()], g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    torch._dynamo.reset()


def test_depthwise_conv_is_an_nn_conv2d_and_needs_an_odd_kernel():
    conv = DepthwiseConv2d(6, 5)
    assert isinstance(conv, nn.Conv2d) and conv.groups == 6 and conv.padding == (2, 2) and conv.bias is None
    assert list(conv.state_dict()) == ["weight"]
    with torch.no_grad():  # no gradient needed: nn.Conv2d's own forward
        assert conv(torch.randn(1, 6, 4, 4)).grad_fn is None
    with pytest.raises(ConfigError, match="odd kernel"):
        DepthwiseConv2d(6, 4)


def test_qkv_norm_normalises_q_k_v_separately():
    m = _life(24, 1, (2, 2), qkv_norm=True)
    out = m(torch.randn(3, 5, 24, dtype=torch.float64)).view(3, 5, 3, 24)
    torch.testing.assert_close(out.mean(-1), torch.zeros(3, 5, 3, dtype=torch.float64), atol=1e-6, rtol=0)


def test_bias_option_and_parameter_count():
    C = 48
    m = LIFE(C)
    # scale-1 C -> C with bias, two pointwise C -> C without, depthwise 3x3 and 5x5 without
    assert sum(p.numel() for p in m.parameters()) == 3 * C * C + C + 9 * C + 25 * C
    assert LIFE(C, bias=False).proj.bias is None


def test_errors_name_the_problem_and_the_fix():
    m = LIFE(12)
    x = torch.randn(1, 10, 12)
    with pytest.raises(ConfigError, match="set_grid_size"):
        m(x)
    with pytest.raises(ConfigError, match="10 tokens but grid 4x4"):
        m(x, grid_size=(4, 4))
    with pytest.raises(ConfigError, match="odd"):
        LIFE(12, kernel_sizes=(4,))
    assert issubclass(ConfigError, LifestudyError)


# --------------------------------------------------------------------------------------------
# apply_life on timm models


def _vit(**kw):
    from timm.models.vision_transformer import VisionTransformer

    args = dict(img_size=16, patch_size=4, embed_dim=24, depth=2, num_heads=3, num_classes=5)
    return VisionTransformer(**{**args, **kw})


@pytest.mark.parametrize(
    "kw,P", [({}, 1), ({"reg_tokens": 4}, 5), ({"class_token": False, "global_pool": "avg"}, 0),
             ({"reg_tokens": 2, "no_embed_class": True}, 3)],
)
def test_apply_life_vit_prefix_and_register_tokens(kw, P):
    model = apply_life(_vit(**kw))
    lifes = life_modules(model)
    assert len(lifes) == 2 and all(m.num_prefix_tokens == P for m in lifes)
    assert all(isinstance(b.attn, Attention) for b in model.blocks)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 5)
    assert lifes[0].grid_size == (4, 4)


def test_apply_life_distilled():
    model = timm.create_model("deit_test_distilled_patch4_32", num_classes=4)
    apply_life(model)
    assert all(m.num_prefix_tokens == 2 for m in life_modules(model))
    model.eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 4)


def test_dynamic_img_size_rectangular_grids_change_per_call():
    model = apply_life(_vit(dynamic_img_size=True)).eval()
    first = life_modules(model)[0]
    for H, W in [(16, 16), (12, 20), (8, 28)]:
        out = model.forward_features(torch.randn(1, 3, H, W))
        assert out.shape == (1, 1 + (H // 4) * (W // 4), 24)
        assert first.grid_size == (H // 4, W // 4)


def test_dynamic_img_pad():
    model = apply_life(_vit(dynamic_img_size=True, dynamic_img_pad=True))
    model(torch.randn(1, 3, 18, 13))
    assert life_modules(model)[0].grid_size == (5, 4)


def test_deepcopy_keeps_the_grid_hook_on_the_copy():
    """EMA / teacher copies must follow their own inputs' grid, not the original's."""
    model = apply_life(_vit(dynamic_img_size=True)).eval()
    model(torch.randn(1, 3, 16, 16))
    twin = copy.deepcopy(model)
    twin(torch.randn(1, 3, 8, 12))
    assert life_modules(twin)[0].grid_size == (2, 3)
    assert life_modules(model)[0].grid_size == (4, 4)


def test_apply_life_swinv2_windows():
    from timm.models.swin_transformer_v2 import SwinTransformerV2

    model = SwinTransformerV2(img_size=32, patch_size=2, window_size=4, embed_dim=12, depths=(2, 1),
                              num_heads=(3, 3), num_classes=3)
    apply_life(model)
    lifes = life_modules(model)
    assert len(lifes) == 3 and all(m.num_prefix_tokens == 0 for m in lifes)
    for stage in model.layers:
        for block in stage.blocks:
            # LIFE carries the bias: timm must not add q/v biases through qkv.weight
            assert block.attn.q_bias is None and block.attn.v_bias is None
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    assert lifes[0].grid_size == (4, 4)
    assert not any("q_bias" in k or "v_bias" in k for k in model.state_dict())


def test_set_grid_size_for_dense_heads():
    head = nn.Sequential(LIFE(12, num_prefix_tokens=0), LIFE(12, num_prefix_tokens=0))
    set_grid_size(head, (3, 7))
    x = torch.randn(2, 21, 12)
    assert head[1](head[0](x)[..., :12]).shape == (2, 21, 36)


@pytest.mark.parametrize(
    "build,name",
    [(lambda: timm.create_model("resnet18", num_classes=2), "resnet18"),
     (lambda: nn.Linear(3, 3), "Linear"),
     (lambda: timm.create_model("convnext_atto", num_classes=2), "convnext_atto")],
)
def test_apply_life_rejects_unsupported_models_by_name(build, name):
    with pytest.raises(UnsupportedModelError, match=name) as info:
        apply_life(build())
    assert "Supported" in str(info.value) or "supported" in str(info.value)


def test_apply_life_rejects_patch_dropout_and_double_conversion():
    with pytest.raises(UnsupportedModelError, match="PatchDropout"):
        apply_life(_vit(patch_drop_rate=0.5))
    model = apply_life(_vit())
    with pytest.raises(ConfigError, match="already has LIFE"):
        apply_life(model)


def test_package_exports():
    assert lifestudy.LIFE is LIFE and lifestudy.apply_life is apply_life


def test_swinv2_on_a_timm_that_bypasses_qkv_is_refused(monkeypatch):
    """timm < 1.0.9 applies SwinV2's q/v bias through qkv.weight and never calls the module."""
    from timm.models.swin_transformer_v2 import SwinTransformerV2

    import lifestudy.life as life

    model = SwinTransformerV2(img_size=16, patch_size=2, window_size=4, embed_dim=12, depths=(1,), num_heads=(3,))
    assert life._swin_calls_qkv_module(model.layers[0].blocks[0].attn)  # this timm calls it
    monkeypatch.setattr(life, "_swin_calls_qkv_module", lambda attn: False)
    with pytest.raises(UnsupportedModelError, match="timm >= 1.0.9"):
        apply_life(model)
