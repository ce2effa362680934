"""DeiT / ViT / SwinV2 models of the study, and their LIFE twins, in timm's registry.

DeiT: Touvron et al., "Training data-efficient image transformers & distillation through
attention", ICML 2021 (timm ``deit.py``). SwinV2: Liu et al., "Swin Transformer V2", CVPR
2022 (timm ``swin_transformer_v2.py``). LIFE: Akkaya et al., arXiv 2305.08551.

Every model here is a plain timm model: the small-image variants are timm's
``VisionTransformer`` / ``VisionTransformerDistilled`` built with other sizes, and each
``<base>_life`` twin is ``<base>`` converted by :func:`lifestudy.life.apply_life` (timm's
``Attention`` kept, only ``attn.qkv`` replaced). All take timm's keyword arguments
(``num_classes``, ``img_size``, ``in_chans``, ``dynamic_img_size``, ``drop_path_rate``,
``features_only`` / ``out_indices``, ...); a twin also takes
``life_kwargs=dict(kernel_sizes=..., qkv_norm=...)``. A twin is built as timm builds its own
models (``build_model_with_cfg``): LIFE goes in first, then timm's feature wrapper, and its
pretrained cfg is its baseline's (input sizes, statistics, first conv, classifier, license) with
LIFE's paper added. ``tests/test_timm_contracts.py`` holds every registered twin to timm's model
contracts (TorchScript, ``torch.fx``, ``torch.export``, ``torch.compile`` included).

Small-image variants (patch 4): ``deit_tiny_patch4_32`` / ``_64`` (DeiT-T: 192 wide, 12
deep, 3 heads), ``deit_small_patch4_32`` (DeiT-S: 384, 12, 6), ``deit_micro_patch4_32``
(96, 6, 3 — the cpu profile's size), ``deit_test_patch4_32`` (48, 2, 3 — for tests), and the
``_distilled_`` forms with a distillation token.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import timm
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import VisionTransformer

from lifestudy.errors import ConfigError
from lifestudy.life import apply_life
from lifestudy.models.registry import register

__all__: list[str] = []  # filled by timm's register_model (through lifestudy.models.registry.register)


#: papers the cfgs cite (timm's ``paper_ids``)
LIFE_PAPER = "arXiv:2305.08551"
_DEIT_PAPER = "arXiv:2012.12877"
_SWINV2_PAPER = "arXiv:2111.09883"


def _cfg(input_size: int, **kwargs: Any) -> dict[str, Any]:
    """A small-image model's cfg: the input size it takes (also its test size), timm's default
    ImageNet statistics (a dataset's own come from :mod:`lifestudy.data`), no weights."""
    size = (3, input_size, input_size)
    return {
        "url": "", "num_classes": 1000, "input_size": size, "test_input_size": size, "pool_size": None,
        "crop_pct": 1.0, "interpolation": "bicubic", "fixed_input_size": True,
        "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.proj", "classifier": "head",
        "license": "mit", "paper_ids": _DEIT_PAPER,
        "paper_name": "Training data-efficient image transformers & distillation through attention",
        **kwargs,
    }


#: cfg entries that locate weights (or name one tag of them): not carried over to a LIFE twin
_WEIGHT_KEYS = ("url", "hf_hub_id", "hf_hub_filename", "file", "state_dict", "architecture", "tag", "custom_load")


def life_cfg(base_cfg: dict[str, Any]) -> dict[str, Any]:
    """A LIFE twin's cfg: its baseline's (input sizes, statistics, first conv, classifier, license),
    with LIFE's paper added and no weight location (LIFE has no pretrained weights)."""
    cfg = {k: v for k, v in base_cfg.items() if k not in _WEIGHT_KEYS}
    papers = cfg.get("paper_ids") or ()
    papers = (papers,) if isinstance(papers, str) else tuple(papers)
    cfg.setdefault("test_input_size", cfg["input_size"])
    return {
        **cfg, "url": "", "paper_ids": (LIFE_PAPER, *papers),
        "paper_name": "Enhancing Performance of Vision Transformers on Small Datasets through Local "
                      "Inductive Bias Incorporation",
    }


_TINY = dict(embed_dim=192, depth=12, num_heads=3)
_SMALL_DIMS = dict(embed_dim=384, depth=12, num_heads=6)
_MICRO = dict(embed_dim=96, depth=6, num_heads=3)
_TEST = dict(embed_dim=48, depth=2, num_heads=3)

#: the small-image variants (patch 4): name -> (sizes, with a distillation token, docstring)
_SMALL_MODELS: dict[str, tuple[dict[str, int], bool, str]] = {
    "deit_tiny_patch4_32": (_TINY, False, "DeiT-T for 32x32 inputs, patch 4 (8x8 grid)."),
    "deit_tiny_patch4_64": (_TINY, False, "DeiT-T for 64x64 inputs (Tiny-ImageNet), patch 4 (16x16 grid)."),
    "deit_tiny_distilled_patch4_32": (_TINY, True, "DeiT-T with a distillation token for 32x32 inputs, patch 4."),
    "deit_small_patch4_32": (_SMALL_DIMS, False, "DeiT-S for 32x32 inputs, patch 4."),
    "deit_micro_patch4_32": (_MICRO, False, "A 96-wide, 6-deep, 3-head DeiT for 32x32 inputs: the cpu profile's model."),
    "deit_micro_distilled_patch4_32": (_MICRO, True, "``deit_micro_patch4_32`` with a distillation token."),
    "deit_test_patch4_32": (_TEST, False, "A 48-wide, 2-deep, 3-head DeiT for tests."),
    "deit_test_distilled_patch4_32": (_TEST, True, "``deit_test_patch4_32`` with a distillation token, for tests."),
}
_SMALL = list(_SMALL_MODELS)
_SMALL_CFGS = {
    name: _cfg(
        64 if name.endswith("_64") else 32,
        **({"classifier": ("head", "head_dist")} if "distilled" in name else {}),
    )
    for name in _SMALL
}
#: timm's own models with a LIFE twin here: name -> (the paper's ids, the twin's docstring;
#: None where the twin is registered by hand below: SwinV2's LIFE sits inside its windows)
_TIMM_BASES = {
    "deit_tiny_patch16_224": (_DEIT_PAPER, "DeiT-T-LIFE (paper: 5.62 M params, 1.27 GMACs with 100 classes)."),
    "deit_small_patch16_224": (_DEIT_PAPER, "DeiT-S-LIFE (paper: 21.85 M params, 4.64 GMACs with 100 classes)."),
    "deit_tiny_distilled_patch16_224": (_DEIT_PAPER, "DeiT-T with distillation token, LIFE (two prefix tokens)."),
    "swinv2_tiny_window8_256": (_SWINV2_PAPER, None),
}


def _timm_cfg(name: str, paper: str) -> dict[str, Any]:
    return {**timm.models.get_pretrained_cfg(name).to_dict(), "paper_ids": paper}


default_cfgs = generate_default_cfgs({
    **_SMALL_CFGS,
    **{f"{name}_life": life_cfg(cfg) for name, cfg in _SMALL_CFGS.items()},
    **{f"{name}_life": life_cfg(_timm_cfg(name, paper)) for name, (paper, _) in _TIMM_BASES.items()},
})


def _no_weights(name: str, pretrained: bool) -> None:
    if pretrained:
        raise ConfigError(
            f"{name} has no pretrained weights (the study trains it from scratch): use pretrained=False"
        )


def _create_deit(variant: str, pretrained: bool = False, distilled: bool = False, **kwargs: Any):
    """A timm DeiT of another size (no weights exist for the small-image variants)."""
    _no_weights(variant, pretrained)
    model_cls = VisionTransformerDistilled if distilled else VisionTransformer
    return build_model_with_cfg(
        model_cls, variant, pretrained=False,
        feature_cfg=dict(out_indices=kwargs.pop("out_indices", 3), feature_cls="getter"),
        **kwargs,
    )


def _create_life(
    variant: str, base: Any, pretrained: bool = False, life_kwargs: dict | None = None,
    feature_cfg: dict | None = None, **kwargs: Any,
):
    """``base`` (a timm model name, or a builder) converted to LIFE, built as timm builds its own
    models: the twin's cfg, and ``features_only=True`` / ``out_indices`` wrapping the converted
    model (timm's ``FeatureGetterNet`` for ViTs; pass ``feature_cfg`` for another family).

    With ``pretrained=True`` the base model's weights are loaded and LIFE is initialised
    fresh (LIFE has no pretrained weights of its own).
    """
    feature_cfg = dict(feature_cfg or dict(out_indices=3, feature_cls="getter"))
    feature_cfg["out_indices"] = kwargs.pop("out_indices", feature_cfg["out_indices"])

    def build(**model_kwargs: Any):
        if isinstance(base, str):
            model = timm.create_model(base, pretrained=pretrained, **model_kwargs)
        else:
            model = base(pretrained=pretrained, **model_kwargs)
        return apply_life(model, **(life_kwargs or {}))

    return build_model_with_cfg(build, variant, pretrained=False, feature_cfg=feature_cfg, **kwargs)


def _small(name: str, pretrained: bool = False, **kwargs: Any):
    dims, distilled, _ = _SMALL_MODELS[name]
    args = dict(img_size=64 if name.endswith("_64") else 32, patch_size=4, mlp_ratio=4, qkv_bias=True, **dims)
    return _create_deit(name, pretrained, distilled=distilled, **dict(args, **kwargs))


# ---- the small-image variants and their LIFE twins ------------------------------------------

for _name, (*_, _doc) in _SMALL_MODELS.items():
    _base = register(__name__, _name, partial(_small, _name), _doc)
    register(__name__, f"{_name}_life", partial(_create_life, f"{_name}_life", _base), f"``{_name}`` with LIFE.")


# ---- LIFE twins of timm's own models (paper sizes) -----------------------------------------

for _name, (_, _doc) in _TIMM_BASES.items():
    if _doc is not None:
        register(__name__, f"{_name}_life", partial(_create_life, f"{_name}_life", _name), _doc)
del _name, _doc, _base


@register_model
def swinv2_tiny_window8_256_life(pretrained: bool = False, **kwargs):
    """SwinV2-T with LIFE inside each 8x8 window (paper: 27.88 M params, 6.01 GMACs)."""
    depths = kwargs.get("depths", (2, 2, 6, 2))
    features = dict(flatten_sequential=True, out_indices=tuple(range(len(depths))))  # as timm's SwinV2
    return _create_life(
        "swinv2_tiny_window8_256_life", "swinv2_tiny_window8_256", pretrained, feature_cfg=features, **kwargs
    )
