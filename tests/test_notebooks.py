"""The study's notebooks: their anatomy, their Colab copies, and a smoke-profile execution.

Every chapter (``notebooks/NN_name.py``, jupytext percent format) is executed with
papermill in the ``smoke`` profile, into a temporary folder; ``tests/test_book.py`` then
builds the book from those executed notebooks. The execution is shared between the two
files (:func:`smoke_chapters`), so each notebook runs once per test session.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import os
import re
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

try:
    import fcntl
except ImportError:  # not POSIX: no cross-process lock (xdist users there pay twice)
    fcntl = None

jupytext = pytest.importorskip("jupytext")
nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
NAMES = [p.stem for p in NOTEBOOKS]
# Every chapter takes the same parameters (papermill's -p NAME VALUE), some after others.
REQUIRED_PARAMETERS = {"profile", "device", "seeds", "data_root", "out_dir", "reuse_runs"}


def _load_colab_tool():
    spec = importlib.util.spec_from_file_location("book_colab", ROOT / "book" / "tools" / "colab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read(path: Path):
    return jupytext.read(path)


def parameters_cell(nb):
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"expected exactly one cell tagged 'parameters', found {len(cells)}"
    return cells[0]


def assigned_names(source: str) -> dict[str, object]:
    """Names a cell assigns, with their literal values."""
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    try:
                        out[target.id] = ast.literal_eval(node.value)
                    except ValueError:
                        out[target.id] = ...
    return out


def test_chapters_are_numbered_one_to_n():
    assert [n[:2] for n in NAMES] == [f"{i:02d}" for i in range(1, len(NAMES) + 1)], NAMES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_parameters_cell_has_the_required_names(path):
    names = assigned_names(parameters_cell(read(path)).source)
    assert REQUIRED_PARAMETERS <= set(names), REQUIRED_PARAMETERS - set(names)
    # The defaults are the book's: the cpu profile, paths left to the chapter.
    assert names["profile"] == "cpu"
    assert names["out_dir"] is None and names["data_root"] is None and names["seeds"] is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_anatomy(path):
    """Title; what you will do, learn and need; Colab-only set-up; imports; parameters;
    sections; a summary computed from the records."""
    nb = read(path)
    cells = nb.cells
    title = cells[0]
    assert title.cell_type == "markdown"
    number = int(path.stem[:2])
    assert re.match(rf"# {number}\. \S", title.source), title.source[:60]
    for part in ("What you will do", "What you will learn", "What you need"):
        assert part in title.source, f"{path.name}: the title cell must say '{part}'"
    params = cells.index(parameters_cell(nb))
    setup = [i for i, c in enumerate(cells) if "colab" in c.metadata.get("tags", [])]
    assert len(setup) == 1 and setup[0] < params, "one Colab set-up cell (tagged 'colab') before the parameters"
    assert 'if "google.colab" in sys.modules:' in cells[setup[0]].source  # it does nothing outside Colab
    imports = [i for i, c in enumerate(cells) if c.cell_type == "code" and "import lifestudy" in c.source
               or c.cell_type == "code" and "from lifestudy" in c.source]
    assert imports and imports[0] < params, "imports come before the parameters cell"
    sections = [c for c in cells[params:] if c.cell_type == "markdown" and c.source.startswith("## ")]
    assert len(sections) >= 2
    assert sections[-1].source.strip() == "## Summary"
    assert "report.summary(" in cells[-1].source, "the last cell prints the summary from the records"
    # The chapter is set up in one call, right after its parameters, and says what its numbers are.
    setup_call = cells[params + 1].source
    assert f'chapters.setup("{path.stem}", profile, seeds, ' in setup_call
    assert "chap.banner(" in setup_call
    # The book opens with narration and results: the set-up is folded away (Colab cell removed,
    # imports, parameters and set-up call behind a toggle), the Colab copies keep every cell.
    tags = lambda i: cells[i].metadata.get("tags", [])  # noqa: E731
    assert "remove-cell" in tags(setup[0])
    assert all("hide-input" in tags(i) for i in (imports[0], params, params + 1)), "hide the set-up's input"
    # A key-results box, computed from the records at the end and shown first in the book
    # (book/tools/chapters.py moves it), before the summary.
    key = [i for i, c in enumerate(cells) if "key-results" in c.metadata.get("tags", [])]
    assert len(key) == 1 and "chap.key_results(" in cells[key[0]].source and "remove-input" in tags(key[0])
    assert key[0] < len(cells) - 2, "the key results come before the summary"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_colab_copy_is_in_sync_and_has_no_outputs(path):
    colab = _load_colab_tool()
    target = colab.colab_path(path)
    assert target.exists(), f"{target} is missing: run `make colab`"
    assert target.read_text() == colab.render(path), f"{target} is out of date: run `make colab`"
    nb = nbformat.read(target, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_no_executed_notebooks_in_the_sources():
    """Outputs never live in git: the only .ipynb files under notebooks/ are the Colab copies."""
    stray = [p for p in (ROOT / "notebooks").rglob("*.ipynb")
             if p.parent.name != "colab" and ".ipynb_checkpoints" not in p.parts]
    assert not stray, stray
    assert {p.stem for p in (ROOT / "notebooks" / "colab").glob("*.ipynb")} == set(NAMES)


# --------------------------------------------------------------------------------------
# Execution in the smoke profile (shared with tests/test_book.py)


@contextmanager
def _inline_plots():
    """The kernel inherits our environment: let it draw with the inline backend (the
    test suite sets MPLBACKEND=Agg, under which plt.show() would output nothing)."""
    old = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = old


def smoke_workdir(tmp_path_factory) -> Path:
    """Where the smoke chapters are executed: one folder per test session, shared by
    pytest-xdist workers (which would otherwise each execute every chapter)."""
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run_id:
        return Path(tempfile.gettempdir()) / f"lifestudy-smoke-book-{run_id}"
    return tmp_path_factory.getbasetemp() / "smoke-book"


@functools.lru_cache(maxsize=None)
def smoke_chapters(workdir: Path) -> dict[str, tuple[Path | None, str | None, float]]:
    """Execute every chapter in the smoke profile into ``workdir`` (once: later calls,
    also from other processes, read the results back).

    Returns ``{name: (executed notebook or None, error message or None, seconds)}``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / ".lock", "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        done = workdir / "results.json"
        if not done.exists():
            results = _execute_all(workdir)
            done.write_text(json.dumps({k: [str(v[0]) if v[0] else None, v[1], v[2]] for k, v in results.items()}))
        saved = json.loads(done.read_text())
    return {k: (Path(v[0]) if v[0] else None, v[1], v[2]) for k, v in saved.items()}


