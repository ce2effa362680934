"""The training engine: a run end to end, records, determinism, exact resume, the NaN guard,
clear errors, evaluation of a run folder, and the CLI."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lifestudy.cli import main
from lifestudy.engine import TrainConfig, TrainingDivergedError, evaluate_run, load_checkpoint, load_run, train
from lifestudy.errors import ConfigError
from lifestudy.tasks.classification import Classification

REPO = Path(__file__).resolve().parent.parent

# A tiny run: 8 digits per class (80 images), batch 16 -> 5 steps per epoch, 64 test images.
TINY = dict(task="classification", data="digits", model="deit_test_patch4_32", profile="smoke",
            subset=8, batch_size=16, quiet=True, recipe={"eval_subset": 64})


def tiny(out, **changes) -> TrainConfig:
    kw = {**TINY, **changes}
    kw["recipe"] = {**TINY["recipe"], **changes.get("recipe", {})}
    return TrainConfig(out=str(out), **kw)


def weights(run) -> dict[str, torch.Tensor]:
    return load_checkpoint(run)["model"]


def same_weights(a, b) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


RESULT_KEYS = ("top1", "loss", "train_loss")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 2-epoch run (the yardstick of determinism and resume)."""
    out = tmp_path_factory.mktemp("ref") / "run"
    return out, train(tiny(out, epochs=2))


@pytest.mark.parametrize("model", ["deit_test_patch4_32", "deit_test_patch4_32_life"])
def test_smoke_run_writes_config_metrics_checkpoint_and_record(tmp_path, model):
    out = tmp_path / "run"
    record = train(tiny(out, model=model, epochs=2))

    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.json", "metrics.csv", "record.json"]
    on_disk = json.loads((out / "record.json").read_text())
    assert on_disk["kind"] == "train" and on_disk["task"] == "classification"
    m = on_disk["metrics"]
    assert 0 <= m["top1"] <= 100 and 0 <= m["top5"] <= 100 and m["loss"] > 0
    assert m["train_images_per_s"] > 0 and m["eval_images_per_s"] > 0
    assert m["eval_images"] == 64 and m["headline"] == "top1"
    prov = on_disk["provenance"]
    for key in ("profile", "dataset", "subset", "model", "seed", "epochs", "device", "world_size",
                "python", "torch", "timm", "git_commit", "git_dirty", "wall_time_s"):
        assert key in prov, key
    assert (prov["profile"], prov["dataset"], prov["subset"], prov["model"], prov["epochs"]) == (
        "smoke", "digits", 8, model, 2)
    assert prov["world_size"] == 1 and prov["device"] == "cpu"
    assert record["metrics"]["top1"] == m["top1"]

    config = json.loads((out / "config.json").read_text())
    assert config["resolved"] and config["epochs"] == 2 and config["img_size"] == [32, 32]
    assert config["recipe"]["opt"] == "adamw" and config["lr"] == pytest.approx(8e-3 * 16 / 512)
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"lr", "train_loss", "train_images_per_s", "eval_top1"} <= set(rows[0])

    # The checkpoint describes itself: the model comes back from the folder alone.
    model_back, cfg, spec = load_run(out)
    assert cfg.model == model and spec.name == "digits" and not model_back.training


def test_same_seed_same_result_other_seed_other_result(tmp_path, reference):
    ref_out, ref = reference
    again = train(tiny(tmp_path / "again", epochs=2))
    assert {k: again["metrics"][k] for k in RESULT_KEYS} == {k: ref["metrics"][k] for k in RESULT_KEYS}
    assert same_weights(tmp_path / "again", ref_out)
    train(tiny(tmp_path / "seed1", epochs=2, seed=1))
    assert not same_weights(tmp_path / "seed1", ref_out)


def test_stopped_then_resumed_run_ends_exactly_like_an_uninterrupted_one(tmp_path, reference):
    ref_out, ref = reference
    out = tmp_path / "run"
    part = train(tiny(out, epochs=2, stop_after_epochs=1))
    assert part["interrupted"] and not (out / "record.json").exists()
    assert load_checkpoint(out)["epoch"] == 1
    assert len(list(csv.DictReader((out / "metrics.csv").open()))) == 1

    resumed = train(tiny(out, epochs=2, resume=True))
    assert {k: resumed["metrics"][k] for k in RESULT_KEYS} == {k: ref["metrics"][k] for k in RESULT_KEYS}
    assert same_weights(out, ref_out)
    assert resumed["provenance"]["resumed"] is True
    ref_rows = list(csv.DictReader((ref_out / "metrics.csv").open()))
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["train_loss"] for r in rows] == [r["train_loss"] for r in ref_rows]

    # Resuming a finished run does no work and returns its record.
    assert train(tiny(out, epochs=2, resume=True))["metrics"] == resumed["metrics"]


def test_long_runs_checkpoint_every_few_epochs_and_still_resume_exactly(tmp_path, monkeypatch):
    """A run of more than CHECKPOINTS_PER_RUN epochs writes a checkpoint every few epochs and
    after the last; a run stopped between two of them resumes from the last one it wrote and
    ends exactly as an uninterrupted run."""
    from lifestudy.engine import loop

    monkeypatch.setattr(loop, "CHECKPOINTS_PER_RUN", 2)  # 5 epochs: a checkpoint every 3
    saved = []
    save = loop._save_checkpoint
    monkeypatch.setattr(loop, "_save_checkpoint", lambda run, epoch: (saved.append(epoch + 1), save(run, epoch)))
    ref = train(tiny(tmp_path / "ref", epochs=5))
    assert saved == [3, 5]
    assert len(list(csv.DictReader((tmp_path / "ref" / "metrics.csv").open()))) == 5

    saved.clear()
    out = tmp_path / "run"
    train(tiny(out, epochs=5, stop_after_epochs=4))  # stopped: it checkpoints where it stops
    assert saved == [3, 4] and load_checkpoint(out)["epoch"] == 4
    resumed = train(tiny(out, epochs=5, resume=True))
    assert {k: resumed["metrics"][k] for k in RESULT_KEYS} == {k: ref["metrics"][k] for k in RESULT_KEYS}
    assert same_weights(out, tmp_path / "ref")


