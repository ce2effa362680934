"""LIFE among the other ways to give a ViT locality: which hosts each applies to, and its cost.

The paper's abstract (Akkaya et al., arXiv 2305.08551) motivates LIFE with a claim about the
methods before it: they "are architecture-specific or have higher computational and memory
costs". This module measures both halves on one footing, for LIFE and four peers built as
variants of the same DeiT-micro (:mod:`lifestudy.models.spt_lsa`, ``localvit``, ``cvt_proj``,
``convit``):

- :func:`compatibility` decides, by building and running models, whether each method applies
  *unchanged* to a ViT with a class token, with class + distillation tokens, with register
  tokens, to a rectangular and changing grid, and to SwinV2's windows. A cell is "yes" when the
  method's own layers, put in the host's slots (patch embedding, attention, its ``qkv``, the
  feed-forward network), run forward and backward with the right output shape and every one
  of the method's parameters gets a gradient, and — in every ViT cell — the method's local
  operator at a patch depends on exactly the patches of its neighbourhood in the host's grid
  (and its prefix tokens on no patch). A cell is "no" when applying the method needs a change
  to the method or to the host; the code that refuses says why (a
  :class:`~lifestudy.models.locality.NotApplicable` with the reason), and ``tests/test_peers.py``
  shows, for each such refusal, that the unchanged method does fail there.
- :func:`costs` measures parameters and MACs (the counter of chapter 1,
  :mod:`lifestudy.complexity`), training and inference images/s (interleaved in one process)
  and activation memory (:func:`lifestudy.bench.activation_bytes`), each as a ratio to the
  baseline measured in the same run.

Both return records (``kind: "compatibility"`` / ``"peer_costs"``) that the chapter reads.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Sequence

import timm
import torch
import torch.nn.functional as F
from timm.models.deit import VisionTransformerDistilled
from timm.models.swin_transformer_v2 import SwinTransformerV2
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from lifestudy.bench import activation_bytes
from lifestudy.complexity import complexity
from lifestudy.errors import ConfigError
from lifestudy.life import apply_life
from lifestudy.models import build_classifier, convit, cvt_proj, localvit, spt_lsa
from lifestudy.models.locality import GridState, NotApplicable, attach_grid
from lifestudy.records import provenance

__all__ = ["Method", "METHODS", "HOSTS", "compatibility", "compatibility_record", "costs", "costs_record",
           "local_dependence"]


# --------------------------------------------------------------------------------------------
# The methods, as layers for timm hosts


def _vit_layers(module: ModuleType) -> Callable[[], dict[str, Any]]:
    """The layers a peer's model file passes into timm's VisionTransformer (its ``LAYERS``)."""
    return lambda: dict(module.LAYERS)


def _convit_layers() -> dict[str, Any]:
    return dict(attn_layer=convit.GatedPositionalAttention)


def _attach(model: nn.Module) -> nn.Module:
    attach_grid(model)
    return model


def _apply_life(model: nn.Module) -> nn.Module:
    return apply_life(model)


def _swin_blocks(model: nn.Module):
    for stage in model.layers:
        yield from stage.blocks


def _swin_qkv(model: nn.Module, make: Callable[[int], nn.Module]) -> nn.Module:
    """Put ``make(dim)`` in place of every SwinV2 window attention's ``qkv``; its grid is the window.

    timm's SwinV2 attention adds its q/v bias through ``qkv.weight`` when it has one and
    calls ``self.qkv(x)`` otherwise, so the bias moves into the new module (LIFE does the same)."""
    for block in _swin_blocks(model):
        attn = block.attn
        qkv = make(attn.qkv.in_features)
        qkv.grid_state = GridState(tuple(attn.window_size))
        attn.qkv = qkv.to(attn.qkv.weight.device) if hasattr(attn.qkv, "weight") else qkv
        attn.q_bias = attn.v_bias = None
        if "k_bias" in attn._buffers:
            del attn._buffers["k_bias"]
        attn.k_bias = None
    return model


def _swin_convproj(model: nn.Module) -> nn.Module:
    return _swin_qkv(model, lambda dim: cvt_proj.ConvQKV(dim, bias=True))


def _record_block_grid(block: nn.Module, args: tuple) -> None:
    """SwinV2 blocks take ``(B, H, W, C)``: their feed-forward network's grid is ``(H, W)``."""
    block.mlp.grid_state.size = tuple(args[0].shape[1:3])


