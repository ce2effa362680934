"""Every LIFE twin is a timm model in every way a timm user reaches for one.

The contracts of timm's own model tests (``tests/test_models.py`` of pytorch-image-models), written
here for the registry's twins, so a new twin is tested by being registered: forward (and gradient
checkpointing), backward with a gradient for every parameter, default cfgs, ``features_only`` /
``out_indices`` and ``forward_intermediates``, TorchScript, ``torch.fx`` (directly, and through
torchvision's ``create_feature_extractor`` as timm's FX tests build it, then scripted),
``torch.export`` and ``torch.compile(fullgraph=True)``. LIFE must see the patch grid of each input
(rectangular, changing sizes with ``dynamic_img_size``), also inside traced graphs: outputs are
compared with eager ones at non-square sizes, where a transposed grid would give other numbers.

Models are built with fewer blocks and small inputs (timm's tests use small variants for the same
reason). The traced contracts (TorchScript, FX, export, compile), whose cost is tracing, run on one
twin per architecture (model class, patch embedding class, prefix tokens), chosen from the registry,
and on ``apply_life`` of timm ViTs with other token layouts.
"""

import math
from functools import lru_cache

import pytest
import timm
import torch
from timm.models import get_notrace_functions, get_notrace_modules
from timm.models.vision_transformer import VisionTransformer
from torchvision.models.feature_extraction import NodePathTracer, create_feature_extractor, get_graph_node_names

import lifestudy  # noqa: F401  (registers the twins)
from lifestudy.life import LIFE, apply_life, life_modules
from lifestudy.models import BASELINES, LIFE_MODELS
from lifestudy.models.vit import LIFE_PAPER

_IMAGENET_SCALE = 64  # ImageNet-size twins are tested at this input size (a 4x4 grid at stride 16)


def reduced(name: str, depth: int = 3) -> dict:
    """Keyword arguments that shrink a registered model to ``depth`` blocks (SwinV2: one a stage)."""
    if name.startswith("swin"):
        return dict(depths=(1, 1, 1, 1))
    return dict(depth=depth)


def small_size(name: str) -> tuple[int, int]:
    H, W = timm.models.get_pretrained_cfg(name).input_size[-2:]
    return (H, W) if max(H, W) <= _IMAGENET_SCALE else (_IMAGENET_SCALE, _IMAGENET_SCALE)


def twin(name: str, depth: int = 3, **kwargs) -> torch.nn.Module:
    """The registered twin, with fewer blocks, built for its small test size."""
    torch.manual_seed(0)
    return timm.create_model(name, **{**reduced(name, depth), "img_size": small_size(name), **kwargs})


@lru_cache(maxsize=None)
def _arch(name: str) -> tuple[type, type, int, int]:
    """(model class, patch embedding class, prefix tokens, parameters of the reduced model)."""
    with torch.device("meta"):
        model = timm.create_model(name, **reduced(name))
    n_params = sum(p.numel() for p in model.parameters())
    return type(model), type(model.patch_embed), int(getattr(model, "num_prefix_tokens", 0)), n_params


def _one_per_architecture() -> list[str]:
    """The smallest registered twin of each architecture."""
    chosen: dict[tuple, str] = {}
    for name in sorted(LIFE_MODELS, key=lambda n: (_arch(n)[3], n)):
        chosen.setdefault(_arch(name)[:3], name)
    return sorted(chosen.values())


def _rect(size: tuple[int, int], stride: int) -> list[tuple[int, int]]:
    """Two further non-square sizes: one wider, one taller than ``size``."""
    H, W = size
    return [(H - stride, W + stride), (H + 2 * stride, W - stride)]


# --------------------------------------------------------------------------------------------
# Contracts every twin keeps


