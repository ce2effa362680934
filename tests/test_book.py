"""The book: configuration, table of contents, and a strict build from the smoke chapters.

The build runs ``jupyter-book build -W -n --keep-going`` (as ``make book`` does) on a
copy of ``book/`` whose chapters are the notebooks ``tests/test_notebooks.py`` executed
in the smoke profile, and checks what a reader relies on: every chapter is a page, math
renders without a CDN, figures are image files, and each page's Colab button opens the
committed Colab copy of its chapter.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
pytest.importorskip("jupyter_book")

from test_notebooks import NAMES, NOTEBOOKS, ROOT, read, smoke_chapters, smoke_workdir  # noqa: E402

BOOK = ROOT / "book"


def config():
    return yaml.safe_load((BOOK / "_config.yml").read_text())


def toc_files():
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    return [ch["file"] for part in toc["parts"] for ch in part["chapters"]]


def test_toc_lists_every_chapter_in_order():
    """Every chapter once, in the book's order: that of ``profiles.CHAPTERS`` (chapter 10,
    the locality peers, reads chapter 2's runs and stands after chapter 4)."""
    from lifestudy.profiles import CHAPTERS

    chapters = [f for f in toc_files() if f.startswith("chapters/")]
    assert sorted(chapters) == [f"chapters/{n}" for n in NAMES]
    assert chapters == [f"chapters/{n}" for n in CHAPTERS if n in NAMES]