def _swin_localvit(model: nn.Module) -> nn.Module:
    for block in _swin_blocks(model):
        old = block.mlp
        block.mlp = localvit.LocalityFeedForward(old.fc1.in_features, old.fc1.out_features)
        block.mlp.grid_state = GridState()
        block.register_forward_pre_hook(_record_block_grid)
    return model


def _refuse(reason: str) -> Callable[[nn.Module], nn.Module]:
    def refuse(model: nn.Module) -> nn.Module:
        raise NotApplicable(reason)

    return refuse


@dataclass(frozen=True)
class Method:
    """One way of giving a ViT locality, as the layers it puts into a timm host.

    Args:
        name: the row label.
        model: its registered DeiT-micro-size model (timm name).
        test_model: its registered test-size model.
        paper: where it comes from (paper; reference code).
        vit_layers: keywords for timm's ``VisionTransformer`` (``embed_layer`` / ``attn_layer`` /
            ``mlp_layer``) that put the method in; ``{}`` when it converts a built model instead.
        convert: called on a built ViT (attaches the patch grid, or converts it like LIFE).
        swinv2: puts the method into a timm SwinV2, or raises ``NotApplicable`` with the reason.
        local: where its local operator is (``"qkv"``: ``blocks[0].attn.qkv``; ``"mlp"``:
            ``blocks[0].mlp``; ``"embed"``: ``patch_embed``; None: it has none outside the
            attention, whose output depends on every token anyway).
        radius: the neighbourhood of its local operator, in patches (``"embed"``: in half patches).
    """

    name: str
    model: str
    test_model: str
    paper: str
    vit_layers: Callable[[], dict[str, Any]]
    convert: Callable[[nn.Module], nn.Module]
    swinv2: Callable[[nn.Module], nn.Module]
    local: str | None
    radius: int


_LSA_SWIN = (
    "SPT fits SwinV2's patch embedding, but LSA changes how attention scores are computed and "
    "SwinV2's window attention computes its own (cosine similarity, a learned logit scale per head, "
    "a continuous position bias): LSA there means rewriting that attention"
)
_GPSA_SWIN = (
    "GPSA is a whole attention layer with its own positional attention over patch offsets; SwinV2's "
    "window attention has its own position bias and a shifted-window mask GPSA has no input for: "
    "putting GPSA there replaces SwinV2's attention rather than adding locality to it"
)

METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("LIFE", "deit_micro_patch4_32_life", "deit_test_patch4_32_life",
               "Akkaya et al. 2023 (arXiv 2305.08551)", dict, _apply_life, _apply_life, "qkv", 3),
        Method("SPT + LSA", "deit_micro_patch4_32_spt_lsa", "deit_test_patch4_32_spt_lsa",
               "Lee, Lee, Song 2021 (arXiv 2112.13492); aanna0701/SPT_LSA_ViT",
               _vit_layers(spt_lsa), _attach, _refuse(_LSA_SWIN), "embed", 1),
        Method("LocalViT", "deit_micro_patch4_32_localvit", "deit_test_patch4_32_localvit",
               "Li et al. 2021 (arXiv 2104.05707); ofsoundof/LocalViT",
               _vit_layers(localvit), _attach, _swin_localvit, "mlp", 1),
        Method("CvT projection", "deit_micro_patch4_32_convproj", "deit_test_patch4_32_convproj",
               "Wu et al. 2021 (ICCV); microsoft/CvT", _vit_layers(cvt_proj), _attach, _swin_convproj, "qkv", 1),
        Method("ConViT (GPSA)", "convit_micro_patch4_32", "convit_test_patch4_32",
               "d'Ascoli et al. 2021 (ICML); facebookresearch/convit, timm.models.convit",
               _convit_layers, _attach, _refuse(_GPSA_SWIN), None, 0),
    ]
}


# --------------------------------------------------------------------------------------------
# The hosts


@dataclass(frozen=True)
class Host:
    """A host model of the compatibility table (tiny: built and run in well under a second)."""

    name: str
    kind: str  # "vit" or "swinv2"
    options: dict[str, Any] = field(default_factory=dict)  # VisionTransformer keywords
    distilled: bool = False
    img_sizes: tuple[tuple[int, int], ...] = ((16, 16),)  # inputs it is run on, in turn


