"""Copy executed chapters into the book, with papermill's parameters cell folded away.

papermill adds to each executed chapter a cell tagged ``injected-parameters`` with the
values ``make book`` passed (profile, device, seeds, data and run folders). A reader of
the HTML book wants them on demand, not as the first thing on the page: the copy in
``book/chapters/`` gives that cell Jupyter Book's ``hide-input`` tag (a "show" toggle
keeps it one click away). A chapter's "key results" box is computed at its end, from its
records, by the cell tagged ``key-results``; the copy moves that cell to just after the
title cell (what you will do, learn, need), so the page opens with its results. The
executed notebooks under ``book/_executed/`` and the Colab copies keep every cell as it
is, in its place. papermill's record of the files it read and wrote (this machine's paths)
is left out of the copy.

Usage: ``python book/tools/chapters.py DEST_DIR EXECUTED.ipynb ...`` (``make book`` runs it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

#: papermill's tag on the cell it injects, and the Jupyter Book tag that folds its input.
INJECTED, HIDE_INPUT = "injected-parameters", "hide-input"
#: The tag of the cell whose output is the chapter's key-results box.
KEY_RESULTS = "key-results"


def results_first(cells: list) -> list:
    """``cells`` with those tagged ``key-results`` moved to just after the first (title) cell."""
    key = [c for c in cells if KEY_RESULTS in c.metadata.get("tags", [])]
    rest = [c for c in cells if KEY_RESULTS not in c.metadata.get("tags", [])]
    return rest[:1] + key + rest[1:]


def prepare(executed: str | Path, dest: str | Path) -> Path:
    """Write ``executed`` to ``dest`` (a folder or a file path) with the injected cell hidden."""
    executed, dest = Path(executed), Path(dest)
    if dest.is_dir():
        dest = dest / executed.name
    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if INJECTED in tags and HIDE_INPUT not in tags:
            tags.append(HIDE_INPUT)
    nb.cells = results_first(nb.cells)
    for key in ("input_path", "output_path"):  # where papermill read and wrote it: this machine's files
        nb.metadata.get("papermill", {}).pop(key, None)
    tmp = dest.with_name(f".{dest.name}.tmp")
    nbformat.write(nb, tmp)
    tmp.replace(dest)
    return dest


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: chapters.py DEST_DIR EXECUTED.ipynb ...", file=sys.stderr)
        return 2
    dest = Path(argv[0])
    dest.mkdir(parents=True, exist_ok=True)
    for path in argv[1:]:
        prepare(path, dest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
