"""The book's one number formatter, the chapters' findings and the claims scorecard
(lifestudy.report, lifestudy.scorecard), on synthetic records."""

from __future__ import annotations

import dataclasses
import math

import pytest

pd = pytest.importorskip("pandas")

from lifestudy import records, report, scorecard, stats  # noqa: E402
from lifestudy.report import Finding  # noqa: E402

NBSP = "\u00a0"


def test_pm_is_mean_half_width_and_count_without_breakable_spaces():
    assert report.pm(91.2, 0.52, 3) == f"91.20{NBSP}±{NBSP}0.52{NBSP}(3{NBSP}seeds)"
    assert report.pm(-0.09, 0.09, sign=True) == f"\u22120.09{NBSP}±{NBSP}0.09"  # a minus sign: no break after it
    assert report.pm(5.0, None, 1) == f"5.00{NBSP}(1{NBSP}seed)"  # one value: no interval
    assert report.pm(5.0, math.nan) == "5.00"
    assert " " not in report.pm(1.0, 2.0, 3, unit=" %")


def test_mean_ci_shows_the_t_interval_half_width_over_seeds():
    runs = pd.DataFrame({"dataset": ["d"] * 4, "model": ["a", "a", "a", "b"], "top1": [1.0, 2.0, 3.0, 5.0]})
    table = report.mean_ci(runs, ["dataset", "model"], "top1")
    half = stats.t_interval([1.0, 2.0, 3.0]).high - 2.0  # t(0.975, 2) * 1 / sqrt(3) = 2.48
    assert table.loc[("d", "a"), "top1"] == report.pm(2.0, half)
    assert f"{half:.2f}" == "2.48"
    assert table.loc[("d", "b"), "top1"] == "5.00" and table.loc[("d", "b"), "seeds"] == 1
    assert table.loc[("d", "a"), "seeds"] == 3
    one_key = report.mean_ci(runs, "model", "top1")
    assert list(one_key.index) == ["a", "b"] and one_key.index.name == "model"


def test_mean_pm_is_a_mean_over_seeds_with_its_t_interval():
    assert report.mean_pm(pd.Series([1.0, 2.0, 3.0])) == f"2.00{NBSP}±{NBSP}2.48{NBSP}%{NBSP}(3{NBSP}seeds)"
    assert report.mean_pm([4.0], unit="") == f"4.00{NBSP}(1{NBSP}seed)"


def test_banner_names_profile_seeds_and_how_the_runs_used_the_cpu():
    cpu = report.run_banner("cpu", [0, 1, 2], "cpu").data
    assert "profile `cpu`" in cpu and "seeds 0, 1, 2" in cpu
    assert "training runs 2 at a time, 1 thread each" in cpu  # the cpu profile: jobs 2, threads 1
    assert "at a time" not in report.run_banner("paper", [0], "cuda").data


def _finding(claim="small_data_gain", mean=1.0, low=0.5, high=1.5, **kw):
    return Finding(claim=claim, what="x", chapter="02_classification", section="Results", mean=mean, low=low,
                   high=high, n=3, **kw)


@pytest.mark.parametrize("low, high, direction, says", [
    (0.5, 1.5, 1, "supports"), (-1.5, -0.5, 1, "contradicts"), (-0.5, 1.5, 1, stats.NOT_RESOLVED),
    (-1.5, -0.5, -1, "supports"), (0.5, 1.5, -1, "contradicts"),
])
def test_a_finding_takes_a_side_only_where_its_interval_excludes_zero(low, high, direction, says):
    assert _finding(mean=(low + high) / 2, low=low, high=high, direction=direction).says == says


def test_a_fact_without_interval_holds_or_not():
    fact = Finding(claim="life_efficient", what="extra MACs", chapter="01_life_module", section="s", mean=0.8,
                   holds=True)
    assert fact.says == "supports"
    assert Finding(**{**fact.__dict__, "holds": False}).says == "contradicts"
    assert Finding(**{**fact.__dict__, "holds": None}).says == report.NOT_JUDGED


@pytest.mark.parametrize("findings, verdict", [
    ([], scorecard.NOT_RESOLVED),
    ([_finding()], scorecard.SUPPORTED),
    ([_finding(), _finding(low=-0.5)], scorecard.SUPPORTED),  # one supports, none contradicts
    ([_finding(mean=-1, low=-1.5, high=-0.5)], scorecard.CONTRADICTED),
    ([_finding(), _finding(mean=-1, low=-1.5, high=-0.5)], scorecard.NOT_RESOLVED),  # both ways
    ([_finding(low=-0.5)], scorecard.NOT_RESOLVED),
    ([_finding(), _finding(converged=False)], scorecard.NOT_RESOLVED),  # a run did not converge
])
def test_verdict_rule(findings, verdict):
    assert scorecard.verdict(findings) == verdict


