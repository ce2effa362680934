"""Entrypoints in timm's registry, made from a table instead of written out one by one.

timm finds a model by the name of its entrypoint function and the function's pretrained
cfg in the ``default_cfgs`` of the function's module (``timm.models.register_model``).
:func:`register` makes such a function, named ``name`` and placed in ``module``, so the
study's many same-shaped variants (small-image DeiTs, their LIFE twins, the locality
peers) are rows of a table and still plain timm models: ``timm.create_model(name)``,
``timm.list_models``, ``pretrained_cfg`` all work as for timm's own.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from timm.models import register_model

__all__ = ["register"]


def register(module: str, name: str, create: Callable[..., Any], doc: str) -> Callable[..., Any]:
    """Register ``create(pretrained=False, **kwargs)`` in timm's registry as the entrypoint
    ``module.name``; the function is also set as that module's attribute and returned."""

    def entrypoint(pretrained: bool = False, **kwargs: Any) -> Any:
        return create(pretrained=pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__module__, entrypoint.__doc__ = module, doc
    setattr(sys.modules[module], name, entrypoint)
    return register_model(entrypoint)
