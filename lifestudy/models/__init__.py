"""The study's model zoo, registered in timm's registry on ``import lifestudy``.

- :mod:`lifestudy.models.vit` — small-image DeiT variants and the ``<base>_life`` twins of
  DeiT-T/S (also distilled) and SwinV2-T;
- :mod:`lifestudy.models.t2t_vit` — T2T-ViT-12 (Yuan et al. 2021; not in timm) and its twin.

ResNet-18/50 baselines are timm's own ``resnet18`` / ``resnet50``.
"""

import timm

from lifestudy.errors import ConfigError
from lifestudy.models import t2t_vit, vit  # noqa: F401  (registration side effects)
from lifestudy.models import spt_lsa  # noqa: F401  (SPT + LSA peer)
from lifestudy.models import localvit  # noqa: F401  (LocalViT peer)
from lifestudy.models import cvt_proj  # noqa: F401  (CvT convolutional-projection peer)
from lifestudy.models import convit  # noqa: F401  (ConViT at the study size)
from lifestudy.models.t2t_vit import T2TEmbed

__all__ = ["LIFE_MODELS", "BASELINES", "T2TEmbed", "life_twin", "baseline_of", "build_classifier"]

#: every registered LIFE model name
LIFE_MODELS: list[str] = sorted(
    [n for n in vit.__all__ if n.endswith("_life")] + [n for n in t2t_vit.__all__ if n.endswith("_life")]
)
#: the baseline of each LIFE model
BASELINES: dict[str, str] = {name: name[: -len("_life")] for name in LIFE_MODELS}


def life_twin(name: str) -> str:
    """``deit_tiny_patch4_32`` -> ``deit_tiny_patch4_32_life`` (raises if there is none)."""
    twin = name if name.endswith("_life") else f"{name}_life"
    if twin not in BASELINES:
        raise ConfigError(f"no LIFE twin registered for {name!r}; known: {', '.join(LIFE_MODELS)}")
    return twin


def baseline_of(name: str) -> str:
    """``deit_tiny_patch4_32_life`` -> ``deit_tiny_patch4_32``."""
    return BASELINES[life_twin(name)]


def build_classifier(model_name: str, num_classes: int, in_chans: int, img_size, drop_path: float = 0.0):
    """``timm.create_model`` with the dataset's classes, channels and input size.

    Models without an ``img_size`` argument (CNNs such as ``resnet18``) get none.
    """
    kwargs = dict(num_classes=num_classes, in_chans=in_chans, drop_path_rate=drop_path)
    if not timm.is_model(model_name):
        raise ConfigError(
            f"unknown model {model_name!r}; see `timm.list_models()` for timm's models and "
            "lifestudy's names such as deit_tiny_patch4_32_life, deit_micro_patch4_32, resnet18"
        )
    try:
        return timm.create_model(model_name, img_size=tuple(img_size), **kwargs)
    except TypeError as err:
        if "img_size" not in str(err):
            raise
        return timm.create_model(model_name, **kwargs)