HOSTS: dict[str, Host] = {
    h.name: h
    for h in [
        Host("class token", "vit"),
        Host("class + distillation tokens", "vit", distilled=True),
        Host("register tokens", "vit", options=dict(reg_tokens=2)),
        # no class token here (average pooling), so that this column asks about the grid alone
        Host("rectangular, changing grid", "vit",
             options=dict(dynamic_img_size=True, class_token=False, global_pool="avg"),
             img_sizes=((24, 40), (40, 24))),
        Host("SwinV2 windows", "swinv2", img_sizes=((16, 16),)),
    ]
}

_WIDTH = dict(embed_dim=24, depth=1, num_heads=3)
_NUM_CLASSES = 5


def _build_host(method: Method, host: Host, in_chans: int = 3) -> nn.Module:
    if host.kind == "swinv2":
        model = SwinTransformerV2(img_size=host.img_sizes[0], patch_size=2, window_size=4, embed_dim=24,
                                  depths=(1, 1), num_heads=(3, 3), num_classes=_NUM_CLASSES, in_chans=in_chans)
        return method.swinv2(model)
    cls = VisionTransformerDistilled if host.distilled else VisionTransformer
    model = cls(img_size=host.img_sizes[0], patch_size=4, num_classes=_NUM_CLASSES, in_chans=in_chans,
                **_WIDTH, **host.options, **method.vit_layers())
    return method.convert(model)


def _method_parameters(model: nn.Module, base: nn.Module) -> list[str]:
    """Names of ``model``'s parameters that a plain host (``base``) does not have: the method's own."""
    plain = {name for name, _ in base.named_parameters()}
    return [name for name, _ in model.named_parameters() if name not in plain]


def _plain_host(host: Host) -> nn.Module:
    return _build_host(Method("plain", "", "", "", dict, lambda m: m, lambda m: m, None, 0), host)


def _local_module(model: nn.Module, where: str) -> nn.Module:
    if where == "qkv":
        return model.blocks[0].attn.qkv
    if where == "mlp":
        return model.blocks[0].mlp
    if where == "embed":
        return model.patch_embed
    raise ConfigError(f"unknown local operator place {where!r}: use qkv, mlp or embed")


def local_dependence(model: nn.Module, where: str, image: torch.Tensor, patch: tuple[int, int]):
    """What the local operator of ``model`` at ``patch`` (row, column) reads, for input ``image``.

    Runs the model in eval mode (BatchNorm as an affine map, no batch coupling), captures the
    input of the operator (``where``: qkv / mlp / embed) and differentiates the operator's output
    at ``patch`` of the first image (and at its first prefix token, if any) with respect to it.
    Give at least two images: torch 2.14's CPU BatchNorm2d backward returns wrong input
    gradients for a batch of one when the incoming gradient has channels-last strides.

    Returns:
        ``(grid, patches, prefix_reads)``: the patch grid ``(gh, gw)``; the set of input positions
        (patch ``(row, column)`` for token operators, pixel ``(row, column)`` for ``embed``) the
        output at ``patch`` depends on; and the set of patches the first prefix token's output
        depends on (empty when the model has none or it reads no patch).
    """
    module = _local_module(model, where)
    captured: dict[str, torch.Tensor] = {}

    def grab(mod, args):
        captured["x"] = args[0].detach()

    model.eval()
    handle = module.register_forward_pre_hook(grab)
    try:
        with torch.no_grad():
            model(image)
    finally:
        handle.remove()
    x = captured["x"].clone().requires_grad_(True)
    out = module(x)  # the grid recorded by the model's forward is this input's
    i, j = patch
    if where == "embed":
        grid = (out.shape[1], out.shape[2]) if out.ndim == 4 else tuple(module.dynamic_feat_size(image.shape[-2:]))
        at = out[0, i, j] if out.ndim == 4 else out[0, i * grid[1] + j]
        (g,) = torch.autograd.grad(at.sum(), x)
        reads = {tuple(p) for p in torch.nonzero(g[0].abs().sum(0)).tolist()}
        return grid, reads, set()
    state = getattr(module, "grid_state", None)
    grid = state.size if state is not None else tuple(module.grid_size)  # LIFE keeps its own
    P = x.shape[1] - grid[0] * grid[1]
    (g,) = torch.autograd.grad(out[0, P + i * grid[1] + j].sum(), x, retain_graph=P > 0)

    def patches_read(grad: torch.Tensor) -> set[tuple[int, int]]:
        idx = torch.nonzero(grad[0, P:].abs().sum(-1)).flatten().tolist()
        return {divmod(t, grid[1]) for t in idx}

    reads = patches_read(g)
    if P and g[0, :P].abs().sum() > 0:
        reads.add(("prefix",))  # a patch's output read a prefix token
    prefix_reads: set = set()
    if P:
        (gp,) = torch.autograd.grad(out[0, 0].sum(), x)
        prefix_reads = patches_read(gp)
    return grid, reads, prefix_reads


