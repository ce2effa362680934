"""Parameters and multiply-accumulates of a model, counted the way the paper counts them.

The paper's complexity table (100 classes, 224x224) counts with fvcore
(github.com/facebookresearch/fvcore, ``FlopCountAnalysis``): one "flop" there is one
multiply-add (a MAC) of a linear, conv, matmul or einsum, plus fvcore's small charge for
normalisation layers; element-wise ops (add, GELU, softmax) are not counted. The attention
matrix products ``q @ k^T`` and ``attn @ v`` are counted: when timm uses the fused
``F.scaled_dot_product_attention``, the handle below charges exactly what the two matmuls
would (``B * heads * N * M * (d + d_v)``), so fused and unfused attention give one number.

Parameters are the trainable ones, as DeiT's ``main.py`` counts them
(``sum(p.numel() for p in model.parameters() if p.requires_grad)``): T2T-ViT's fixed
sinusoidal position table is not counted, and with it excluded our T2T-ViT-12 has the paper's
6.66 M. Buffers are never counted.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import timm
import torch
from torch import nn

from lifestudy import paper
from lifestudy.errors import ConfigError
from lifestudy.models import BASELINES
from lifestudy.records import provenance

__all__ = ["complexity", "complexity_record", "default_img_size", "count_params", "count_macs", "sdpa_mac_handle",
           "CONVENTION"]

#: How every complexity record says it counted (see the module docstring).
CONVENTION = "fvcore MACs incl. attention products; trainable params"


def _shape(value) -> list[int]:
    """The concrete shape of a traced value (fvcore's jit handle inputs)."""
    return list(value.type().sizes())


def sdpa_mac_handle(inputs: list, outputs: list) -> int:
    """fvcore handle for ``aten::scaled_dot_product_attention``: MACs of ``q @ k^T`` plus ``attn @ v``."""
    q, k, v = (_shape(x) for x in inputs[:3])
    *batch, N, d = q
    M, dv = k[-2], v[-1]
    return math.prod(batch) * N * M * (d + dv)


def count_params(model: nn.Module, trainable: bool = True) -> int:
    """Parameters of ``model``: the trainable ones (the paper's convention), or all of them."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def count_macs(
    model: nn.Module, inputs: torch.Tensor | Sequence[torch.Tensor]
) -> tuple[int, dict[str, int], dict[str, int]]:
    """fvcore MACs of one forward pass: (total, MACs by operator, uncounted ops and their counts)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # importing fvcore warns that torch.jit.script is deprecated
        from fvcore.nn import FlopCountAnalysis

    inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fvcore traces with torch.jit, which warns about itself
            fca = FlopCountAnalysis(model, inputs)
            fca.set_op_handle("aten::scaled_dot_product_attention", sdpa_mac_handle)
            fca.unsupported_ops_warnings(False)
            fca.uncalled_modules_warnings(False)
            fca.tracer_warnings("none")
            total = int(fca.total())
            by_op = {k: int(v) for k, v in fca.by_operator().items()}
            skipped = {k: int(v) for k, v in fca.unsupported_ops().items()}
    finally:
        model.train(was_training)
    return total, by_op, skipped


def complexity(
    model: str | nn.Module,
    num_classes: int = 100,
    img_size: int | Sequence[int] = 224,
    in_chans: int = 3,
    batch_size: int = 1,
    **model_kwargs: Any,
) -> dict[str, Any]:
    """Parameters (M) and GMACs of a model, beside the paper's figures when it has them.

    Args:
        model: a timm model name (LIFE models are registered by ``import lifestudy``) or a module.
        num_classes: classifier width (the paper's table: 100).
        img_size: input (H, W) or one side (the paper's table: 224; SwinV2-T: 256).
        in_chans: image channels.
        batch_size: MACs are per image; a larger batch only checks the count scales.
        model_kwargs: passed to ``timm.create_model`` with a name.

    Returns:
        ``{"model", "num_classes", "img_size", "params", "params_m", "macs", "gmacs",
        "macs_by_operator", "uncounted_ops", "paper"}``; ``paper`` is the paper's
        ``{"params_m", "gmacs"}`` for this model at 100 classes and its table's size, else None.
    """
    H, W = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    if isinstance(model, str):
        name = model
        try:
            module = timm.create_model(
                name, num_classes=num_classes, img_size=(H, W), in_chans=in_chans, **model_kwargs
            )
        except RuntimeError as err:
            if "Unknown model" in str(err):
                raise ConfigError(
                    f"unknown model {name!r}: use a timm model name (lifestudy's LIFE models end in _life; "
                    "`python -c \"import lifestudy, timm; print(timm.list_models('*_life'))\"` lists them)"
                ) from err
            raise
    else:
        module = model
        cfg = getattr(module, "pretrained_cfg", None) or {}
        name = cfg.get("architecture") or type(module).__name__
    x = torch.randn(batch_size, in_chans, H, W)
    macs, by_op, skipped = count_macs(module, x)
    params = count_params(module)
    paper_row = paper.COMPLEXITY.get(name) if (num_classes == 100 and (H, W) == default_img_size(name)) else None
    return {
        "model": name,
        "num_classes": num_classes,
        "img_size": [H, W],
        "params": params,
        "params_m": params / 1e6,
        "macs": macs // batch_size,
        "gmacs": macs / batch_size / 1e9,
        "macs_by_operator": {k: v // batch_size for k, v in by_op.items()},
        "uncounted_ops": skipped,
        "paper": dict(paper_row, label=paper.LABEL) if paper_row else None,
    }


def default_img_size(name: str) -> tuple[int, int]:
    """A model's own input size ``(H, W)`` (timm's pretrained config; a LIFE twin has its
    baseline's), the size the paper's complexity table counts at (224, SwinV2-T 256)."""
    name = BASELINES.get(name, name)  # a twin has its baseline's input size
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except Exception:  # noqa: BLE001  (older timm raise different errors for unknown names)
        cfg = None
    if cfg is None:
        if name not in timm.list_models():
            raise ConfigError(f"unknown model {name!r}: use a timm model name (LIFE models end in _life)")
        return (224, 224)
    size = getattr(cfg, "input_size", None) or (3, 224, 224)
    return (int(size[1]), int(size[2]))


def complexity_record(rows: Sequence[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """The record of some counts (``kind: "complexity"``), as the CLI and the chapters write it.

    Args:
        rows: results of :func:`complexity`, one per (model, input size).
        fields: provenance fields (profile, chapter, device...).

    Returns:
        ``{"kind": "complexity", "results": rows, "metrics": {"<model>@<H>x<W>": {"params_m",
        "gmacs"}}, "provenance": ...}``.
    """
    return {
        "kind": "complexity",
        "results": list(rows),
        "metrics": {f"{r['model']}@{r['img_size'][0]}x{r['img_size'][1]}": {"params_m": r["params_m"],
                                                                              "gmacs": r["gmacs"]}
                    for r in rows},
        "provenance": provenance(convention=CONVENTION, **fields),
    }
