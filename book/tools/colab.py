"""The Colab copies of the chapters: ``notebooks/NN_name.py`` -> ``notebooks/colab/NN_name.ipynb``.

Colab opens ``.ipynb`` files from GitHub but not jupytext's ``.py`` notebooks, so each
chapter has a committed, output-free ``.ipynb`` twin; the book's Colab buttons open it
(``book/_ext/colab_launch.py``). The conversion is deterministic — cell ids are derived
from the cell's position, no timestamps or versions are written — so regenerating an
unchanged chapter changes nothing in git, and ``tests/test_notebooks.py`` can fail when a
copy drifts from its source.

Usage: ``python book/tools/colab.py [--check] notebooks/01_life_module.py ...``
(``make colab`` runs it on every chapter).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat

__all__ = ["colab_notebook", "colab_path", "render", "main"]


def colab_path(source: Path) -> Path:
    """Where the Colab copy of ``notebooks/NN_name.py`` lives."""
    return source.parent / "colab" / f"{source.stem}.ipynb"


def colab_notebook(source: Path) -> nbformat.NotebookNode:
    """The output-free notebook of a jupytext ``.py`` chapter, with stable cell ids."""
    nb = jupytext.read(source)
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["colab"] = {"provenance": [], "name": f"{source.stem}.ipynb"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{source.stem[:2]}-cell-{i:02d}"
        if cell.cell_type == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    nbformat.validate(nb)
    return nb


def render(source: Path) -> str:
    """The Colab copy's file content."""
    return nbformat.writes(colab_notebook(source), version=4) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", type=Path, help="notebooks/NN_name.py files")
    parser.add_argument("--check", action="store_true", help="only report copies that are out of date")
    args = parser.parse_args(argv)
    stale = []
    for source in args.sources:
        target, text = colab_path(source), render(source)
        if target.exists() and target.read_text() == text:
            continue
        stale.append(target)
        if not args.check:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            print(f"wrote {target}")
    if args.check and stale:
        print("out of date (run `make colab`): " + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
