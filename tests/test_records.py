"""Run records are written atomically and carry their provenance."""

from __future__ import annotations

import json

import pytest

from lifestudy import records


def test_write_json_atomic_round_trips_and_leaves_no_temp_files(tmp_path):
    path = records.write_json_atomic(tmp_path / "run" / "record.json",
                                     {"metrics": {"top1": 0.5, "inf": float("inf")}})
    assert json.loads(path.read_text()) == {"metrics": {"top1": 0.5, "inf": "inf"}}
    assert [p.name for p in path.parent.iterdir()] == ["record.json"]


def test_failed_write_keeps_the_previous_record_intact(tmp_path):
    path = tmp_path / "record.json"
    records.write_json_atomic(path, {"metrics": {"top1": 0.9}})
    with pytest.raises(TypeError):
        records.write_json_atomic(path, {"metrics": {"top1": object()}})
    assert json.loads(path.read_text()) == {"metrics": {"top1": 0.9}}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_provenance_names_versions_commit_and_the_given_fields():
    prov = records.provenance(profile="smoke", seed=3, device="cpu")
    for key in ("python", "torch", "timm", "torchvision", "git_commit", "git_dirty", "created"):
        assert key in prov
    assert prov["profile"] == "smoke" and prov["seed"] == 3
    assert prov["device_name"].startswith("cpu")


def test_load_records_flattens_metrics_and_provenance(tmp_path):
    for seed, acc in [(0, 0.5), (1, 0.7)]:
        records.write_json_atomic(tmp_path / f"s{seed}" / "record.json",
                                  {"metrics": {"top1": acc}, "provenance": {"seed": seed}})
    df = records.load_records(tmp_path)
    assert sorted(df["metrics.top1"]) == [0.5, 0.7]
    assert sorted(df["provenance.seed"]) == [0, 1]
    assert df["path"].str.endswith("record.json").all()
