"""Paired differences over seeds and their t-intervals (lifestudy.stats), and the paper's table."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats as sps

from lifestudy import paper
from lifestudy.stats import NOT_RESOLVED, paired_difference, paired_differences, t_interval


def test_t_interval_matches_scipy():
    xs = [1.0, 2.5, 4.0]
    iv = t_interval(xs)
    low, high = sps.t.interval(0.95, len(xs) - 1, loc=sum(xs) / 3, scale=sps.sem(xs))
    assert iv.mean == pytest.approx(2.5) and iv.n == 3
    assert (iv.low, iv.high) == (pytest.approx(low), pytest.approx(high))


def test_direction_only_when_the_interval_excludes_zero():
    clear = paired_difference([50.0, 52.0, 51.0], [60.0, 61.0, 62.0])
    assert clear.resolved and clear.low > 0 and clear.verdict("LIFE higher", "LIFE lower") == "LIFE higher"
    worse = paired_difference([60.0, 61.0, 62.0], [50.0, 52.0, 51.0])
    assert worse.verdict("LIFE higher", "LIFE lower") == "LIFE lower"
    noisy = paired_difference([50.0, 60.0, 55.0], [58.0, 52.0, 56.0])
    assert noisy.low < 0 < noisy.high and not noisy.resolved and noisy.verdict() == NOT_RESOLVED


def test_one_seed_has_no_interval_and_is_never_resolved():
    iv = paired_difference([50.0], [70.0])
    assert iv.n == 1 and math.isnan(iv.low) and not iv.resolved and iv.verdict() == NOT_RESOLVED
    assert "no interval" in iv.text()
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1.0, 2.0], [1.0])


def test_paired_differences_pair_by_seed_and_skip_unpaired_seeds():
    rows = []
    for s, (a, b) in enumerate([(50, 60), (52, 61), (51, 62)]):
        rows += [{"dataset": "d", "seed": s, "arm": "base", "acc": a},
                 {"dataset": "d", "seed": s, "arm": "life", "acc": b}]
    rows.append({"dataset": "d", "seed": 3, "arm": "base", "acc": 0.0})  # no partner: ignored
    table = paired_differences(pd.DataFrame(rows), "dataset", "arm", "acc", "base", "life",
                               positive="LIFE higher", negative="LIFE lower")
    row = table.loc["d"]
    assert row["n"] == 3 and row["mean"] == pytest.approx(10.0) and row["verdict"] == "LIFE higher"


def test_paper_classification_table_is_labelled_and_complete():
    assert paper.CLASSIFICATION["DeiT-T-LIFE"]["cifar100"] == 71.74
    assert paper.CLASSIFICATION["ResNet-18"]["imagenet100"] == 80.74
    assert all(len(v) == 6 for v in paper.CLASSIFICATION.values()) and len(paper.CLASSIFICATION) == 10
    table = paper.classification_table()
    assert all(c.endswith("(paper)") for c in table.columns)
    assert set(paper.CLASSIFICATION_MODELS.values()) == set(paper.CLASSIFICATION)
