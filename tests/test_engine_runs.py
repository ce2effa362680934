"""The classification data path held in memory, schedules in steps, run identity and sharing,
concurrent runs, the schedule check."""

from __future__ import annotations

import json

import pytest
import torch

from lifestudy import records
from lifestudy.data import build_dataset, get_spec
from lifestudy.engine import TrainConfig, resolve, train
from lifestudy.engine.loop import derive_epochs, eval_epochs, resolved_hash
from lifestudy.engine.runs import REUSED, check_summary, doubled, run_all, schedule_check
from lifestudy.tasks.classification import Classification, classification_transforms
from lifestudy.tasks.memory import BatchAugment, TensorImages

TINY = dict(task="classification", data="digits", model="deit_test_patch4_32", profile="smoke",
            subset=8, batch_size=16, epochs=1, quiet=True, device="cpu", recipe={"eval_subset": 64})


def tiny(out, **changes) -> TrainConfig:
    kw = {**TINY, **changes}
    kw["recipe"] = {**TINY["recipe"], **changes.get("recipe", {})}
    return TrainConfig(out=str(out), **kw)


# ---- in-memory data, batched augmentation ------------------------------------------------
def test_batch_crop_takes_each_image_at_its_own_offset_of_the_padded_image():
    torch.manual_seed(0)
    x = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    aug = BatchAugment([0.0], [1.0], crop_padding=2)
    torch.manual_seed(1)
    out = aug.crop(x)
    torch.manual_seed(1)
    top, left = torch.randint(0, 5, (6,)), torch.randint(0, 5, (6,))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(6):
        assert torch.equal(out[i], padded[i, :, top[i]:top[i] + 8, left[i]:left[i] + 8])
    assert len({(int(t), int(l)) for t, l in zip(top, left)}) > 1  # offsets differ per image


def test_batch_flip_and_normalise():
    x = torch.arange(2 * 1 * 2 * 3, dtype=torch.uint8).view(2, 1, 2, 3)
    flipped = BatchAugment([0.5], [0.25], hflip=1.0)(x)
    expect = (x.flip(-1).float() / 255 - 0.5) / 0.25
    assert torch.allclose(flipped, expect)
    plain = BatchAugment([0.5], [0.25])(x)
    assert torch.allclose(plain, (x.float() / 255 - 0.5) / 0.25)


def test_memory_test_split_is_exactly_the_pil_pipelines(tmp_path):
    cfg = resolve(tiny(tmp_path / "r", profile="cpu", recipe={"eval_subset": 40}))
    spec = get_spec("digits")
    task = Classification()
    train_ds, eval_ds = task.build_datasets(cfg, spec)
    assert task.pipeline == "memory" and isinstance(eval_ds, TensorImages) and len(eval_ds) == 40
    assert len(train_ds) == 80 and train_ds.images.shape == (80, 1, *cfg.img_size)
    pil = build_dataset("digits", "test", transform=classification_transforms(cfg.recipe, spec, cfg.img_size, False))
    idx = sorted(torch.randperm(len(pil), generator=torch.Generator().manual_seed(0))[:40].tolist())
    x, y = eval_ds.__getitems__(list(range(40)))
    assert torch.equal(x, torch.stack([pil[i][0] for i in idx]))
    assert y.tolist() == [pil[i][1] for i in idx]


def test_randaugment_keeps_the_pil_pipeline(tmp_path):
    cfg = resolve(tiny(tmp_path / "r", recipe={"randaugment": "rand-m5"}))
    task = Classification()
    train_ds, _ = task.build_datasets(cfg, get_spec("digits"))
    assert task.pipeline == "pil" and not isinstance(train_ds, TensorImages)


# ---- schedules in steps ----------------------------------------------------------------------
def test_derive_epochs_gives_at_least_min_steps_and_scales_the_warmup():
    assert derive_epochs(10, 1, 0, 5) == (10, 1)
    assert derive_epochs(10, 1, 40, 5) == (10, 1)  # 50 steps already
    assert derive_epochs(10, 2, 300, 5) == (60, 12)
    assert derive_epochs(10, 2, 301, 5) == (61, 12)


