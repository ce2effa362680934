"""Statistics that say what they can: paired differences over seeds with 95 % t-intervals.

A LIFE-vs-baseline comparison is paired: both models of a seed see the same training
subset, data order and augmentation stream, so the per-seed difference removes what the
seed does to both. Over ``n`` seeds the mean difference gets Student's t-interval
(``scipy.stats.t``, ``n - 1`` degrees of freedom). A direction is stated only when the
interval excludes 0; otherwise the comparison is "not resolved" -- with 3 seeds, the
interval is wide (t = 4.30 at 2 degrees of freedom), and that is what 3 seeds can say.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

__all__ = ["Interval", "t_interval", "paired_difference", "paired_differences", "NOT_RESOLVED"]

NOT_RESOLVED = "not resolved"


@dataclass(frozen=True)
class Interval:
    """The mean of ``n`` values with its ``confidence`` t-interval ``[low, high]``."""

    mean: float
    low: float
    high: float
    sd: float
    n: int
    confidence: float = 0.95

    @property
    def resolved(self) -> bool:
        """The interval excludes 0 (and exists: at least 2 values)."""
        return self.n >= 2 and (self.low > 0 or self.high < 0)

    def verdict(self, positive: str = "higher", negative: str = "lower") -> str:
        """``positive`` when the interval lies above 0, ``negative`` below, else "not resolved"."""
        if not self.resolved:
            return NOT_RESOLVED
        return positive if self.low > 0 else negative

    def text(self, digits: int = 2, unit: str = "") -> str:
        """``"+3.10 [+0.52, +5.68] points (3 seeds)"``; one value shows no interval."""
        seeds = f"{self.n} seed{'s' if self.n != 1 else ''}"
        if self.n < 2:
            return f"{self.mean:+.{digits}f}{unit} ({seeds}, no interval)"
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]{unit} ({seeds})"


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean and Student's t confidence interval of ``values`` (NaN bounds for fewer than 2)."""
    from scipy import stats

    xs = [float(v) for v in values if not math.isnan(float(v))]
    n = len(xs)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, math.nan, 0, confidence)
    mean = sum(xs) / n
    if n < 2:
        return Interval(mean, math.nan, math.nan, 0.0, 1, confidence)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, sd, n, confidence)


def paired_difference(first: Sequence[float], second: Sequence[float], confidence: float = 0.95) -> Interval:
    """The interval of ``second[i] - first[i]`` over paired values (same seed, same data)."""
    if len(first) != len(second):
        raise ValueError(f"paired values need equal lengths, got {len(first)} and {len(second)}")
    return t_interval([b - a for a, b in zip(first, second)], confidence)


def paired_differences(df, by: Sequence[str] | str, condition: str, value: str, first: str, second: str,
                       seed: str = "seed", confidence: float = 0.95, positive: str = "higher",
                       negative: str = "lower"):
    """One row per ``by`` group: the paired difference ``second - first`` of ``value``.

    Args:
        df: one row per run, with columns ``by``, ``condition``, ``seed`` and ``value``.
        condition: the column naming what is compared (e.g. "LIFE": "baseline" / "with LIFE").
        first, second: the two values of ``condition`` compared (difference: second - first).
        positive, negative: the verdict's words when the interval lies above / below 0.

    Only seeds with both conditions count. Columns: ``mean``, ``low``, ``high``, ``sd``,
    ``n`` (seeds), ``verdict`` and ``text`` (for a sentence).
    """
    import pandas as pd

    by = [by] if isinstance(by, str) else list(by)
    wide = df.pivot_table(index=[*by, seed], columns=condition, values=value, aggfunc="first")
    rows = []
    for key, group in wide.groupby(level=list(range(len(by))), sort=False):
        group = group.dropna(subset=[c for c in (first, second) if c in group])
        if first not in group or second not in group:
            continue
        iv = paired_difference(list(group[first]), list(group[second]), confidence)
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), **asdict(iv), "verdict": iv.verdict(positive, negative),
                     "text": iv.text()})
    return pd.DataFrame(rows).set_index(by) if rows else pd.DataFrame()
