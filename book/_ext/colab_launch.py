"""Point the book's "Colab" launch button at the committed Colab copy of each chapter.

sphinx-book-theme builds the Colab link from the page's own path
(``book/chapters/NN_name.ipynb``), but the executed chapters are build products and not
in git, so Colab could not open them. Each chapter has an output-free copy in
``notebooks/colab/NN_name.ipynb`` (``make colab``; ``tests/test_book.py`` checks they are
in sync); this extension rewrites the button to open that copy.

The link has the form sphinx-book-theme uses (``header_buttons/launch.py``):
``{colab_url}/github/{org}/{repo}/blob/{branch}/{path}``.
"""

from __future__ import annotations

from pathlib import PurePosixPath

__all__ = ["setup", "colab_link"]


def colab_link(colab_url: str, repo_url: str, branch: str, notebooks_path: str, pagename: str) -> str:
    """The Colab URL of the committed copy of the chapter ``pagename`` (e.g. ``chapters/01_x``)."""
    org, repo = repo_url.rstrip("/").split("github.com/")[-1].split("/")[:2]
    name = PurePosixPath(pagename).name
    path = f"{notebooks_path.strip('/')}/{name}.ipynb"
    return f"{colab_url.rstrip('/')}/github/{org}/{repo}/blob/{branch}/{path}"


def _rewrite(app, pagename, templatename, context, doctree):
    options = app.config.html_theme_options
    colab_url = options.get("launch_buttons", {}).get("colab_url")
    repo_url = options.get("repository_url")
    if not (colab_url and repo_url and "github.com/" in repo_url):
        return
    url = colab_link(
        colab_url,
        repo_url,
        options.get("repository_branch") or "main",
        app.config.colab_notebooks_path,
        pagename,
    )
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if button.get("text") == "Colab":
                button["url"] = url


def setup(app):
    app.add_config_value("colab_notebooks_path", "notebooks/colab", "html")
    # sphinx-book-theme adds its launch buttons at priority 501; rewrite after it.
    app.connect("html-page-context", _rewrite, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
