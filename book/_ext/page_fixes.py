"""Two fixes to the pages Jupyter Book 1.x writes, found by ``make book-check``.

- sphinx-thebe adds its configuration script once per read of the sources, and Jupyter
  Book reads them twice, so every page declared ``const THEBE_JS_URL`` twice: a script
  error in the browser on every page. Each script is kept once.
- pydata-sphinx-theme reads the colour mode from ``localStorage`` and falls back to the
  page's ``default_mode``, which Jupyter Book leaves empty: a console error ("Got invalid
  theme mode") on a reader's first visit. The fallback is "auto" (the theme's own default).
"""

from __future__ import annotations


def _fix_page(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if isinstance(scripts, list):
        # The two copies differ only in how "no file" is written (None, ""): keep the first
        # of each (file, attributes).
        seen, kept = set(), []
        for js in scripts:
            key = (getattr(js, "filename", js) or "", tuple(sorted(getattr(js, "attributes", {}).items())))
            if key not in seen:
                seen.add(key)
                kept.append(js)
        context["script_files"] = kept
    if not context.get("default_mode"):
        context["default_mode"] = "auto"


def setup(app):
    app.connect("html-page-context", _fix_page, priority=900)  # after the theme adds its scripts
    return {"parallel_read_safe": True, "parallel_write_safe": True}