@pytest.mark.parametrize("name", LIFE_MODELS)
def test_forward_and_grad_checkpointing(name):
    model = twin(name, num_classes=5).eval()
    x = torch.randn(2, 3, *small_size(name))
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 5) and not out.isnan().any()
        model.set_grad_checkpointing()
        torch.testing.assert_close(model(x), out, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", LIFE_MODELS)
def test_backward_reaches_every_parameter(name):
    model = twin(name, num_classes=42).train()
    out = model(torch.randn(2, 3, *small_size(name)))
    out = torch.cat(out) if isinstance(out, tuple) else out
    assert out.shape[-1] == 42
    out.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"
    assert not any(isinstance(b, torch.nn.Parameter) for b in model.buffers())


_CFG_KEYS = ("input_size", "test_input_size", "fixed_input_size", "interpolation", "crop_pct", "mean", "std",
             "num_classes", "first_conv", "classifier", "license", "paper_ids", "paper_name")


@pytest.mark.parametrize("name", LIFE_MODELS)
def test_default_cfg_is_complete_and_true(name):
    cfg = timm.models.get_pretrained_cfg(name).to_dict()
    assert not [k for k in _CFG_KEYS if cfg.get(k) in (None, "", ())]
    assert LIFE_PAPER in cfg["paper_ids"]
    # the twin is preprocessed as its baseline is
    base = timm.models.get_pretrained_cfg(BASELINES[name]).to_dict()
    for key in ("input_size", "interpolation", "crop_pct", "mean", "std", "first_conv", "classifier", "pool_size"):
        assert cfg.get(key) == base.get(key), key
    # built as registered (fewer blocks only), the model takes the cfg's input sizes
    torch.manual_seed(0)
    model = timm.create_model(name, **reduced(name)).eval()
    assert model.pretrained_cfg["architecture"] == name
    state = model.state_dict()
    firsts = cfg["first_conv"] if isinstance(cfg["first_conv"], tuple) else (cfg["first_conv"],)
    heads = cfg["classifier"] if isinstance(cfg["classifier"], tuple) else (cfg["classifier"],)
    assert all(f"{layer}.weight" in state for layer in (*firsts, *heads))
    with torch.no_grad():
        for size in {cfg["input_size"], cfg["test_input_size"]}:
            feats = model.forward_features(torch.randn(1, *size))
            assert feats.shape[-1] == model.num_features
            if cfg["pool_size"] is not None:  # a spatial (NHWC) output, as SwinV2's
                assert feats.shape[1:3] == cfg["pool_size"]
            assert model.forward_head(feats, pre_logits=True).shape == (1, model.head_hidden_size)
            assert model(torch.randn(1, *size)).shape == (1, cfg["num_classes"])
        model.reset_classifier(0)
        assert model(torch.randn(1, *cfg["input_size"])).shape == (1, model.head_hidden_size)


@pytest.mark.parametrize("name", LIFE_MODELS)
def test_features_only_and_out_indices(name):
    size = small_size(name)
    x = torch.randn(2, 3, *size)
    for out_indices in (None, (0, 2)):
        kw = {} if out_indices is None else dict(out_indices=out_indices)
        model = twin(name, features_only=True, **kw).eval()
        assert life_modules(model), "the feature extractor has lost LIFE"
        channels, reductions = model.feature_info.channels(), model.feature_info.reduction()
        assert len(channels) >= 3 if out_indices is None else len(channels) == len(out_indices)
        with torch.no_grad():
            outs = model(x)
        assert len(outs) == len(channels)
        fmt = getattr(model, "output_fmt", "NCHW")
        for c, r, o in zip(channels, reductions, outs):
            hw = o.shape[2:] if fmt == "NCHW" else o.shape[1:3]
            ch = o.shape[1] if fmt == "NCHW" else o.shape[-1]
            assert ch == c and tuple(hw) == (math.ceil(size[0] / r), math.ceil(size[1] / r))


@pytest.mark.parametrize("name", LIFE_MODELS)
def test_forward_intermediates_match_forward_features(name):
    model = twin(name).eval()
    x = torch.randn(1, 3, *small_size(name))
    with torch.no_grad():
        final, intermediates = model.forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x))
    assert len(intermediates) == len(model.feature_info)


