"""A chapter's set-up and runs through lifestudy.chapters, and the records table of chapter 9."""

from __future__ import annotations

import pandas as pd

from lifestudy import chapters, report
from lifestudy.complexity import complexity, complexity_record
from lifestudy.records import load_records, write_json_atomic


def test_train_reuse_records_and_the_provenance_table(tmp_path):
    chap = chapters.setup("02_classification", "smoke", device="cpu", out_dir=tmp_path / "runs" / "02_classification")
    cfg = chap.config("classification", "digits", "deit_test_patch4_32", 0, out=("digits", "m", "seed0"),
                      epochs=1, subset=5)
    lines = []
    (record,) = chap.train([cfg], log=lines.append)
    assert record["kind"] == "train" and "trained" in lines[0]
    again = chapters.setup("02_classification", "smoke", out_dir=chap.out_dir, reuse_runs=True)
    (reused,) = again.train([cfg], log=lines.append)
    assert "reused" in lines[1] and reused["metrics"] == record["metrics"]
    runs = chap.records("train")
    assert list(runs["provenance.model"]) == ["deit_test_patch4_32"]

    # Chapter 9: one row per record; a run's headline is the metric its record names.
    write_json_atomic(tmp_path / "runs" / "07_efficiency" / "complexity" / "record.json",
                      complexity_record([complexity("deit_test_patch4_32", num_classes=10, img_size=32)]))
    root = tmp_path / "runs"
    table = report.provenance_table(load_records(root), root).set_index("chapter")
    top1 = record["metrics"]["top1"]
    assert table.loc["02_classification", "headline"] == f"top1 {top1:.2f}"
    assert table.loc["07_efficiency", "headline"] == "" and table.loc["07_efficiency", "kind"] == "complexity"
    assert pd.notna(table.loc["02_classification", "wall time (s)"])