def _execute_all(workdir: Path) -> dict[str, tuple[Path | None, str | None, float]]:
    """Execute the chapters as ``make book`` does: in the book's order (chapter 9, which
    reads every other chapter's records, last), from the repository's root, with the run
    folders passed relative to it (``runs/.smoke-<id>/NN_name``: a link to ``workdir``,
    removed afterwards), so no path of this machine reaches the executed notebooks."""
    from lifestudy.profiles import CHAPTERS

    order = {name: i for i, name in enumerate(CHAPTERS)}
    link = ROOT / "runs" / f".smoke-{os.getpid()}-{workdir.name}"
    link.parent.mkdir(exist_ok=True)
    (workdir / "runs").mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        link.unlink()
    link.symlink_to(workdir / "runs", target_is_directory=True)
    try:
        return _execute(sorted(NOTEBOOKS, key=lambda p: order.get(p.stem, len(order))), workdir,
                        link.relative_to(ROOT))
    finally:
        link.unlink()


def _execute(notebooks, workdir: Path, runs: Path) -> dict[str, tuple[Path | None, str | None, float]]:
    import papermill

    results = {}
    for path in notebooks:
        src = workdir / "src" / f"{path.stem}.ipynb"
        out = workdir / "executed" / f"{path.stem}.ipynb"
        src.parent.mkdir(parents=True, exist_ok=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        jupytext.write(read(path), src)
        start = time.perf_counter()
        try:
            with _inline_plots():
                papermill.execute_notebook(
                    str(src), str(out), kernel_name="python3", cwd=str(ROOT), progress_bar=False,
                    parameters={"profile": "smoke", "device": "cpu", "out_dir": str(runs / path.stem)},
                )
            results[path.stem] = (out, None, time.perf_counter() - start)
        except Exception as err:  # noqa: BLE001 (reported by the per-notebook test)
            results[path.stem] = (None, f"{type(err).__name__}: {err}", time.perf_counter() - start)
    return results


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    return smoke_chapters(smoke_workdir(tmp_path_factory))


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize("name", NAMES)
def test_chapter_executes_in_smoke_profile(smoke, name):
    executed, error, seconds = smoke[name]
    assert error is None, f"{name} failed in the smoke profile after {seconds:.0f} s:\n{error[-3000:]}"
    nb = nbformat.read(executed, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    text = "".join(
        o.get("data", {}).get("text/markdown", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
    # Every chapter names the profile, the seeds and the device its numbers came from.
    assert "profile `smoke`" in text and "seeds" in text and "device" in text
    # ... and ends with a summary (a Markdown list computed from its records).
    last = nb.cells[-1].outputs
    assert any(o.get("data", {}).get("text/markdown", "").startswith("- ") for o in last)