def _expected(where: str, radius: int, grid: tuple[int, int], patch: tuple[int, int], model: nn.Module,
              image_hw: tuple[int, int]) -> set:
    i, j = patch
    if where == "embed":
        ph, pw = model.patch_embed.patch_size
        sh, sw = radius * ph // 2, radius * pw // 2
        H, W = image_hw
        return {(r, c) for r in range(max(0, i * ph - sh), min(H, (i + 1) * ph + sh))
                for c in range(max(0, j * pw - sw), min(W, (j + 1) * pw + sw))}
    return {(r, c) for r in range(max(0, i - radius), min(grid[0], i + radius + 1))
            for c in range(max(0, j - radius), min(grid[1], j + radius + 1))}


def _cell(method: Method, host: Host, seed: int = 0) -> dict[str, Any]:
    """Build ``method`` in ``host``, run it, check it; the cell of the table."""
    checks: list[str] = []
    torch.manual_seed(seed)
    try:
        model = _build_host(method, host)
        own = _method_parameters(model, _plain_host(host))
        for H, W in host.img_sizes:
            model.train()
            x = torch.randn(2, 3, H, W)
            out = model(x)
            if tuple(out.shape) != (2, _NUM_CLASSES):
                raise AssertionError(f"{method.name} in {host.name}: output {tuple(out.shape)}, "
                                     f"expected (2, {_NUM_CLASSES})")
            model.zero_grad(set_to_none=True)
            F.cross_entropy(out, torch.tensor([0, 1])).backward()
            params = dict(model.named_parameters())
            missing = [n for n in own if params[n].grad is None or not torch.isfinite(params[n].grad).all()]
            if missing:
                raise AssertionError(f"{method.name} in {host.name}: no (finite) gradient for {missing[:3]}")
            checks.append(f"{H}x{W}: forward, backward, output (2, {_NUM_CLASSES}), "
                          f"{len(own)} parameter tensors of the method get gradients")
            if host.kind == "vit" and method.local is not None:
                patch = (1, 2)
                grid, reads, prefix_reads = local_dependence(model, method.local, x, patch)
                want = _expected(method.local, method.radius, grid, patch, model, (H, W))
                if reads != want or prefix_reads:
                    raise AssertionError(
                        f"{method.name} in {host.name} ({H}x{W}, grid {grid[0]}x{grid[1]}): the local "
                        f"operator at patch {patch} reads {len(reads)} positions, expected the "
                        f"{len(want)} of its neighbourhood; prefix token reads {len(prefix_reads)} patches"
                    )
                unit = "pixels" if method.local == "embed" else "patches"
                checks.append(f"{H}x{W}: the local operator at patch {patch} of the {grid[0]}x{grid[1]} grid reads "
                              f"exactly its {len(want)} neighbouring {unit}; prefix tokens read none")
    except NotApplicable as err:
        return {"applies": False, "reason": str(err), "checks": checks}
    return {"applies": True, "reason": None, "checks": checks}


def compatibility(methods: Sequence[str] | None = None, hosts: Sequence[str] | None = None) -> dict[str, dict]:
    """The compatibility table: ``{method: {host: {"applies", "reason", "checks"}}}``, each cell
    decided by building the host with the method and running it (see the module docstring)."""
    methods = list(methods or METHODS)
    hosts = list(hosts or HOSTS)
    unknown = [m for m in methods if m not in METHODS] + [h for h in hosts if h not in HOSTS]
    if unknown:
        raise ConfigError(f"unknown method or host {unknown}: methods are {list(METHODS)}, hosts {list(HOSTS)}")
    return {m: {h: _cell(METHODS[m], HOSTS[h]) for h in hosts} for m in methods}


def compatibility_record(table: dict[str, dict] | None = None, **fields: Any) -> dict[str, Any]:
    """The table as a record (``kind: "compatibility"``); ``metrics`` holds 1 / 0 per cell."""
    table = table if table is not None else compatibility()
    return {
        "kind": "compatibility",
        "table": table,
        "methods": {m: {"model": METHODS[m].model, "paper": METHODS[m].paper} for m in table},
        "metrics": {f"{m}/{h}": float(c["applies"]) for m, row in table.items() for h, c in row.items()},
        "provenance": provenance(**fields),
    }