@pytest.mark.slow
def test_killed_cli_run_resumes_to_the_same_result(tmp_path):
    """SIGKILL a real `lifestudy train` process mid-run, resume it, compare with a clean run."""
    args = ["train", "--profile", "smoke", "--data", "digits", "--model", "deit_test_patch4_32",
            "--subset", "8", "--batch-size", "16", "--epochs", "3", "--set", "eval_subset=64", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "lifestudy", *args, "--out", str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not (killed / "checkpoint.pt").exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not (killed / "record.json").exists()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the killed process: bits depend on the thread count
    try:
        assert main([*args, "--out", str(killed), "--resume"]) == 0
        assert main([*args, "--out", str(tmp_path / "clean")]) == 0
    finally:
        torch.set_num_threads(threads)
    a = json.loads((killed / "record.json").read_text())["metrics"]
    b = json.loads((tmp_path / "clean" / "record.json").read_text())["metrics"]
    assert {k: a[k] for k in RESULT_KEYS} == {k: b[k] for k in RESULT_KEYS}
    assert same_weights(killed, tmp_path / "clean")
    assert not (killed / ".lock").exists()  # the killed run's lock was stale; the resumed run removed it


def test_nan_loss_stops_with_epoch_and_step_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(tiny(out, epochs=3, stop_after_epochs=1))
    before = (out / "checkpoint.pt").read_bytes()

    calls = {"n": 0}
    original = Classification.loss

    def poisoned(self, model, batch, cfg):
        loss, logs = original(self, model, batch, cfg)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] == 3 else loss), logs

    monkeypatch.setattr(Classification, "loss", poisoned)
    with pytest.raises(TrainingDivergedError, match=r"epoch 2, step 3") as err:
        train(tiny(out, epochs=3, resume=True))
    assert "checkpoint of epoch 1" in str(err.value)
    assert (out / "checkpoint.pt").read_bytes() == before
    assert not (out / "record.json").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temp files left behind"


def test_checkpoint_write_killed_midway_leaves_the_old_one(tmp_path, monkeypatch):
    from lifestudy.engine import checkpoint

    path = tmp_path / "checkpoint.pt"
    checkpoint.save_checkpoint(path, {"config": {}, "model": {}, "epoch": 1})

    def dies(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.torch, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint(path, {"config": {}, "model": {}, "epoch": 2})
    assert checkpoint.load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_evaluate_run_reproduces_the_recorded_metrics(tmp_path, reference):
    ref_out, ref = reference
    record = evaluate_run(ref_out)
    assert record["kind"] == "eval"
    assert record["metrics"]["top1"] == pytest.approx(ref["metrics"]["top1"])
    assert record["metrics"]["loss"] == pytest.approx(ref["metrics"]["loss"], rel=1e-5)
    assert (ref_out / "eval-digits.json").exists()
    with pytest.raises(ConfigError, match="segmentation"):
        evaluate_run(ref_out, data="scenes-seg")


def test_ema_is_kept_and_evaluated(tmp_path):
    record = train(tiny(tmp_path / "run", epochs=1, recipe={"ema": True, "ema_decay": 0.9}))
    assert record["metrics"]["evaluated"] == "ema"
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["ema"] is not None and ckpt["ema"].keys() == ckpt["model"].keys()


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(data="scenes-seg"), "pass --task segmentation"),
        (dict(model="no_such_model"), "must be a known timm model"),
        (dict(profile="huge"), "unknown profile"),
        (dict(recipe={"mixup_alpha": 1.0}), "unknown recipe field"),
        (dict(task="nonsense"), "unknown task"),
        (dict(teacher="somewhere"), "distillation token"),
        (dict(out=""), "--out"),
        (dict(device="cuda:7"), "cuda") if not torch.cuda.is_available() else (dict(device="tpu"), "unknown device"),
    ],
)
def test_bad_options_raise_clear_errors(tmp_path, changes, match):
    cfg = tiny(tmp_path / "run", epochs=1)
    for k, v in changes.items():
        setattr(cfg, k, v)
    with pytest.raises(ConfigError, match=match):
        train(cfg)


def test_existing_run_needs_resume_and_the_same_settings(tmp_path):
    out = tmp_path / "run"
    train(tiny(out, epochs=2, stop_after_epochs=1))
    with pytest.raises(ConfigError, match="--resume"):
        train(tiny(out, epochs=2))
    with pytest.raises(ConfigError, match="seed: 0 -> 1"):
        train(tiny(out, epochs=2, seed=1, resume=True))


def test_cli_train_and_eval(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--profile", "smoke", "--data", "digits", "--model", "deit_test_patch4_32",
                 "--subset", "8", "--batch-size", "16", "--epochs", "1", "--set", "eval_subset=64",
                 "--quiet", "--out", str(out)]) == 0
    assert "top1" in capsys.readouterr().out
    assert main(["eval", "--checkpoint", str(out)]) == 0
    assert "top1" in capsys.readouterr().out
    # Errors reach the user as one line, not a traceback.
    assert main(["train", "--data", "digits", "--model", "deit_test_patch4_32", "--out", str(out)]) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(tmp_path / "nowhere")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "eval"])
def test_cli_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "--data" in text and ("--resume" in text if command == "train" else "--checkpoint" in text)