def test_eval_epochs():
    assert eval_epochs(10, 0) == {10}
    assert eval_epochs(10, 3) == {3, 6, 9, 10}
    assert eval_epochs(100, 1, eval_points=4) == {25, 50, 75, 100}


def test_a_small_subset_gets_min_steps_and_the_record_says_so(tmp_path):
    # 80 images, batch 16: 5 steps an epoch; a floor of 12 steps -> 3 epochs, 15 steps.
    rec = train(tiny(tmp_path / "r", recipe={"min_steps": 12, "eval_points": 2, "randaugment": None}))
    assert rec["provenance"]["epochs"] == 3 and rec["provenance"]["steps"] == 15
    assert rec["config"]["epochs"] == 3 and rec["config"]["recipe"]["min_steps"] == 12
    assert rec["provenance"]["data_pipeline"] == "memory"
    rows = (tmp_path / "r" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    evaluated = [r.split(",")[0] for r in rows[1:] if r.split(",")[header.index("eval_top1")]]
    assert evaluated == ["2", "3"]  # two points of the learning curve, the last epoch among them


# ---- identity, sharing, concurrency -------------------------------------------------------------
def test_config_hash_ignores_where_a_run_lies_but_not_what_it_is(tmp_path):
    a, b = resolved_hash(tiny(tmp_path / "a")), resolved_hash(tiny(tmp_path / "elsewhere", quiet=False))
    assert a == b
    assert resolved_hash(tiny(tmp_path / "a", seed=1)) != a
    assert resolved_hash(tiny(tmp_path / "a", recipe={"reprob": 0.3})) != a
    assert records.config_hash({"x": 1, "y": [1, 2]}) == records.config_hash({"y": (1, 2), "x": 1})


def test_a_finished_run_is_reused_not_repeated(tmp_path):
    first = run_all([tiny(tmp_path / "ch2" / "run")], log=None)[0]
    assert first["how"] == "trained" and first["config_hash"] == resolved_hash(tiny(tmp_path / "x"))
    again = run_all([tiny(tmp_path / "ch3" / "run"), tiny(tmp_path / "ch3" / "other", seed=1)],
                    share=[tmp_path], log=None)
    assert again[0]["how"] == "reused" and again[0]["reused_from"] == str(tmp_path / "ch2" / "run" / "record.json")
    assert again[0]["metrics"] == first["metrics"]
    assert not (tmp_path / "ch3" / "run" / "checkpoint.pt").exists()
    assert json.loads((tmp_path / "ch3" / "run" / REUSED).read_text())["config_hash"] == first["config_hash"]
    assert again[1]["how"] == "trained"
    assert run_all([tiny(tmp_path / "ch2" / "run")], log=None)[0]["how"] == "done before"


def test_duplicates_in_one_call_train_once(tmp_path):
    recs = run_all([tiny(tmp_path / "a"), tiny(tmp_path / "b")], log=None)
    assert [r["how"] for r in recs] == ["trained", "reused"]
    assert not (tmp_path / "b" / "checkpoint.pt").exists()


def test_two_worker_processes_give_the_results_of_one(tmp_path):
    torch_threads = torch.get_num_threads()
    try:
        alone = run_all([tiny(tmp_path / "one" / f"s{s}", seed=s) for s in (0, 1)], threads=1, log=None)
    finally:
        torch.set_num_threads(torch_threads)
    pair = run_all([tiny(tmp_path / "two" / f"s{s}", seed=s) for s in (0, 1)], jobs=2, threads=1, log=None)
    assert [r["how"] for r in pair] == ["trained", "trained"]
    assert [r["metrics"]["top1"] for r in pair] == [r["metrics"]["top1"] for r in alone]
    assert [r["metrics"]["train_loss"] for r in pair] == [r["metrics"]["train_loss"] for r in alone]


def test_the_run_expected_to_take_longest_starts_first(tmp_path, monkeypatch):
    """Runs of a kind not timed yet start first, longest schedule first; then the run with the
    longest expected time (its length times the time per step of its kind's finished runs), so
    that two workers end together instead of one alone on a slow model's last run."""
    from lifestudy.engine import runs

    started = []

    def fake_train(cfg):  # the LIFE model takes three times as long per epoch
        started.append((cfg.model.endswith("_life"), cfg.seed))
        epochs = resolve(cfg).epochs
        return {"metrics": {"top1": 50.0, "headline": "top1"}, "seconds": epochs * (3.0 if started[-1][0] else 1.0)}

    monkeypatch.setattr(runs, "_train_one", fake_train)
    base, life = "deit_test_patch4_32", "deit_test_patch4_32_life"
    configs = [tiny(tmp_path / "a0", model=base, epochs=4), tiny(tmp_path / "b0", model=life, epochs=4),
               *[tiny(tmp_path / f"{m}{s}", model=m, seed=s, epochs=None)  # the profile's 2 epochs
                 for m in (base, life) for s in (1, 2)]]
    recs = run_all(configs, log=None)
    assert started == [(False, 0), (True, 0), (True, 1), (True, 2), (False, 1), (False, 2)]
    assert [r["how"] for r in recs] == ["trained"] * 6  # the records still in the configs' order
    assert [r["seconds"] for r in recs] == [4.0, 12.0, 2.0, 2.0, 6.0, 6.0]


def test_doubled_schedule_and_the_check_table(tmp_path):
    cfg = tiny(tmp_path / "r", recipe={"min_steps": 10})
    twice = doubled(cfg)
    r = resolve(twice)
    assert r.epochs == 2 and r.recipe["min_steps"] == 20 and twice.out == str(tmp_path / "r") + "-x2"
    base, long = run_all([cfg, twice], log=None)
    assert long["provenance"]["steps"] == 2 * base["provenance"]["steps"] == 20
    table = schedule_check([(base, long)])
    row = table.iloc[0]
    assert row["change"] == pytest.approx(long["metrics"]["top1"] - base["metrics"]["top1"])
    assert row["converged"] == (abs(row["change"]) < 2.0)


def test_the_check_table_says_whether_a_change_is_within_seed_noise():
    def rec(model, seed, top1, steps=100):
        return {"metrics": {"top1": top1, "headline": "top1"},
                "provenance": {"dataset": "digits", "subset": 10, "model": model, "seed": seed, "steps": steps}}

    seeds = [rec("a", 0, 70.0), rec("a", 1, 72.0), rec("a", 2, 74.0),  # sd 2: noise up to 5.54 points
             rec("b", 0, 70.0), rec("b", 1, 70.5), rec("b", 2, 69.5),  # sd 0.5: up to 1.39
             rec("c", 0, 60.0)]  # one seed: no sd
    table = schedule_check([(rec("a", 0, 70.0), rec("a", 0, 73.0, 200)), (rec("b", 0, 70.0), rec("b", 0, 71.9, 200)),
                            (rec("c", 0, 60.0), rec("c", 0, 61.0, 200))], seeds=seeds)
    assert table["seed sd"].tolist()[:2] == pytest.approx([2.0, 0.5])
    # a: over the 2-point rule but within what seeds differ by; b: under the rule, beyond the noise
    assert table["converged"].tolist() == [False, True, True]
    assert table["within seed noise"].tolist() == [True, False, None]
    assert "seed sd" not in schedule_check([(rec("a", 0, 70.0), rec("a", 0, 73.0, 200))]).columns
    assert check_summary(table) == (
        "Schedule check: 2 of 3 schedules converged (doubling moved top-1 by < 2 points); of the 1 that did not "
        "(with several seeds), 1 changed by no more than two seeds of the schedule differ by (95 %), so the check "
        "cannot tell them from noise.")
    one_seed = schedule_check([(rec("c", 0, 60.0), rec("c", 0, 65.0, 200))], seeds=seeds)
    assert check_summary(one_seed) == "Schedule check: 0 of 1 schedules converged (doubling moved top-1 by < 2 points)."
