"""What the book's chapters share: run banners, captions, mean ± std tables, the paper beside ours.

The notebooks narrate and the package computes; this module holds the few pieces that
only the book shows — turning run records (:func:`lifestudy.records.load_records`) into
the tables and sentences a chapter shows, always saying which profile, seeds and device
produced them, and always labelling the paper's numbers as the paper's.

Tables follow the convention of the paper's tables: one row per model, metric columns,
"mean ± std" over seeds with the number of seeds beside it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lifestudy import paper
from lifestudy.profiles import Profile, get_profile
from lifestudy.records import device_name, load_records

__all__ = [
    "run_banner",
    "caption",
    "seeds_text",
    "mean_std",
    "format_mean_std",
    "beside_paper",
    "summary",
    "chapter_records",
    "provenance_table",
    "PAPER",
]

#: The label every paper number carries in tables and figures.
PAPER = paper.LABEL


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
    return Markdown(
        f"**Numbers on this page:** profile `{prof.name}` ({prof.claim}); "
        f"seeds {seeds_text(seeds)}; device {device_name(device)}."
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