def test_config_executes_nothing_and_bundles_mathjax():
    cfg = config()
    assert cfg["execute"]["execute_notebooks"] == "off"  # papermill executes, the build only renders
    assert "sphinx-mathjax-offline" in cfg["sphinx"]["extra_extensions"]
    assert cfg["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert (BOOK / cfg["bibtex_bibfiles"][0]).exists()


def test_colab_set_up_installs_from_the_configured_repository():
    """The repository URL is written once (book/_config.yml); every set-up cell is written from it."""
    from test_notebooks import _load_colab_tool

    colab = _load_colab_tool()
    url = config()["repository"]["url"].rstrip("/")
    assert colab.repository_url() == url
    for path in NOTEBOOKS:
        setup = next(c for c in read(path).cells if "colab" in c.metadata.get("tags", []))
        assert f"git+{url}" in setup.source, f"{path.name}: set-up cell does not install from {url}"
        assert setup.source.strip() == colab.setup_cell(url).strip(), f"{path.name}: run `make colab`"


def test_make_colab_points_every_chapter_at_a_fork(tmp_path):
    """Changing repository.url and running the tool rewrites each set-up cell (what `make colab` does)."""
    from test_notebooks import _load_colab_tool

    colab = _load_colab_tool()
    text = NOTEBOOKS[0].read_text()
    fork = colab.with_setup_cell(text, "https://github.com/someone/lifestudy-fork")
    assert "git+https://github.com/someone/lifestudy-fork" in fork
    assert "git+" + config()["repository"]["url"].rstrip("/") not in fork
    assert colab.with_setup_cell(fork, config()["repository"]["url"].rstrip("/")) == text  # and back


def test_colab_link():
    sys.path.insert(0, str(BOOK / "_ext"))
    try:
        from colab_launch import colab_link
    finally:
        sys.path.remove(str(BOOK / "_ext"))
    assert colab_link("https://colab.research.google.com", "https://github.com/org/repo", "main",
                      "notebooks/colab", "chapters/01_life_module") == (
        "https://colab.research.google.com/github/org/repo/blob/main/notebooks/colab/01_life_module.ipynb")


def _tool(name: str):
    """A module of book/tools/ (they are scripts, not a package)."""
    sys.path.insert(0, str(BOOK / "tools"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BOOK / "tools"))


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    """Build the book strictly from the smoke-profile chapters; returns the HTML folder."""
    smoke = smoke_chapters(smoke_workdir(tmp_path_factory))
    failed = [name for name, (executed, error, _) in smoke.items() if error]
    if failed:
        pytest.fail(f"chapters failed in the smoke profile (see test_notebooks.py): {failed}")
    book = tmp_path_factory.mktemp("book") / "book"
    shutil.copytree(BOOK, book, ignore=shutil.ignore_patterns("_build", "chapters", "_executed", "__pycache__"))
    (book / "chapters").mkdir()
    for name, (executed, _, _) in smoke.items():
        _tool("chapters").prepare(executed, book / "chapters" / f"{name}.ipynb")
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
         "build", str(book), "--all", "-W", "-n", "--keep-going"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"jupyter-book build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return book / "_build" / "html"


@pytest.mark.slow
@pytest.mark.notebooks
def test_every_chapter_is_a_page(built_book):
    for name in NAMES:
        assert (built_book / "chapters" / f"{name}.html").exists(), name
    assert (built_book / "intro.html").exists() and (built_book / "index.html").exists()


@pytest.mark.slow
@pytest.mark.notebooks
def test_math_renders_without_a_cdn(built_book):
    pages = [p.read_text() for p in built_book.rglob("*.html")]
    assert not any(re.search(r"<script[^>]+src=\"https?://[^\"]*mathjax", p, re.I) for p in pages)
    assert any(re.search(r"<script[^>]+src=\"[^\"]*_static/[^\"]*mathjax[^\"]*\"", p, re.I) for p in pages)
    assert list((built_book / "_static").rglob("*tex-chtml*.js")) or list((built_book / "_static").rglob("*mathjax*"))


@pytest.mark.slow
@pytest.mark.notebooks
def test_figures_are_files(built_book):
    images = list((built_book / "_images").glob("*.png"))
    assert len(images) >= 5, "the chapters' figures should be PNG files in the build"
    for name in NAMES:
        assert "data:image/png;base64" not in (built_book / "chapters" / f"{name}.html").read_text()


@pytest.mark.slow
@pytest.mark.notebooks
def test_each_page_opens_its_colab_copy(built_book):
    url = config()["repository"]["url"].rstrip("/").split("github.com/")[-1]
    for name in NAMES:
        html = (built_book / "chapters" / f"{name}.html").read_text()
        link = f"https://colab.research.google.com/github/{url}/blob/main/notebooks/colab/{name}.ipynb"
        assert link in html, f"{name}: no Colab button to {link}"
        assert (ROOT / "notebooks" / "colab" / f"{name}.ipynb").exists()


@pytest.mark.slow
@pytest.mark.notebooks
def test_pages_name_profile_seeds_and_device(built_book):
    for name in NAMES:
        text = (built_book / "chapters" / f"{name}.html").read_text()
        assert "Numbers on this page:" in text and "smoke" in text and "seeds" in text and "device" in text


# --------------------------------------------------------------------------------------
# The tables the chapters show (lifestudy.report)


def test_mean_std_over_seeds_and_formatting():
    pd = pytest.importorskip("pandas")
    from lifestudy import report

    runs = pd.DataFrame({"model": ["a", "a", "a", "b"], "top1": [1.0, 2.0, 3.0, 5.0]})
    stats = report.mean_std(runs, "model", "top1")
    assert stats.loc["a", ("top1", "mean")] == 2.0
    assert stats.loc["a", ("top1", "std")] == 1.0  # sample std over seeds (ddof=1)
    assert stats.loc["b", ("top1", "std")] == 0.0  # one seed: no spread, not NaN
    table = report.format_mean_std(stats)
    assert table.loc["a", "top1"] == "2.00 ± 1.00" and table.loc["a", "seeds"] == 3
    assert table.loc["b", "top1"] == "5.00" and table.loc["b", "seeds"] == 1  # no "± 0.00"


def test_paper_columns_are_labelled_and_never_mixed_with_ours():
    pd = pytest.importorskip("pandas")
    from lifestudy import paper, report

    ours = pd.DataFrame({"GMACs": [1.3]}, index=["deit_tiny_patch16_224"])
    table = report.beside_paper(ours, paper.COMPLEXITY, {"gmacs": "GMACs"})
    assert list(table.columns) == ["GMACs", "GMACs (paper)"]
    assert table.loc["deit_tiny_patch16_224", "GMACs (paper)"] == paper.COMPLEXITY["deit_tiny_patch16_224"]["gmacs"]
    assert table.loc["deit_tiny_patch16_224", "GMACs"] == 1.3


def test_banner_and_captions_name_profile_seeds_and_device():
    from lifestudy import report

    banner = report.run_banner("cpu", [0, 1, 2], "cpu").data
    assert "`cpu`" in banner and "seeds 0, 1, 2" in banner and "device cpu" in banner
    assert report.caption("Accuracy", "smoke", [0]) == "Accuracy (profile smoke, seeds 0)"


# --------------------------------------------------------------------------------------
# `make book-check` (book/tools/check_book.py): the link check runs here; the browser part
# needs Chromium, which CI does not install, so it runs by hand.




def test_book_check_finds_broken_pages_and_anchors(tmp_path):
    check_book = _tool("check_book")
    (tmp_path / "chapters").mkdir()
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "skipped.html").write_text('<a href="missing.html">asset page</a>')
    (tmp_path / "index.html").write_text(
        '<h1 id="top">t</h1><a href="chapters/a.html#sec">ok</a><a href="#top">ok</a>'
        '<a href="https://example.org/x">external</a><a href="chapters/b.html">gone</a>')
    (tmp_path / "chapters" / "a.html").write_text(
        '<section id="sec"></section><a href="../index.html#nowhere">bad anchor</a>')
    pages = check_book.pages(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in pages] == ["chapters/a.html", "index.html"]
    problems = check_book.broken_links(tmp_path, pages)
    assert problems == [
        "chapters/a.html: broken link '../index.html#nowhere' (no anchor #nowhere)",
        "index.html: broken link 'chapters/b.html' (no chapters/b.html)",
    ]