def test_paired_differences_become_findings_with_their_interval():
    runs = pd.DataFrame({"dataset": ["d"] * 6, "arm": ["base", "life"] * 3, "seed": [0, 0, 1, 1, 2, 2],
                         "top1": [50.0, 52.0, 51.0, 54.0, 49.0, 52.5]})
    row = stats.paired_differences(runs, "dataset", "arm", "top1", "base", "life").iloc[0]
    f = Finding.from_row(row, claim="small_data_gain", what="d", chapter="02_classification", section="Results")
    assert (f.mean, f.low, f.high, f.n) == (row["mean"], row["low"], row["high"], 3)
    assert f.says == "supports" and f.text().startswith("+2.83")
    one = Finding.from_interval(stats.t_interval([2.0]), claim="", what="d", chapter="c", section="s")
    assert one.low is None and one.says == stats.NOT_RESOLVED and "1\u00a0seed" in one.text()


def test_findings_round_trip_through_the_run_folders(tmp_path):
    a = _finding()
    b = Finding(claim="rollout_maps", what="pointing", chapter="08_rollout", section="Localisation scores",
                mean=0.2, low=0.1, high=0.3, n=20, count="image")
    report.write_findings(tmp_path / "02_classification" / report.FINDINGS, [a], "smoke", "02_classification")
    report.write_findings(tmp_path / "08_rollout" / report.FINDINGS, [b], "smoke", "08_rollout")
    assert report.read_findings(tmp_path) == [a, b]


def test_a_finding_without_a_value_is_not_written(tmp_path):
    """A comparison whose runs the plan does not have (NaN) must not break the scorecard."""
    empty = _finding(mean=math.nan, low=None, high=None)
    report.write_findings(tmp_path / "05_detection" / report.FINDINGS, [_finding(), empty], "smoke", "05_detection")
    found = report.read_findings(tmp_path)
    assert found == [_finding()]
    records.write_json_atomic(tmp_path / "06_segmentation" / report.FINDINGS, {  # as chapter 5 once wrote it
        "kind": "findings", "findings": [{**dataclasses.asdict(empty), "mean": "nan"}]})
    assert report.read_findings(tmp_path) == [_finding()]
    assert len(scorecard.scorecard_table(found)) == len(scorecard.CLAIMS)


def test_scorecard_has_one_row_per_claim_of_the_abstract_in_order():
    findings = [_finding(), _finding(claim="vit_trails_cnn", mean=-3, low=-4, high=-2, direction=-1),
                _finding(claim="dense_gain", converged=False)]
    rows = scorecard.scorecard(findings)
    assert [r["claim"] for r in rows] == [c.text for c in scorecard.CLAIMS] and len(rows) == 7
    by_key = dict(zip([c.key for c in scorecard.CLAIMS], rows))
    assert by_key["small_data_gain"]["verdict"] == scorecard.SUPPORTED
    assert by_key["vit_trails_cnn"]["verdict"] == scorecard.SUPPORTED
    assert by_key["dense_gain"]["verdict"] == scorecard.NOT_RESOLVED and "converge" in by_key["dense_gain"]["why"]
    assert by_key["rollout_maps"]["verdict"] == scorecard.NOT_RESOLVED and by_key["rollout_maps"]["why"] == "no records"
    assert "+1.00\u00a0±\u00a00.50\u00a0(3\u00a0seeds)" in by_key["small_data_gain"]["ours"][0]
    # the paper's numbers come from lifestudy.paper, never typed in the table
    assert "+3.63" in by_key["small_data_gain"]["paper"]  # DeiT-T-LIFE - DeiT-T on CIFAR-10: 89.28 - 85.65


def test_scorecard_table_links_each_number_to_its_section():
    table = scorecard.scorecard_table([_finding()])
    assert list(table.columns) == ["claim", "verdict", "ours (95 % interval)", "paper", "chapters", "why"]
    html = scorecard.html_table(table)
    assert 'href="02_classification.html#results"' in html


def test_key_results_box_links_to_sections_and_skips_what_is_not_boxed():
    box = report.key_results([_finding(), Finding(claim="", what="hidden", chapter="c", section="s", mean=1.0,
                                                  box=False)], note="n")
    assert 'class="admonition' in box._repr_html_() and "Key results" in box._repr_html_()
    assert 'href="#results"' in box._repr_html_() and "hidden" not in box._repr_html_()
    assert "supports the paper" in box._repr_markdown_() and "(#results)" in box._repr_markdown_()


@pytest.mark.parametrize("title, anchor", [
    ("Results", "results"), ("Has every schedule converged?", "has-every-schedule-converged"),
    ("What it costs, beside the paper", "what-it-costs-beside-the-paper"),
    ("LIFE against the baseline, paired by seed", "life-against-the-baseline-paired-by-seed"),
])
def test_section_id_is_docutils_make_id(title, anchor):
    assert report.section_id(title) == anchor
    nodes = pytest.importorskip("docutils.nodes")
    assert nodes.make_id(title) == anchor
