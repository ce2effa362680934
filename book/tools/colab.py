"""The Colab set-up cell of every chapter, and its Colab copy: ``notebooks/NN_name.py`` ->
``notebooks/colab/NN_name.ipynb``.

The repository's address is written in one place, ``book/_config.yml`` (``repository.url``).
Each chapter's cell tagged ``colab`` installs the package from it when the notebook runs in
Colab (:func:`setup_cell` writes that cell), and does nothing elsewhere.

Colab opens ``.ipynb`` files from GitHub but not jupytext's ``.py`` notebooks, so each
chapter has a committed, output-free ``.ipynb`` twin; the book's Colab buttons open it
(``book/_ext/colab_launch.py``). The conversion is deterministic — cell ids are derived
from the cell's position, no timestamps or versions are written — so regenerating an
unchanged chapter changes nothing in git, and ``tests/test_notebooks.py`` can fail when a
copy drifts from its source.

Usage: ``python book/tools/colab.py [--check] notebooks/01_life_module.py ...``
(``make colab`` runs it on every chapter: it rewrites the set-up cells, then the copies).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat
import yaml

__all__ = ["CONFIG", "COLAB_TAG", "repository_url", "setup_cell", "with_setup_cell", "colab_notebook",
           "colab_path", "render", "main"]

CONFIG = Path(__file__).resolve().parents[1] / "_config.yml"
COLAB_TAG = "colab"
# The cell's tags: "remove-cell" keeps it out of the HTML book (it does nothing there);
# the Colab copies keep it, as every other cell.
_CELL_MARK = f'# %% tags=["{COLAB_TAG}", "remove-cell"]\n'


def repository_url(config: Path = CONFIG) -> str:
    """The repository's address, ``repository.url`` of the book's configuration."""
    return yaml.safe_load(config.read_text())["repository"]["url"].rstrip("/")


def setup_cell(url: str) -> str:
    """The source of the Colab set-up cell that installs the package from ``url``."""
    return (
        "import subprocess, sys  # noqa: E401  (`make colab` writes this cell from book/_config.yml)\n"
        "\n"
        'if "google.colab" in sys.modules:  # in Colab only: install the package from its repository\n'
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "lifestudy @ git+{url}"], check=True)\n'
    )


def with_setup_cell(text: str, url: str) -> str:
    """A jupytext percent chapter's text with its ``colab`` cell (there must be one) rewritten."""
    start = text.find(_CELL_MARK)
    if start < 0 or text.find(_CELL_MARK, start + 1) >= 0:
        raise ValueError(f"a chapter needs exactly one cell marked {_CELL_MARK.strip()!r}")
    body = start + len(_CELL_MARK)
    end = text.find("\n# %%", body)
    end = len(text) if end < 0 else end + 1
    return text[:body] + setup_cell(url) + "\n" + text[end:]


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
    url = repository_url()
    stale = []
    for source in args.sources:
        text = with_setup_cell(source.read_text(), url)
        if text != source.read_text():
            stale.append(source)
            if not args.check:
                source.write_text(text)
                print(f"wrote the set-up cell of {source}")
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