@pytest.mark.slow
@pytest.mark.notebooks
def test_internal_links_of_the_built_book_resolve(built_book):
    check_book = _tool("check_book")
    assert check_book.broken_links(built_book, check_book.pages(built_book)) == []


@pytest.mark.slow
@pytest.mark.notebooks
def test_injected_parameters_are_folded_away(built_book):
    """papermill's parameters cell is hidden behind a toggle on every chapter page, not removed."""
    for name in NAMES:
        html = (built_book / "chapters" / f"{name}.html").read_text()
        cells = re.findall(r'<div class="cell([^"]*)"', html)
        injected = [c for c in cells if "tag_injected-parameters" in c]
        assert injected and all("tag_hide-input" in c for c in injected), name


# --------------------------------------------------------------------------------------
# What a reader of the built pages sees first, and what they never see


def _machine_paths(book_html: Path) -> list[str]:
    """Absolute paths of this machine that a built page must not show."""
    import tempfile

    found = {str(ROOT), str(ROOT.resolve()), str(book_html.parent.parent), sys.prefix,
             str(Path(sys.prefix).resolve()), str(Path(tempfile.gettempdir()) / "pytest-of-")}
    home = str(Path.home())
    if len(home) > 5:  # "/root" is also a word of prose; a longer home is a path
        found.add(home)
    return sorted(p for p in found if len(p) > 5)


@pytest.mark.slow
@pytest.mark.notebooks
def test_no_path_of_the_build_machine_in_the_built_pages(built_book):
    """Inputs and outputs alike: the pages and the notebooks offered for download."""
    paths = _machine_paths(built_book)
    files = [*built_book.rglob("*.html"), *built_book.glob("_sources/**/*.ipynb")]
    assert any(f.name == "09_results.html" for f in files)
    leaks = [(f.relative_to(built_book).as_posix(), p) for f in files for p in paths if p in f.read_text()]
    assert not leaks, f"machine paths in the built book: {leaks[:5]}"


@pytest.mark.slow
@pytest.mark.notebooks
def test_pages_open_with_key_results_and_hide_the_set_up(built_book):
    for name in NAMES:
        html = (built_book / "chapters" / f"{name}.html").read_text()
        box = html.find('class="admonition tip key-results"')
        assert 0 < box < html.find("Numbers on this page:"), f"{name}: key results are not the page's first block"
        assert box < html.find("<h2", html.find("<article")), f"{name}: key results come after a section"
        assert "google.colab" not in html, f"{name}: the Colab cell is in the HTML"
        cells = re.findall(r'<div class="cell([^"]*)"', html)
        for tag in ("tag_parameters", "tag_injected-parameters"):
            tagged = [c for c in cells if tag in c]
            assert tagged and all("tag_hide-input" in c for c in tagged), (name, tag)


@pytest.mark.slow
@pytest.mark.notebooks
def test_the_scorecard_is_on_the_results_page_and_linked_from_the_front_page(built_book):
    import html as html_module

    from lifestudy.scorecard import CLAIMS

    html = (built_book / "chapters" / "09_results.html").read_text()
    assert 'id="claims-scorecard"' in html
    table = html[html.find('class="dataframe scorecard"'):]
    table = table[:table.find("</table>")]
    assert table.count("<tr") == len(CLAIMS) + 1  # a header row and one per claim
    for claim in CLAIMS:
        assert html_module.escape(claim.text) in table
    assert "chapters/09_results.html#claims-scorecard" in (built_book / "intro.html").read_text()


@pytest.mark.slow
@pytest.mark.notebooks
def test_figures_have_numbered_captions(built_book):
    """Every chapter that plots (1-8) shows its figures with a numbered caption (MyST figure)."""
    for name in [n for n in NAMES if n[:2] <= "08"]:
        html = (built_book / "chapters" / f"{name}.html").read_text()
        assert "<figcaption" in html and re.search(r"Fig\. \d+", html), f"{name}: a figure without a numbered caption"