# --------------------------------------------------------------------------------------------
# Cost


class _Timed:
    """A model with its optimiser and one fixed batch: ``train()`` / ``infer()`` time one step each."""

    def __init__(self, name: str, num_classes: int, img_size: tuple[int, int], in_chans: int, batch_size: int,
                 seed: int) -> None:
        torch.manual_seed(seed)
        self.model = build_classifier(name, num_classes, in_chans, img_size)  # as the chapter trains it
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(batch_size, in_chans, *img_size, generator=g)
        self.y = torch.randint(0, num_classes, (batch_size,), generator=g)

    def train(self) -> float:
        self.model.train()
        start = time.perf_counter()
        out = self.model(self.x)
        loss = F.cross_entropy(out[0] if isinstance(out, tuple) else out, self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return self.x.shape[0] / (time.perf_counter() - start)

    def infer(self) -> float:
        self.model.eval()
        start = time.perf_counter()
        with torch.inference_mode():
            self.model(self.x)
        return self.x.shape[0] / (time.perf_counter() - start)


def costs(
    models: Sequence[str],
    baseline: str = "deit_micro_patch4_32",
    num_classes: int = 10,
    img_size: tuple[int, int] = (32, 32),
    in_chans: int = 3,
    batch_size: int = 64,
    repeats: int = 5,
    threads: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Parameters, MACs, training / inference img/s and activation memory of ``models`` and their
    ratios to ``baseline``, all measured in this one call.

    Timing is interleaved: each of ``repeats`` rounds times one step of every model (in a rotated
    order) after one untimed warm-up step each, and a model's ratio is the median over rounds of
    its throughput over the baseline's in the same round, so load on a shared machine hits all
    alike. Activation memory is :func:`lifestudy.bench.activation_bytes` of one training forward.

    Returns:
        ``{"baseline", "config", "rows": {model: {"params", "macs", "train_img_s", "infer_img_s",
        "activation_mb", "ratios": {...}}}}``.
    """
    if repeats < 1 or batch_size < 1:
        raise ConfigError("costs needs repeats >= 1 and batch_size >= 1")
    names = [baseline] + [m for m in models if m != baseline]
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        runners = {n: _Timed(n, num_classes, tuple(img_size), in_chans, batch_size, seed) for n in names}
        samples: dict[str, dict[str, list[float]]] = {n: {"train": [], "infer": []} for n in names}
        for mode in ("train", "infer"):
            for r in runners.values():
                getattr(r, mode)()
            for rep in range(repeats):
                k = rep % len(names)
                for n in names[k:] + names[:k]:
                    samples[n][mode].append(getattr(runners[n], mode)())
        rows: dict[str, dict[str, Any]] = {}
        for n, r in runners.items():
            r.model.train()
            count = complexity(r.model, num_classes=num_classes, img_size=tuple(img_size), in_chans=in_chans)
            rows[n] = {
                "params": count["params"], "macs": count["macs"],
                "train_img_s": statistics.median(samples[n]["train"]),
                "infer_img_s": statistics.median(samples[n]["infer"]),
                "activation_mb": activation_bytes(r.model, r.x) / 2**20,
            }
    finally:
        torch.set_num_threads(old_threads)
    base = rows[baseline]
    for n, row in rows.items():
        row["ratios"] = {
            "params": row["params"] / base["params"],
            "macs": row["macs"] / base["macs"],
            "train_img_s": statistics.median(a / b for a, b in zip(samples[n]["train"], samples[baseline]["train"])),
            "infer_img_s": statistics.median(a / b for a, b in zip(samples[n]["infer"], samples[baseline]["infer"])),
            "activation_mb": row["activation_mb"] / base["activation_mb"],
        }
    config = dict(models=list(names), num_classes=num_classes, img_size=list(img_size), in_chans=in_chans,
                  batch_size=batch_size, repeats=repeats, threads=threads or old_threads, seed=seed)
    return {"baseline": baseline, "config": config, "rows": rows}


def costs_record(result: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """:func:`costs`'s result as a record (``kind: "peer_costs"``); ``metrics`` are the ratios."""
    return {
        "kind": "peer_costs",
        **result,
        "metrics": {f"{n}/{k}_ratio": v for n, row in result["rows"].items() for k, v in row["ratios"].items()},
        "provenance": provenance(**fields),
    }