@pytest.mark.parametrize("name", [n for n in _one_per_architecture() if issubclass(_arch(n)[0], VisionTransformer)])
def test_life_sees_each_inputs_grid(name):
    """With dynamic_img_size, at sizes of other shapes: every LIFE computes what it computes given
    the grid the patch embedding really made (read from its NHWC output), in
    forward_intermediates and in the features_only model."""
    model = twin(name, depth=2, dynamic_img_size=True).eval()
    feats = twin(name, depth=2, dynamic_img_size=True, features_only=True, out_indices=(0, 1)).eval()
    stride = model.patch_embed.feat_ratio()
    for m in (model, feats):
        embed = m.model.patch_embed if hasattr(m, "model") else m.patch_embed
        seen = []
        handles = [embed.register_forward_hook(lambda mod, i, out: seen.append(("grid", out.shape[1:3])))]
        handles += [life.register_forward_hook(lambda mod, i, out: seen.append((mod, i[0], out)))
                    for life in life_modules(m)]
        for H, W in _rect(small_size(name), stride):
            seen.clear()
            with torch.no_grad():
                (m.forward_intermediates if m is model else m)(torch.randn(1, 3, H, W))
                grid = tuple(seen[0][1])
                assert grid != grid[::-1]  # a transposed grid would be another function
                lifes = seen[1:]
                assert len(lifes) == len(life_modules(m))
                for life, tokens, out in lifes:
                    torch.testing.assert_close(out, life(tokens, grid_size=grid))
        for h in handles:
            h.remove()


# --------------------------------------------------------------------------------------------
# Traced forms: TorchScript, torch.fx, torch.export, torch.compile


def _apply_life_vit(**kw):
    def build(**extra):
        torch.manual_seed(0)
        args = dict(img_size=16, patch_size=4, embed_dim=24, depth=2, num_heads=3, num_classes=5)
        return apply_life(VisionTransformer(**{**args, **kw, **extra}))
    return build


#: case -> (builder(**kwargs) -> model, input size, whether it takes dynamic_img_size)
CASES = {
    **{n: (lambda n=n, **kw: twin(n, depth=1, **kw), small_size(n), issubclass(_arch(n)[0], VisionTransformer))
       for n in _one_per_architecture()},
    "apply_life(vit, reg_tokens=4)": (_apply_life_vit(reg_tokens=4), (16, 16), True),
    "apply_life(vit, no class token)": (_apply_life_vit(class_token=False, global_pool="avg"), (16, 16), True),
    "apply_life(vit, no_embed_class, dynamic_img_pad)": (
        _apply_life_vit(reg_tokens=2, no_embed_class=True, dynamic_img_pad=True), (16, 16), True),
}


def _model(case: str, dynamic: bool, **kw) -> torch.nn.Module:
    return CASES[case][0](**({"dynamic_img_size": True} if dynamic else {}), **kw)


def _sizes(case: str, model: torch.nn.Module, dynamic: bool) -> list[tuple[int, int]]:
    """The case's input size; with dynamic sizes also a wider and a taller one (and, with
    dynamic_img_pad, one of partial patches)."""
    size = CASES[case][1]
    if not dynamic:
        return [size]
    sizes = [size, *_rect(size, model.patch_embed.feat_ratio())]
    if getattr(model.patch_embed, "dynamic_img_pad", False):
        sizes.append((size[0] + 1, size[1] - 3))
    return sizes


#: timm's own VisionTransformerDistilled with dynamic_img_size does not FX-trace (deit.py's
#: ``_pos_embed`` calls ``resample_abs_pos_embed`` outside timm's autowrapped names, whose size
#: comparison the tracer cannot follow), so neither does its twin
_FX_DYNAMIC_EXCLUDED = ("VisionTransformerDistilled",)
#: dynamic-shape torch.compile is slow to trace; one token layout stands for the rest
_COMPILE_DYNAMIC = ("apply_life(vit, reg_tokens=4)",)


def _params(dynamic=lambda case: True):
    out = []
    for case, (_, _, takes_dynamic) in CASES.items():
        out.append(pytest.param(case, False, id=f"{case}-fixed"))
        if takes_dynamic and dynamic(case):
            out.append(pytest.param(case, True, id=f"{case}-dynamic"))
    return out


def _fx_dynamic(case: str) -> bool:
    return case not in LIFE_MODELS or _arch(case)[0].__name__ not in _FX_DYNAMIC_EXCLUDED


