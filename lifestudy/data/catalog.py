"""Datasets by name: where each lives under the data root, how to check it, build it, get it.

Every dataset of the study is a :class:`Source`. A source knows its :class:`DatasetSpec`,
the folder it occupies under the data root, the layout it expects there (shown, with the
way to get it, in every error), how to validate that layout *before* a library touches it
(so users read our message, not a library's traceback), and how to build its splits.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lifestudy.data.spec import SPECS, DatasetSpec
from lifestudy.errors import DatasetError

__all__ = ["Source", "register_source", "get_source", "SOURCES", "default_root", "SPLITS"]

SPLITS = ("train", "test")
_REPO_ROOT = Path(__file__).resolve().parents[2]

#: name -> Source, filled by the modules that define the sources.
SOURCES: dict[str, "Source"] = {}


def default_root() -> Path:
    """The data root: ``$LIFESTUDY_DATA`` when set, else ``<repo>/data``."""
    env = os.environ.get("LIFESTUDY_DATA")
    return Path(env).expanduser() if env else _REPO_ROOT / "data"


def register_source(cls):
    """Class decorator: instantiate a :class:`Source` and list it under each of its names."""
    source = cls()
    for name in source.names:
        SOURCES[name] = source
    return cls


def get_source(name: str) -> "Source":
    if name not in SOURCES:
        known = ", ".join(sorted(SOURCES))
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {known}")
    return SOURCES[name]


class Source:
    """One dataset (or a family, e.g. scenes-det/-seg) on disk or generated.

    Subclasses set ``names``, ``folder`` (under the data root; None when nothing is on
    disk), ``layout`` and ``how_to_get``, and implement :meth:`validate` and :meth:`build`.
    """

    names: tuple[str, ...] = ()
    folder: str | None = None
    layout: str = ""
    how_to_get: str = ""
    #: files or folders that identify the dataset's own folder, for "wrong root" hints
    markers: tuple[str, ...] = ()

    def spec(self, name: str, root: Path | None = None) -> DatasetSpec:
        return SPECS[name]

    # -- errors ----------------------------------------------------------------------
    def error(self, name: str, root: Path, problem: str) -> DatasetError:
        """A DatasetError naming the dataset, the problem, the layout expected and the fix."""
        lines = [f"dataset {name!r}: {problem}"]
        hint = self._wrong_root_hint(root)
        if not root.exists():
            hint = (f"the data root {root} does not exist; pass --root DIR (the folder holding "
                    "the datasets) or set LIFESTUDY_DATA")
        if hint:
            lines.append(hint)
        if self.layout:
            lines.append(f"expected layout under {root}:")
            lines.extend("    " + line for line in self.layout.strip("\n").splitlines())
        if self.how_to_get:
            lines.append("to get it: " + self.how_to_get.format(name=name, root=root))
        return DatasetError("\n".join(lines))

    def _wrong_root_hint(self, root: Path) -> str:
        if self.folder is None:
            return ""
        if root.name == self.folder or any((root / m).exists() for m in self.markers):
            return (f"--root {root} looks like the dataset's own folder; the root is the "
                    f"folder that contains {self.folder}/, i.e. --root {root.parent}")
        return ""

    def path(self, root: Path) -> Path:
        return root / self.folder if self.folder else root

    def require_dir(self, name: str, root: Path, path: Path, what: str) -> Path:
        if not path.is_dir():
            raise self.error(name, root, f"{what} not found: {path}")
        return path

    def require_file(self, name: str, root: Path, path: Path, what: str) -> Path:
        if not path.is_file():
            raise self.error(name, root, f"{what} not found: {path}")
        if path.stat().st_size == 0:
            raise self.error(name, root, f"{what} is empty (interrupted download or extraction?): {path}")
        return path

    # -- the interface -----------------------------------------------------------------
    def validate(self, name: str, root: Path, deep: bool | str = False) -> None:
        """Raise a DatasetError unless the data for ``name`` is usable under ``root``.

        Args:
            deep: False checks the layout (folders, split files, every listed file exists);
                True also opens a few files per class or split (``lifestudy data check``);
                "full" opens every file (``lifestudy data check --full``).
        """

    def build(self, name: str, root: Path, split: str, transform=None, **options: Any):
        raise NotImplementedError

    def fetch(self, name: str, root: Path) -> str:
        """Download or link what can be; return a message. Default: manual steps only."""
        self.validate(name, root)
        return f"{name}: already in place under {root}"

    def fetch_by(self, name: str, root: Path, download, done: str = "downloaded", deep: bool = False,
                 fix: str = "") -> str:
        """Fetch with ``download()`` (torchvision's downloaders), unless :meth:`validate` (with
        ``deep``) already passes; validate again after it. A failed download raises a
        DatasetError with the error and ``fix``; return a message saying what was done."""
        try:
            self.validate(name, root, deep=deep)
            return f"{name}: already in place under {self.path(root)}"
        except DatasetError:
            pass
        try:
            download()
        except Exception as err:  # urllib / socket / zip errors differ across versions
            raise self.error(name, root, f"download failed ({err.__class__.__name__}: {err}){fix}") from None
        self.validate(name, root, deep=deep)
        return f"{name}: {done} into {self.path(root)}"

    def describe(self, name: str, root: Path) -> str:
        """One line for ``lifestudy data check``: splits, sizes, classes (the root as
        :func:`lifestudy.records.display_path` shows it)."""
        from lifestudy.records import display_path

        parts = []
        for split in SPLITS:
            ds = self.build(name, root, split)
            parts.append(f"{split} {len(ds)}")
        spec = self.spec(name, root)
        return (f"{name}: ok ({', '.join(parts)}; {spec.num_classes} classes; {spec.task}; "
                f"input {spec.input_size[0]}x{spec.input_size[1]}x{spec.in_chans}) under {display_path(root)}")
