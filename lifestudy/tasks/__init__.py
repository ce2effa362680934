"""Tasks the engine trains: each one a :class:`~lifestudy.tasks.base.Task` registered by name.

``classification`` lives in :mod:`lifestudy.tasks.classification`; ``detection`` and
``segmentation`` in :mod:`lifestudy.tasks.detection` / :mod:`lifestudy.tasks.segmentation`.
Each registers itself with :func:`~lifestudy.tasks.base.register_task` when imported (here).
"""

from __future__ import annotations

from lifestudy.errors import ConfigError
from lifestudy.tasks import classification, detection, segmentation  # noqa: F401  (register the tasks)
from lifestudy.tasks.base import TASKS, Task, register_task

__all__ = ["Task", "TASKS", "register_task", "get_task", "task_names"]


def task_names() -> list[str]:
    return list(TASKS)


def get_task(name: str) -> Task:
    """A fresh instance of the task registered as ``name``."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    return TASKS[name]()