def _same(a, b) -> None:
    a = torch.cat(a) if isinstance(a, (tuple, list)) else a
    b = torch.cat(b) if isinstance(b, (tuple, list)) else b
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def _fx_model(model: torch.nn.Module, train: bool = False) -> torch.nn.Module:
    """The GraphModule timm's FX tests build: torchvision's create_feature_extractor with timm's
    leaf modules and autowrapped functions, returning the model's output node."""
    tracer_kwargs = dict(leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions())
    train_nodes, eval_nodes = get_graph_node_names(model, tracer_kwargs=tracer_kwargs)
    train_return = [train_nodes[-1]]
    if train:  # all the nodes feeding the output (several in train mode for distilled models)
        graph = NodePathTracer(**tracer_kwargs).trace(model)
        nodes = list(reversed(graph.nodes))
        names = [n.name for n in nodes]
        train_return = [train_nodes[-names.index(n.name)] for n in nodes[0]._input_nodes]
    return create_feature_extractor(
        model, train_return_nodes=train_return, eval_return_nodes=[eval_nodes[-1]], tracer_kwargs=tracer_kwargs
    )


@pytest.mark.parametrize("case,dynamic", _params())
def test_torchscript(case, dynamic):
    with timm.set_scriptable(True):
        model = _model(case, dynamic).eval()
    scripted = torch.jit.script(model)
    for H, W in _sizes(case, model, dynamic):
        x = torch.randn(1, 3, H, W)
        with torch.no_grad():
            _same(scripted(x), model(x))


@pytest.mark.parametrize("case,dynamic", _params(_fx_dynamic))
def test_fx_feature_extractor_then_torchscript(case, dynamic):
    model = _model(case, dynamic).eval()
    graph = _fx_model(model)
    # no value of the traced graphs stays behind on the model
    assert all(m.grid_size is None or isinstance(m.grid_size[0], int) for m in life_modules(model))
    scripted = torch.jit.script(graph)
    for H, W in _sizes(case, model, dynamic):
        x = torch.randn(1, 3, H, W)
        with torch.no_grad():
            want = model(x)
            _same(list(graph(x).values()), want)
            _same(list(scripted(x).values()), want)


@pytest.mark.parametrize("case", [p.values[0] for p in _params() if not p.values[1]])
def test_fx_backward_reaches_every_parameter(case):
    model = _model(case, False, num_classes=42).train()
    graph = _fx_model(model, train=True)
    out = list(graph(torch.randn(2, 3, *CASES[case][1])).values())
    torch.cat(out).mean().backward()
    assert not [n for n, p in graph.named_parameters() if p.grad is None]
    assert sum(p.numel() for p in graph.parameters()) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("case", [p.values[0] for p in _params() if not p.values[1]])
def test_fx_symbolic_trace(case):
    model = _model(case, False).eval()
    graph = torch.fx.symbolic_trace(model)
    x = torch.randn(1, 3, *CASES[case][1])
    with torch.no_grad():
        _same(graph(x), model(x))


@pytest.mark.parametrize("case,dynamic", _params())
def test_export(case, dynamic):
    from torch.export import Dim, export

    model = _model(case, dynamic).eval()
    sizes = _sizes(case, model, dynamic)
    shapes = None
    if dynamic:
        stride = model.patch_embed.feat_ratio()
        if model.patch_embed.dynamic_img_pad:
            shapes = {"x": {2: Dim("H", min=9, max=256), 3: Dim("W", min=9, max=256)}}
        else:  # sizes that are whole patches
            shapes = {"x": {2: stride * Dim("gh", min=1, max=64), 3: stride * Dim("gw", min=1, max=64)}}
    exported = export(model, (torch.randn(1, 3, *sizes[0]),), dynamic_shapes=shapes).module()
    for H, W in sizes:
        x = torch.randn(1, 3, H, W)
        with torch.no_grad():
            _same(exported(x), model(x))


@pytest.mark.parametrize("case,dynamic", _params(lambda case: case in _COMPILE_DYNAMIC))
def test_compile_fullgraph(case, dynamic):
    import torch._dynamo

    torch._dynamo.reset()
    model = _model(case, dynamic).eval()
    compiled = torch.compile(model, fullgraph=True, backend="eager", dynamic=dynamic or None)
    for H, W in _sizes(case, model, dynamic):
        x = torch.randn(1, 3, H, W)
        with torch.no_grad():
            _same(compiled(x), model(x))
    assert all(isinstance(m, LIFE) for m in life_modules(model))
    torch._dynamo.reset()
