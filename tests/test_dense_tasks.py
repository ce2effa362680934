"""Detection and segmentation through the shared engine: a smoke run of each head variant
and of segmentation at a rectangular size, exact resume, and clear errors."""

from __future__ import annotations

import pytest
import torch

from lifestudy.engine import TrainConfig, train
from lifestudy.errors import ConfigError
from lifestudy.records import read_json

torch.set_num_threads(1)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fashion_mnist")]

#: a handful of 64x64 canvases: two steps per epoch at the smoke profile's batch of 8
TINY_SCENES = {"train_length": 16, "test_length": 8}


@pytest.fixture(scope="module")
def fashion_mnist():
    """The scenes' items, at the default root: fetched through the chain (`make test`
    already did), else the test fails with the fetch error."""
    from lifestudy import data

    return data.fetch("fashion-mnist")


def _cfg(tmp_path, name, **kw):
    base = dict(data="scenes-det", task="detection", model="deit_test_patch4_32", profile="smoke",
                seed=0, out=str(tmp_path / name), quiet=True, options=dict(TINY_SCENES))
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("head,backbone", [
    ("encdec", "deit_test_patch4_32"),
    ("encdec-linear", "deit_test_patch4_32"),
    ("encdec-life", "deit_test_patch4_32_life"),
])
def test_detection_smoke_run_each_head(tmp_path, head, backbone):
    rec = train(_cfg(tmp_path, head, head=head, model=backbone, epochs=1))
    m = rec["metrics"]
    assert rec["task"] == "detection" and m["headline"] == "map_50"
    for key in ("map", "map_50", "map_75", "f1", "precision", "recall"):
        assert 0.0 <= m[key] <= 100.0, key
    assert rec["provenance"]["head"] == head
    saved = read_json(tmp_path / head / "record.json")
    assert saved["metrics"]["map_50"] == m["map_50"]
    assert (tmp_path / head / "metrics.csv").exists() and (tmp_path / head / "checkpoint.pt").exists()


def test_segmentation_smoke_run_rectangular(tmp_path):
    rec = train(_cfg(tmp_path, "seg", task="segmentation", data="scenes-seg", model="deit_test_patch4_32_life",
                     img_size=(32, 64), epochs=1))
    m = rec["metrics"]
    assert m["headline"] == "miou" and 0.0 <= m["miou"] <= 100.0
    assert "iou_background" in m and "iou_trouser" in m
    assert rec["provenance"]["img_size"] == [32, 64] and rec["provenance"]["item_source"] == "fashion-mnist"


def test_segmentation_on_digits_items_when_named(tmp_path):
    """digits only when the run names them; the record and the class names say so."""
    options = {**TINY_SCENES, "data_options": {"source": "digits"}}
    rec = train(_cfg(tmp_path, "seg", task="segmentation", data="scenes-seg", model="deit_test_patch4_32",
                     epochs=1, options=options))
    assert rec["provenance"]["item_source"] == "digits"
    assert "iou_0" in rec["metrics"] and "iou_trouser" not in rec["metrics"]


@pytest.mark.parametrize("dn_groups", [0, 2])  # denoising queries draw their noise from torch's generator
def test_detection_resume_is_exact(tmp_path, dn_groups):
    kw = dict(head="encdec-life", model="deit_test_patch4_32_life", epochs=2,
              options={**TINY_SCENES, "head_sizes": {"dn_groups": dn_groups}})
    full = train(_cfg(tmp_path, "full", **kw))
    part = _cfg(tmp_path, "part", **kw)
    part.stop_after_epochs = 1
    assert train(part).get("interrupted")
    resumed = train(_cfg(tmp_path, "part", resume=True, **kw))
    assert ("dn_loss_ce" in (tmp_path / "full" / "metrics.csv").read_text()) == bool(dn_groups)
    for key in ("map", "map_50", "f1", "train_loss"):
        assert resumed["metrics"][key] == full["metrics"][key], key
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_wrong_dataset_or_head_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="segmentation"):
        train(_cfg(tmp_path, "x", data="scenes-seg"))
    with pytest.raises(ConfigError, match="encdec"):
        train(_cfg(tmp_path, "y", head="encdec-conv"))
    with pytest.raises(ConfigError, match="detection head"):
        train(_cfg(tmp_path, "z", task="segmentation", data="scenes-seg", head="encdec"))
    with pytest.raises(ConfigError, match="not divisible"):
        train(_cfg(tmp_path, "w", task="segmentation", data="scenes-seg", img_size=(30, 64)))
    assert not (tmp_path / "w").exists()  # nothing half-written
