"""What the book's chapters share: run banners, captions, mean ± std tables, the paper beside ours.

The notebooks narrate and the package computes; this module holds the few pieces that
only the book shows — turning run records (:func:`lifestudy.records.load_records`) into
the tables and sentences a chapter shows, always saying which profile, seeds and device
produced them, and always labelling the paper's numbers as the paper's.

Tables follow the convention of the paper's tables: one row per model, metric columns,
"mean ± half-width of the 95 % t-interval" over seeds with the number of seeds beside it
(:func:`mean_ci`, :func:`pm`: the one formatter every chapter uses; its spaces are
non-breaking, so a cell never wraps). A chapter's findings (:class:`Finding`) feed both
its "key results" box (:func:`key_results`) and the claims scorecard of chapter 9
(:mod:`lifestudy.scorecard`).
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lifestudy import paper, stats
from lifestudy.profiles import Profile, get_profile
from lifestudy.records import device_name, load_records, read_json, write_json_atomic

__all__ = [
    "run_banner",
    "mean_pm",
    "caption",
    "seeds_text",
    "mean_std",
    "format_mean_std",
    "pm",
    "mean_ci",
    "Finding",
    "section_id",
    "key_results",
    "write_findings",
    "read_findings",
    "COLOURS",
    "beside_paper",
    "summary",
    "chapter_records",
    "provenance_table",
    "PAPER",
]

#: The label every paper number carries in tables and figures.
PAPER = paper.LABEL

#: One colour per role, the same in every chapter's figures (matplotlib's tab10 colours):
#: pass ``palette=report.palette(roles)`` to seaborn, or ``color=COLOURS[role]``.
COLOURS: dict[str, str] = {
    "baseline": "#1f77b4",  # blue
    "with LIFE": "#d62728",  # red
    "LIFE": "#d62728",
    "CNN reference": "#7f7f7f",  # grey
    "CNN": "#7f7f7f",
    "reference": "#7f7f7f",
    "paper": "#2ca02c",  # green
}

#: Non-breaking space and the minus sign: numbers in a table cell never wrap.
NBSP, MINUS = "\u00a0", "\u2212"


def seeds_text(seeds: Sequence[int]) -> str:
    """``[0, 1, 2]`` -> ``"0, 1, 2"``."""
    return ", ".join(str(s) for s in seeds) if len(seeds) else "none"


def run_banner(profile: str | Profile, seeds: Sequence[int], device: str) -> Any:
    """The line each chapter shows under its parameters: profile (and what its numbers
    claim), seeds and device.

    Returns an ``IPython.display.Markdown`` object (display it, or let it be the cell's value).
    """
    from IPython.display import Markdown  # the book's extra (ipykernel): only the notebooks display

    prof = get_profile(profile)
    runs = ""
    if str(device).startswith("cpu") and prof.jobs > 1:  # how run_all trains on a CPU
        runs = f"; training runs {prof.jobs} at a time, {prof.threads} thread{'s' if prof.threads != 1 else ''} each"
    return Markdown(
        f"**Numbers on this page:** profile `{prof.name}` ({prof.claim}); "
        f"seeds {seeds_text(seeds)}; device {device_name(device)}{runs}."
    )


def caption(text: str, profile: str, seeds: Sequence[int] | None = None) -> str:
    """A figure or table caption that names its profile (and seeds, when there are runs)."""
    tail = f"profile {profile}" + (f", seeds {seeds_text(seeds)}" if seeds is not None else "")
    return f"{text} ({tail})"


def mean_std(df, by: Sequence[str] | str, values: Sequence[str] | str):
    """Mean, standard deviation (ddof=1; 0 for a single seed) and count of ``values`` per ``by`` group."""
    by = [by] if isinstance(by, str) else list(by)
    values = [values] if isinstance(values, str) else list(values)
    grouped = df.groupby(by, sort=False)[values]
    out = grouped.agg(["mean", "std", "count"])
    for v in values:
        out[(v, "std")] = out[(v, "std")].fillna(0.0)
    return out if isinstance(out, pd.DataFrame) else out.to_frame()


def format_mean_std(stats, digits: int = 2):
    """Turn :func:`mean_std`'s output into strings ``"mean ± std"`` per value, plus a seeds column.

    A group of one seed shows its value alone (it has no spread to show)."""
    values = list(dict.fromkeys(stats.columns.get_level_values(0)))
    table = pd.DataFrame(index=stats.index)
    for v in values:
        mean, std, count = stats[(v, "mean")], stats[(v, "std")], stats[(v, "count")]
        table[v] = [f"{m:.{digits}f} ± {s:.{digits}f}" if n > 1 else f"{m:.{digits}f}"
                    for m, s, n in zip(mean, std, count)]
    table["seeds"] = stats[(values[0], "count")].astype(int)
    return table


def _num(value: float, digits: int, sign: bool = False) -> str:
    text = f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"
    return text.replace("-", MINUS)


def pm(mean: float, half: float | None = None, n: int | None = None, digits: int = 2, sign: bool = False,
       unit: str = "", count: str = "seed") -> str:
    """``"91.20 ± 0.52 (3 seeds)"``: a mean with the half-width of its 95 % interval and the
    number of values behind it, with non-breaking spaces (a table cell never wraps).

    Args:
        half: the half-width; None or NaN (one value) shows the mean alone.
        n: the count shown in brackets (None: none shown); ``count`` names what is counted.
        sign: show the sign of the mean (for differences); ``unit`` follows the numbers.
    """
    text = _num(mean, digits, sign) if not (mean is None or math.isnan(mean)) else "n/a"
    if half is not None and not math.isnan(half):
        text += f" ± {half:.{digits}f}"
    text += unit
    if n is not None:
        text += f" ({n} {count}{'s' if n != 1 else ''})"
    return text.replace(" ", NBSP)


def _half_width(iv: stats.Interval) -> float | None:
    return (iv.high - iv.low) / 2 if iv.n >= 2 else None


def interval_pm(iv: stats.Interval, digits: int = 2, sign: bool = True, unit: str = "", count: str = "seed") -> str:
    """:func:`pm` of a :class:`lifestudy.stats.Interval` (a paired difference, by default signed)."""
    return pm(iv.mean, _half_width(iv), iv.n, digits=digits, sign=sign, unit=unit, count=count)


def mean_pm(values: Sequence[float], digits: int = 2, unit: str = " %") -> str:
    """``"72.70 ± 1.95 % (3 seeds)"``: the mean of one value over seeds, with the half-width of
    its 95 % t-interval (:func:`lifestudy.stats.t_interval`)."""
    return interval_pm(stats.t_interval(list(values)), digits, sign=False, unit=unit)


def mean_ci(df, by: Sequence[str] | str, values: Sequence[str] | str, digits: int = 2,
            confidence: float = 0.95):
    """The table every chapter shows: per ``by`` group, ``"mean ± half-width"`` of each of
    ``values`` (Student's 95 % t-interval over the group's seeds, :func:`lifestudy.stats.t_interval`)
    and a ``seeds`` column. A group of one seed shows its value alone; the spaces are
    non-breaking, so a cell never wraps."""
    by = [by] if isinstance(by, str) else list(by)
    values = [values] if isinstance(values, str) else list(values)
    groups = df.groupby(by, sort=False)
    rows, index = [], []
    for key, group in groups:
        row = {}
        for v in values:
            iv = stats.t_interval(list(pd.to_numeric(group[v], errors="coerce")), confidence)
            row[v] = pm(iv.mean, _half_width(iv), digits=digits)
        row["seeds"] = int(pd.to_numeric(group[values[0]], errors="coerce").notna().sum())
        rows.append(row)
        index.append(key if isinstance(key, tuple) else (key,))
    names = by if len(by) > 1 else by[0]
    idx = pd.MultiIndex.from_tuples(index, names=by) if len(by) > 1 else pd.Index([k[0] for k in index], name=names)
    return pd.DataFrame(rows, index=idx, columns=[*values, "seeds"])


def beside_paper(ours, theirs: Mapping[str, Mapping[str, float]], columns: Mapping[str, str]):
    """Our table with the paper's numbers in separate, labelled columns.

    Args:
        ours: a DataFrame indexed by the key ``theirs`` uses (e.g. a timm model name).
        theirs: the paper's numbers, ``{key: {metric: value}}`` (from :mod:`lifestudy.paper`).
        columns: ``{metric key in theirs: column title}``; each becomes ``"<title> (paper)"``.
    """
    table = ours.copy()
    for key, title in columns.items():
        table[f"{title} ({PAPER})"] = [
            theirs.get(str(idx), {}).get(key, float("nan")) for idx in table.index
        ]
    return table


def summary(lines: Iterable[str]) -> Any:
    """A chapter's closing summary as Markdown bullet points (numbers come from records)."""
    from IPython.display import Markdown

    return Markdown("\n".join(f"- {line}" for line in lines))


def chapter_records(out_dir: str | os.PathLike, kind: str | None = None):
    """The records under a chapter's ``out_dir`` as a DataFrame (optionally one ``kind``)."""
    df = load_records(out_dir)
    if kind is not None and len(df) and "kind" in df:
        df = df[df["kind"] == kind]
    return df.reset_index(drop=True)


def _headline(row) -> str:
    """A training record's headline metric, e.g. ``"top1 91.20"`` (its ``metrics.headline``
    names it); empty for records that are not runs."""
    key = row.get("metrics.headline")
    value = row.get(f"metrics.{key}") if isinstance(key, str) else None
    return f"{key} {float(value):.2f}" if value is not None and pd.notna(value) else ""


def provenance_table(records, root: str | os.PathLike):
    """One row per record under ``root`` (:func:`lifestudy.records.load_records`): its
    chapter (the first folder below ``root``), kind, task, dataset, model, seed, epochs,
    headline metric, wall time, device, code version and library versions."""
    def column(name):
        return records[name] if name in records else pd.Series([None] * len(records), index=records.index)

    return pd.DataFrame({
        "chapter": [Path(p).relative_to(root).parts[0] for p in column("path")],
        "kind": column("kind"),
        "task": column("task"),
        "dataset": column("provenance.dataset"),
        "model": column("provenance.model"),
        "seed": column("provenance.seed"),
        "epochs": column("provenance.epochs"),
        "headline": [_headline(row) for _, row in records.iterrows()],
        "wall time (s)": column("provenance.wall_time_s"),
        "device": column("provenance.device_name"),
        "git commit": column("provenance.git_commit").map(lambda c: c[:10] if isinstance(c, str) else c),
        "dirty": column("provenance.git_dirty"),
        "torch": column("provenance.torch"),
        "timm": column("provenance.timm"),
        "created": column("provenance.created"),
    })


# --------------------------------------------------------------------------------------
# Findings: what a chapter found, for its key-results box and the claims scorecard

FINDINGS = "findings.json"
NOT_JUDGED = "not judged"
#: How a key-results line words what its finding says of the paper's claim.
_SAYS = {"supports": "supports the paper", "contradicts": "contradicts the paper",
         stats.NOT_RESOLVED: stats.NOT_RESOLVED, NOT_JUDGED: NOT_JUDGED}


@dataclass(frozen=True)
class Finding:
    """One number a chapter found, read from its records, and what it says of a claim.

    A measured difference carries its interval (``low``, ``high`` over ``n`` seeds or
    images) and ``direction``, the sign the paper's claim predicts: it supports the claim
    when the interval excludes 0 on that side, contradicts it on the other, and resolves
    nothing otherwise. A fact without an interval (a count, a yes/no of a check) carries
    ``holds`` instead. ``converged`` is False when a run behind it failed its schedule check.
    """

    claim: str  # a key of lifestudy.scorecard.CLAIMS ("" for a key result that judges no claim)
    what: str  # e.g. "digits: LIFE − baseline, top-1 (points)"
    chapter: str  # e.g. "02_classification"
    section: str  # the title of the section that shows it (the box links there)
    mean: float
    low: float | None = None
    high: float | None = None
    n: int | None = None
    count: str = "seed"  # what n counts
    unit: str = ""
    direction: int = 1  # +1: the claim predicts a positive difference, -1 a negative one
    holds: bool | None = None  # for a fact without an interval: does it bear the claim out?
    converged: bool | None = None  # False: a run behind it did not pass its schedule check
    paper: str = ""  # the paper's corresponding number, as text ("" when it has none)
    signed: bool = True  # a difference (shown with its sign) rather than a level
    shown: str = ""  # how a fact is shown instead of its number (e.g. "applies to 5 of 5 hosts")
    box: bool = True  # shown in the chapter's key-results box (False: in the scorecard only)

    @property
    def interval(self) -> stats.Interval | None:
        if self.low is None or self.high is None or self.n is None:
            return None
        return stats.Interval(self.mean, self.low, self.high, math.nan, self.n)

    @property
    def says(self) -> str:
        """"supports", "contradicts", "not resolved" (an interval through 0, or one value)
        or "not judged" (a fact shown beside the claim that no rule judges)."""
        iv = self.interval
        if iv is not None:
            if not iv.resolved:
                return stats.NOT_RESOLVED
            return "supports" if (iv.low > 0) == (self.direction > 0) else "contradicts"
        if self.holds is None:  # a measured value too few to give an interval, or a fact shown only
            return stats.NOT_RESOLVED if self.n is not None else NOT_JUDGED
        return "supports" if self.holds else "contradicts"

    def text(self, digits: int = 2) -> str:
        """The number as a cell shows it: ``"+1.20 ± 0.80 (3 seeds)"`` (non-breaking)."""
        if self.shown:
            return self.shown
        iv = self.interval
        if iv is not None and not (isinstance(self.low, float) and math.isnan(self.low)):
            return interval_pm(iv, digits=digits, sign=self.signed, unit=self.unit, count=self.count)
        return pm(self.mean, None, self.n, digits=digits, sign=self.signed, unit=self.unit, count=self.count)

    @classmethod
    def from_interval(cls, iv: stats.Interval, **fields: Any) -> "Finding":
        """A finding of a :class:`lifestudy.stats.Interval` (e.g. a row of ``stats.paired_differences``)."""
        low = None if math.isnan(iv.low) else iv.low
        high = None if math.isnan(iv.high) else iv.high
        return cls(mean=float(iv.mean), low=low, high=high, n=int(iv.n), **fields)

    @classmethod
    def from_row(cls, row: Mapping[str, Any], **fields: Any) -> "Finding":
        """A finding of a row of :func:`lifestudy.stats.paired_differences` (mean, low, high, n)."""
        return cls.from_interval(stats.Interval(float(row["mean"]), float(row["low"]), float(row["high"]),
                                                float(row.get("sd", math.nan)), int(row["n"])), **fields)


def section_id(title: str) -> str:
    """The HTML anchor Sphinx gives a section titled ``title`` (docutils' ``make_id``):
    ``"Has every schedule converged?"`` -> ``"has-every-schedule-converged"``."""
    text = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return re.sub(r"^[^a-z]+", "", text)


class _Box:
    """A displayable admonition: HTML for the book and Jupyter, Markdown as plain text."""

    def __init__(self, html_text: str, markdown: str):
        self.html, self.markdown = html_text, markdown

    def _repr_html_(self) -> str:
        return self.html

    def _repr_markdown_(self) -> str:
        return self.markdown

    def __repr__(self) -> str:
        return self.markdown


def key_results(findings: Iterable[Finding], note: str = "") -> _Box:
    """A chapter's "key results" box: one line per finding, its number with interval and
    count, what it says of the paper's claim, and a link to the section that shows it.

    The book shows it at the top of the chapter (``book/tools/chapters.py`` moves the cell
    tagged ``key-results`` there); the numbers come from the chapter's records."""
    items_html, items_md = [], []
    for f in findings:
        if not f.box:
            continue
        anchor = section_id(f.section)
        verdict = "" if not f.claim else f" — {_SAYS[f.says]}" + ("" if f.converged is not False else " (not converged)")
        paper_text = f"; {PAPER}: {f.paper}" if f.paper else ""
        items_html.append(f'<li>{html.escape(f.what)}: <strong>{html.escape(f.text())}</strong>'
                          f'{html.escape(paper_text)}{html.escape(verdict)} '
                          f'(<a href="#{anchor}">{html.escape(f.section)}</a>)</li>')
        items_md.append(f"- {f.what}: **{f.text()}**{paper_text}{verdict} ([{f.section}](#{anchor}))")
    tail_html = f"<p>{html.escape(note)}</p>" if note else ""
    box = ('<div class="admonition tip key-results"><p class="admonition-title">Key results</p>'
           f'<ul>{"".join(items_html)}</ul>{tail_html}</div>')
    md = "**Key results**\n\n" + "\n".join(items_md) + (f"\n\n{note}" if note else "")
    return _Box(box, md)


def write_findings(path: str | os.PathLike, findings: Iterable[Finding], profile: str, chapter: str) -> Path:
    """Write a chapter's findings (``findings.json`` in its run folder) for chapter 9's scorecard.
    A finding without a value (NaN: a comparison whose runs the plan does not have) says
    nothing and is not written."""
    rows = [asdict(f) for f in findings if not (isinstance(f.mean, float) and math.isnan(f.mean))]
    return write_json_atomic(path, {"kind": "findings", "profile": profile, "chapter": chapter, "findings": rows})


def read_findings(root: str | os.PathLike) -> list[Finding]:
    """Every chapter's findings under ``root`` (a profile's runs folder), chapter by chapter
    (a row without a numeric value, as older chapters wrote for comparisons they had no
    runs for, is passed over)."""
    found = []
    for path in sorted(Path(root).glob(f"*/{FINDINGS}")):
        found += [Finding(**row) for row in read_json(path)["findings"] if isinstance(row.get("mean"), (int, float))]
    return found
