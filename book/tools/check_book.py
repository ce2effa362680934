"""Open every page of the built book in headless Chromium and report what a reader would hit.

``make book-check`` runs it on ``book/_build/html`` (build the book first). Each page is
served from a local HTTP server (as a host would serve it) and loaded in the Debian
package's Chromium through Playwright, with every request that leaves localhost blocked:
the book must read offline. A page fails on

- a console error or an uncaught script error;
- a request that failed or answered >= 400 (a missing image, script or style sheet),
  or any request to another host (the book would not work offline);
- an image that did not load (``naturalWidth == 0``);
- math left unrendered: an element Sphinx marks as math (``.math``) with no MathJax
  output inside it once MathJax has finished;
- an internal link to a page or an anchor that does not exist.

Prints one line per problem (``page: problem``) and a summary; exit status 1 when there
is any problem, 2 when the check cannot run (no build, no Chromium, no Playwright).

Usage: ``python book/tools/check_book.py [BUILD_DIR] [--chromium PATH]``.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlparse

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BUILD = ROOT / "book" / "_build" / "html"
#: Folders of a Sphinx build that hold assets and search data, not pages a reader opens.
SKIP_DIRS = {"_static", "_sources", "_images", "_sphinx_design_static", "_panels_static"}
#: Chromium flags for a closed network (no background connections, no sandbox as root).
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
#: Waits for MathJax (when the page loads it) to finish typesetting, then lists the
#: math elements with no rendered output.
UNRENDERED_MATH_JS = """
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const math = Array.from(document.querySelectorAll('.math'));
  return math.filter(el => !el.querySelector('mjx-container, .MathJax, svg'))
             .map(el => el.textContent.trim().slice(0, 60));
}
"""
BROKEN_IMAGES_JS = """
() => Array.from(document.images)
        .filter(img => !(img.complete && img.naturalWidth > 0))
        .map(img => img.getAttribute('src'))
"""


class CheckError(Exception):
    """The check cannot run (exit status 2)."""


class _Anchors(HTMLParser):
    """Collects a page's ids (link targets) and internal hrefs."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])


def pages(build: Path) -> list[Path]:
    """The book's HTML pages (assets and search data excluded), sorted."""
    return sorted(p for p in build.rglob("*.html")
                  if not SKIP_DIRS.intersection(p.relative_to(build).parts))


def broken_links(build: Path, page_list: list[Path]) -> list[str]:
    """Internal links (``page.html#anchor``) whose page or anchor does not exist."""
    parsed: dict[Path, _Anchors] = {}

    def anchors(path: Path) -> _Anchors:
        if path not in parsed:
            parser = _Anchors()
            parser.feed(path.read_text(encoding="utf-8", errors="replace"))
            parsed[path] = parser
        return parsed[path]

    problems = []
    for page in page_list:
        rel = page.relative_to(build).as_posix()
        for href in anchors(page).hrefs:
            if urlparse(href).scheme or href.startswith(("//", "mailto:", "javascript:")):
                continue  # external (checked by hand, not offline)
            target, fragment = urldefrag(urljoin(rel, href))
            target_path = build / unquote(target) if target else page
            if target_path.is_dir():
                target_path = target_path / "index.html"
            if not target_path.is_file():
                problems.append(f"{rel}: broken link {href!r} (no {target})")
            elif fragment and target_path.suffix == ".html" and unquote(fragment) not in anchors(target_path).ids:
                problems.append(f"{rel}: broken link {href!r} (no anchor #{fragment})")
    return problems


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the build folder without a log line per request."""

    def log_message(self, *args):
        pass


def browser_problems(build: Path, page_list: list[Path], chromium: str) -> list[str]:
    """What Chromium reports on each page (console, requests, images, math)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise CheckError("Playwright is not installed; install the check extra: "
                         "pip install -e '.[check]' (make book-check does it)") from None

    handler = functools.partial(_QuietHandler, directory=str(build))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    problems: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            context = browser.new_context()
            # Offline: anything that leaves the local server is a problem and is not fetched.
            context.route("**/*", lambda route: route.continue_()
                          if route.request.url.startswith(base) else route.abort())
            for page_path in page_list:
                rel = page_path.relative_to(build).as_posix()
                found: list[str] = []
                page = context.new_page()
                page.on("console", lambda m, f=found: f.append(f"console {m.type}: {m.text}")
                        if m.type == "error" else None)
                page.on("pageerror", lambda e, f=found: f.append(f"script error: {e}"))
                page.on("requestfailed", lambda r, f=found: f.append(
                    f"request to another host (book must read offline): {r.url}"
                    if not r.url.startswith(base) else f"request failed: {r.url[len(base):]}"))
                page.on("response", lambda r, f=found: f.append(
                    f"HTTP {r.status}: {r.url[len(base):]}") if r.status >= 400 else None)
                page.goto(base + rel, wait_until="load")
                page.wait_for_load_state("networkidle")
                found += [f"image did not load: {src}" for src in page.evaluate(BROKEN_IMAGES_JS)]
                found += [f"math not rendered: {text!r}" for text in page.evaluate(UNRENDERED_MATH_JS)]
                page.close()
                # A failed request also shows as a console error: report it once.
                found = [f for f in found if not (f.startswith("console error: Failed to load resource")
                                                  and any(g.startswith(("request", "HTTP")) for g in found))]
                problems += [f"{rel}: {f}" for f in dict.fromkeys(found)]
            browser.close()
    finally:
        server.shutdown()
    return problems


def check(build: Path, chromium: str) -> list[str]:
    """Every problem found on the built book at ``build`` (empty: the book reads well)."""
    if not (build / "index.html").is_file():
        raise CheckError(f"no built book at {build}: run `make book` (or `make book PROFILE=smoke`) first")
    page_list = pages(build)
    return broken_links(build, page_list) + browser_problems(build, page_list, chromium)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", nargs="?", type=Path, default=DEFAULT_BUILD,
                        help="the built HTML book (default: book/_build/html)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium",
                        help="the Chromium executable (default: Debian's /usr/bin/chromium)")
    args = parser.parse_args(argv)
    try:
        if not Path(args.chromium).is_file():
            raise CheckError(f"no Chromium at {args.chromium}: install the Debian package "
                             "(`sudo apt-get install chromium`) or pass --chromium PATH")
        problems = check(args.build.resolve(), args.chromium)
    except CheckError as err:
        print(f"book-check: error: {err}", file=sys.stderr)
        return 2
    for line in problems:
        print(line)
    n = len(pages(args.build.resolve()))
    print(f"book-check: {n} pages, {len(problems)} problem(s)"
          + ("" if problems else ": every page loads offline, images and math render, links resolve"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
