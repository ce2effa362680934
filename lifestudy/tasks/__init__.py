"""Tasks the engine trains: each one a :class:`~lifestudy.tasks.base.Task` registered by name.

``classification`` lives in :mod:`lifestudy.tasks.classification`; ``detection`` and
``segmentation`` in :mod:`lifestudy.tasks.detection` / :mod:`lifestudy.tasks.segmentation`.
"""

from __future__ import annotations

import importlib

from lifestudy.errors import ConfigError
from lifestudy.tasks.base import Task

__all__ = ["Task", "TASKS", "register_task", "get_task", "task_names"]

#: name -> Task subclass
TASKS: dict[str, type[Task]] = {}

# Modules that register tasks when imported, in the order `--task` lists them.
_TASK_MODULES = ("classification", "detection", "segmentation")


def register_task(name: str):
    """Class decorator: register a :class:`Task` subclass under ``name``."""

    def deco(cls: type[Task]) -> type[Task]:
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise TypeError(f"register_task({name!r}) expects a Task subclass, got {cls!r}")
        cls.name = name
        TASKS[name] = cls
        return cls

    return deco


def _import_task_modules() -> None:
    for module in _TASK_MODULES:
        try:
            importlib.import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as err:
            # Only a missing task module itself is tolerated (the dense tasks are
            # optional while they are being written); a missing dependency is not.
            if err.name != f"{__name__}.{module}":
                raise


def task_names() -> list[str]:
    _import_task_modules()
    return list(TASKS)


def get_task(name: str) -> Task:
    """A fresh instance of the task registered as ``name``."""
    _import_task_modules()
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; choose one of: {', '.join(TASKS) or '(none)'}")
    return TASKS[name]()
