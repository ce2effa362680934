"""Runs that cannot be corrupted (issue 16): one writer per run folder, every setting checked
before anything is built, resume exact or refused, nothing overwritten or mixed, and errors
that are one line ending in a fix that works when followed (each test follows its advice)."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lifestudy import profiles
from lifestudy.cli import main
from lifestudy.engine import TrainConfig, load_checkpoint, resolve, train
from lifestudy.engine import config as engine_config
from lifestudy.engine import loop, runfolder
from lifestudy.errors import ConfigError, RunFolderError
from lifestudy.tasks.classification import Classification

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}

# 8 digits per class (80 images), batch 16: 5 steps per epoch, 64 test images.
ARGS = ["train", "--profile", "smoke", "--data", "digits", "--model", "deit_test_patch4_32",
        "--subset", "8", "--batch-size", "16", "--epochs", "2", "--set", "eval_subset=64", "--quiet"]
TINY = dict(task="classification", data="digits", model="deit_test_patch4_32", profile="smoke",
            subset=8, batch_size=16, epochs=2, quiet=True, recipe={"eval_subset": 64})
# The last clause of a message is its fix.
FIX = re.compile(r"(pass|choose|add|wait|train|start|resume|leave)\b[^;]*$")


def tiny(out, **changes) -> TrainConfig:
    kw = {**TINY, **changes}
    kw["recipe"] = {**TINY["recipe"], **changes.get("recipe", {})}
    return TrainConfig(out=str(out), **kw)


def error_of(capsys, argv) -> str:
    """Run the CLI; it must exit 2 with one line on stderr that ends in a fix. Returns the line."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert err.startswith(f"lifestudy {argv[0]}: error: ") and "Traceback" not in err
    assert FIX.search(err.strip()), f"does not end in a fix: {err!r}"
    return err.strip()


def ok(capsys, argv) -> None:
    code = main(argv)
    assert code == 0, capsys.readouterr().err


def suggested(message: str, start: str) -> list[str]:
    """The options a message suggests, from ``start`` up to the next '(' or ','."""
    found = re.search(re.escape(start) + r"[^(),;]*", message)
    assert found, f"{start!r} not suggested in {message!r}"
    return shlex.split(found.group(0))


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A run stopped after epoch 1 of 2 (copy it before changing it)."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    train(tiny(out, stop_after_epochs=1))
    return out


def copy_of(run: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(run, dest)
    return dest


def rows(run: Path) -> list[dict]:
    return list(csv.DictReader((run / "metrics.csv").open()))


# ---- one writer per run folder ----------------------------------------------------------

@pytest.mark.slow
def test_a_second_run_into_a_folder_being_written_is_refused_and_nothing_mixes(tmp_path, capsys):
    """The issue's case: run A (seed 1) writing, run B (seed 2, 1 epoch) started into the same --out."""
    out = tmp_path / "x"
    a = subprocess.Popen([sys.executable, "-m", "lifestudy", *ARGS, "--epochs", "3", "--seed", "1",
                          "--out", str(out)], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not (out / runfolder.LOCK).exists() or not (out / runfolder.LOCK).read_text():
            assert a.poll() is None, a.stderr.read().decode()
            assert time.time() < deadline, "run A took no lock within 120 s"
            time.sleep(0.02)
        err = error_of(capsys, [*ARGS, "--epochs", "1", "--seed", "2", "--out", str(out)])
        assert f"--out {out} is in use by another run (pid {a.pid} on host" in err
        assert err.endswith("wait for it to finish, or pass another --out folder")
    finally:
        assert a.wait(timeout=300) == 0, a.stderr.read().decode()
    config = json.loads((out / "config.json").read_text())
    record = json.loads((out / "record.json").read_text())
    assert (config["seed"], config["epochs"]) == (1, 3) == (record["config"]["seed"], record["config"]["epochs"])
    assert load_checkpoint(out)["config"]["seed"] == 1 and len(rows(out)) == 3
    assert not (out / runfolder.LOCK).exists()
    # The advice: another --out folder works; once A is done, the same folder says it is finished.
    ok(capsys, [*ARGS, "--epochs", "1", "--seed", "2", "--out", str(tmp_path / "y")])
    assert "already holds a finished run" in error_of(capsys, [*ARGS, "--seed", "2", "--out", str(out)])


def _holder(out: Path) -> subprocess.Popen:
    """Another process holding the lock of ``out`` as the module docstring says (flock on
    ``<out>/.lock``, its name inside), until killed; without importing torch, so it starts fast."""
    code = ("import fcntl, json, os, socket, sys, time; os.makedirs(sys.argv[1]); "
            "f = open(os.path.join(sys.argv[1], '.lock'), 'w'); fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB); "
            "f.write(json.dumps({'pid': os.getpid(), 'host': socket.gethostname(), 'started': 'now'})); "
            "f.flush(); print('held', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], env=ENV, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"held"
    return proc


def test_the_lock_names_its_holder_and_a_killed_holders_lock_is_taken_over(tmp_path):
    out = tmp_path / "run"
    holder = _holder(out)
    try:
        with pytest.raises(RunFolderError, match=rf"in use by another run \(pid {holder.pid} on host"):
            train(tiny(out))
        assert not runfolder.run_files(out)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (out / runfolder.LOCK).exists()  # left behind by the killed process: stale
    train(tiny(out, epochs=1))
    assert not (out / runfolder.LOCK).exists() and (out / "record.json").exists()


def test_without_flock_a_dead_holder_is_stale_and_a_live_one_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(runfolder, "fcntl", None)  # as on a file system without flock
    out = tmp_path / "run"
    out.mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        host = runfolder.socket.gethostname()
        (out / runfolder.LOCK).write_text(json.dumps({"pid": live.pid, "host": host, "started": "then"}))
        with pytest.raises(RunFolderError, match=rf"pid {live.pid} .*if that process is gone, delete "):
            runfolder.RunLock.acquire(out)
    finally:
        live.kill()
        live.wait()
    (out / runfolder.LOCK).write_text(json.dumps({"pid": dead.pid, "host": host, "started": "then"}))
    with runfolder.RunLock.acquire(out) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert not (out / runfolder.LOCK).exists()


# ---- every setting checked before anything is built ----------------------------------------

@pytest.mark.parametrize("bad, field", [
    (["--set", "clip_grad=-1"], "recipe.clip_grad=-1"),
    (["--set", "mixup=abc"], "recipe.mixup='abc'"),
    (["--set", "opt=nosuchopt"], "recipe.opt='nosuchopt'"),
    (["--set", "randaugment=garbage"], "recipe.randaugment='garbage'"),
    (["--set", "mixup_prob=1.5"], "recipe.mixup_prob=1.5"),
    (["--set", "ema=yes"], "recipe.ema='yes'"),
    (["--batch-size", "0"], "batch_size=0"),
    (["--lr", "nan"], "lr=nan"),
    (["--lr", "-1"], "lr=-1.0"),
    (["--epochs", "0"], "epochs=0"),
    (["--subset", "-3"], "subset=-3"),
    (["--num-workers", "-1"], "num_workers=-1"),
])
def test_a_bad_setting_is_one_line_naming_it_and_the_fix_it_gives_works(tmp_path, capsys, monkeypatch, bad, field):
    built = []
    monkeypatch.setattr(Classification, "build_model", lambda self, *a: built.append(1) or 1 / 0)
    out = tmp_path / "run"
    err = error_of(capsys, [*ARGS, "--epochs", "1", *bad, "--out", str(out)])
    assert f"error: {field}: must be " in err
    assert not built and not out.exists(), "nothing is built or written for a bad setting"
    monkeypatch.undo()
    ok(capsys, [*ARGS, "--epochs", "1", *bad, *suggested(err, "pass e.g. ")[2:], "--out", str(out)])


def test_every_problem_is_reported_at_once(tmp_path, capsys):
    err = error_of(capsys, [*ARGS, "--lr", "-1", "--set", "clip_grad=-1", "--out", str(tmp_path / "run")])
    assert "lr=-1.0: must be a finite number > 0" in err and "recipe.clip_grad=-1: must be" in err


def test_the_same_rules_whether_from_the_cli_set_a_profile_or_a_train_config(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    cli = error_of(capsys, [*ARGS, "--set", "clip_grad=-1", "--out", str(out)]).split("error: ", 1)[1]
    with pytest.raises(ConfigError) as from_config:
        train(tiny(out, recipe={"clip_grad": -1}))
    smoke = profiles.get_profile("smoke")
    bad = dataclasses.replace(smoke, recipe=smoke.recipe.replace(clip_grad=-1))
    monkeypatch.setattr(engine_config, "get_profile", lambda name: bad)
    with pytest.raises(ConfigError) as from_profile:
        train(tiny(out))
    assert str(from_config.value) == str(from_profile.value) == cli
    # A batch of 0 is an error from every source (it used to become the profile's 32).
    digits = dataclasses.replace(smoke.settings_for("digits"), batch_size=0)
    monkeypatch.setattr(engine_config, "get_profile",
                        lambda name: dataclasses.replace(smoke, data={**smoke.data, "digits": digits}))
    cfg = tiny(out)
    cfg.batch_size = None
    with pytest.raises(ConfigError, match=r"^batch_size=0: must be an integer >= 1; pass e.g. --batch-size 32$"):
        train(cfg)


def test_a_batch_larger_than_the_training_set_is_refused_with_a_batch_that_fits(tmp_path, capsys):
    out = tmp_path / "run"
    err = error_of(capsys, [*ARGS, "--batch-size", "100000", "--out", str(out)])
    assert "batch_size=100000: must be <= the training set (80 images of digits, 8 per class)" in err
    assert not out.exists()
    ok(capsys, [*ARGS, "--epochs", "1", *suggested(err, "pass e.g. ")[2:], "--out", str(out)])
    assert json.loads((out / "config.json").read_text())["batch_size"] == 64


def test_an_odd_batch_with_mixup_is_refused_before_training(tmp_path, capsys):
    err = error_of(capsys, [*ARGS, "--batch-size", "15", "--out", str(tmp_path / "run")])
    assert "mixup/cutmix need an even batch per process; pass e.g. --batch-size 16" in err


@pytest.mark.parametrize("task, data", [("detection", "scenes-det"), ("segmentation", "scenes-seg")])
def test_dense_tasks_with_a_cnn_backbone_say_which_backbone_works(tmp_path, capsys, task, data):
    argv = ["train", "--task", task, "--profile", "smoke", "--data", data, "--quiet", "--out", str(tmp_path / "r")]
    err = error_of(capsys, [*argv, "--model", "resnet18"])
    assert f"model='resnet18': {task} needs a ViT/DeiT or SwinV2 backbone" in err and "is a CNN" in err
    model = suggested(err, "pass e.g. --model ")[3]
    cfg = TrainConfig(task=task, data=data, model=model, profile="smoke", out=str(tmp_path / "r"))
    assert resolve(cfg).model == model  # the suggested backbone passes every check


def test_every_setting_has_a_rule_or_a_reason():
    recipe = {f"recipe.{f.name}" for f in dataclasses.fields(profiles.Recipe)}
    top = {f.name for f in dataclasses.fields(TrainConfig)}
    covered = set(engine_config.RULES) | set(engine_config.NOT_CHECKED)
    assert recipe | top <= covered, f"settings without a rule: {sorted((recipe | top) - covered)}"
    assert set(engine_config.RULES) <= recipe | top, "rules for settings that do not exist"
    assert set(runfolder.RUN_FILES) == {loop.CONFIG, loop.METRICS_CSV, loop.CHECKPOINT, loop.RECORD}


# ---- --out and --root -------------------------------------------------------------------------

def _read_only_folder(tmp_path: Path) -> Path:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.access(ro, os.W_OK):  # root ignores permissions: use a file system that refuses everyone
        return Path("/sys/lifestudy-test")
    return ro


@pytest.mark.parametrize("where", ["file", "under_file", "read_only"])
def test_an_out_that_cannot_be_a_writable_folder_is_refused_before_model_and_data(tmp_path, capsys,
                                                                                  monkeypatch, where):
    (tmp_path / "notes.txt").write_text("mine")
    out = {"file": tmp_path / "notes.txt", "under_file": tmp_path / "notes.txt" / "run",
           "read_only": _read_only_folder(tmp_path) / "run"}[where]
    built = []
    monkeypatch.setattr(Classification, "build_model", lambda self, *a: built.append("model") or 1 / 0)
    monkeypatch.setattr(Classification, "build_datasets", lambda self, *a: built.append("data") or 1 / 0)
    err = error_of(capsys, [*ARGS, "--out", str(out)])
    fix = {"file": "pass --out a folder", "under_file": "pass --out a path that is not under a file",
           "read_only": "pass --out a folder you can write to"}[where]
    assert f"--out {out}" in err and err.endswith(fix)
    assert not built and (tmp_path / "notes.txt").read_text() == "mine"
    (tmp_path / "ro").chmod(0o755)


def test_data_fetch_root_naming_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "data.txt").write_text("")
    err = error_of(capsys, ["data", "fetch", "digits", "--root", str(tmp_path / "data.txt")])
    assert f"--root {tmp_path / 'data.txt'} is a file, not a folder; pass --root a folder" in err
    err = error_of(capsys, ["data", "check", "digits", "--root", str(tmp_path / "data.txt")])
    assert "is a file" in err


# ---- resume: exact or refused ------------------------------------------------------------------

def test_resume_with_other_workers_or_recipe_is_refused_with_every_difference(tmp_path, stopped, capsys):
    run = copy_of(stopped, tmp_path)
    before = (run / "checkpoint.pt").read_bytes()
    err = error_of(capsys, [*ARGS, "--num-workers", "2", "--set", "mixup=0", "--resume", "--out", str(run)])
    assert "num_workers: 0 -> 2" in err and "recipe.mixup: 0.8 -> 0" in err
    assert (run / "checkpoint.pt").read_bytes() == before
    assert err.endswith("or start a new run in another --out folder")
    # Followed: the checkpoint's settings resume it; --quiet and the spelling of --device may differ.
    ok(capsys, [*ARGS, "--device", "cpu", "--resume", "--out", str(run)])
    assert len(rows(run)) == 2


def test_resume_refuses_a_changed_lr_unless_asked_and_the_record_says_so_epoch_by_epoch(tmp_path, stopped, capsys):
    """A run continued with another lr follows the new lr's schedule from where it stopped."""
    run = copy_of(stopped, tmp_path)
    old_lr = load_checkpoint(run)["config"]["lr"]
    err = error_of(capsys, [*ARGS, "--lr", "1e-4", "--resume", "--out", str(run)])
    assert f"lr: {old_lr!r} -> 0.0001 (may change with --allow-change lr)" in err
    ok(capsys, [*ARGS, "--lr", "1e-4", "--resume", "--allow-change", "lr", "--out", str(run)])

    record = json.loads((run / "record.json").read_text())
    assert record["config"]["changes"] == [{"epoch": 2, "field": "lr", "from": old_lr, "to": 1e-4}]
    assert [float(r["peak_lr"]) for r in rows(run)] == [old_lr, 1e-4]
    fresh = tmp_path / "fresh"
    train(tiny(fresh, lr=1e-4))
    assert rows(run)[1]["lr"] == rows(fresh)[1]["lr"]  # epoch 2 on the new lr's schedule
    assert rows(run)[0]["lr"] == rows(stopped)[0]["lr"]  # epoch 1 as it was


def test_allow_change_takes_only_lr_and_clip_grad_and_only_with_resume(tmp_path, stopped, capsys):
    run = copy_of(stopped, tmp_path)
    err = error_of(capsys, [*ARGS, "--allow-change", "epochs", "--resume", "--out", str(run)])
    assert "allow_change=epochs: only lr, clip_grad may change" in err
    err = error_of(capsys, [*ARGS, "--allow-change", "lr", "--lr", "1e-4", "--out", str(tmp_path / "new")])
    assert "pass --resume --allow-change lr" in err
    ok(capsys, [*ARGS, "--epochs", "1", "--lr", "1e-4", *suggested(err, "pass --resume")[1:], "--out",
                str(tmp_path / "new")])


def _poison(monkeypatch, at_call: int) -> None:
    calls = {"n": 0}
    original = Classification.loss

    def poisoned(self, model, batch, cfg):
        loss, logs = original(self, model, batch, cfg)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] == at_call else loss), logs

    monkeypatch.setattr(Classification, "loss", poisoned)


@pytest.mark.parametrize("route", ["--resume --allow-change lr", "--resume --allow-change clip_grad"])
@pytest.mark.parametrize("at_call", [8, 2], ids=["epoch2", "epoch1"])
def test_after_a_nan_the_advice_continues_the_run(tmp_path, capsys, monkeypatch, route, at_call):
    out = tmp_path / "run"
    _poison(monkeypatch, at_call)
    err = error_of(capsys, [*ARGS, "--out", str(out)])
    assert "the training loss became nan" in err
    monkeypatch.undo()
    ok(capsys, [*ARGS, *suggested(err, route), "--out", str(out)])
    changes = json.loads((out / "record.json").read_text())["config"]["changes"]
    assert [(c["epoch"], c["field"]) for c in changes] == [(2 if at_call == 8 else 1, route.split()[-1])]
    assert len(rows(out)) == 2


# ---- nothing overwritten or mixed -------------------------------------------------------------

@pytest.mark.parametrize("state", ["unfinished", "finished", "config_only", "record_only"])
def test_a_folder_holding_a_run_is_refused_and_the_advice_leads_somewhere(tmp_path, stopped, capsys, state):
    run = copy_of(stopped, tmp_path)
    if state == "finished":
        ok(capsys, [*ARGS, "--resume", "--out", str(run)])
    elif state == "config_only":  # killed before its first checkpoint
        for name in ("checkpoint.pt", "metrics.csv"):
            (run / name).unlink()
    elif state == "record_only":  # a finished run whose checkpoint was removed
        ok(capsys, [*ARGS, "--resume", "--out", str(run)])
        (run / "checkpoint.pt").unlink()
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    err = error_of(capsys, [*ARGS, "--seed", "3", "--out", str(run)])
    assert f"--out {run} already holds" in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before, "the folder was changed"
    if "pass --resume" in err:
        ok(capsys, [*ARGS, "--resume", "--out", str(run)])
        assert (run / "record.json").exists() and len(rows(run)) == 2
    else:
        assert err.endswith("choose a new --out folder")
        if state == "record_only":  # --resume cannot continue it either, and says the same
            assert error_of(capsys, [*ARGS, "--resume", "--out", str(run)]).endswith("choose a new --out folder")
        ok(capsys, [*ARGS, "--seed", "3", "--out", str(tmp_path / "new")])


def test_temp_files_of_a_killed_write_are_removed_at_the_next_start(tmp_path, stopped):
    run = copy_of(stopped, tmp_path)
    for name in (".checkpoint.pt.k1ll3d.tmp", ".record.json.abc.tmp", ".metrics.csv.x.tmp"):
        (run / name).write_bytes(b"half a file")
    (run / "notes.txt").write_text("mine")
    train(tiny(run, resume=True))
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint.pt", "config.json", "metrics.csv", "notes.txt", "record.json"]


def test_a_corrupt_checkpoint_says_to_train_again_into_a_new_folder_and_that_works(tmp_path, stopped, capsys):
    run = copy_of(stopped, tmp_path)
    (run / "checkpoint.pt").write_bytes(b"\x00not a checkpoint\nat all")
    err = error_of(capsys, [*ARGS, "--resume", "--out", str(run)])
    assert "it is damaged; train the run again into a new --out folder" in err
    ok(capsys, [*ARGS, "--out", str(tmp_path / "again")])
    assert error_of(capsys, ["eval", "--checkpoint", str(run)]).endswith("into a new --out folder")


# ---- eval -----------------------------------------------------------------------------------

def test_eval_batch_size_and_channels_are_checked_and_only_the_test_split_is_built(stopped, capsys, monkeypatch):
    err = error_of(capsys, ["eval", "--checkpoint", str(stopped), "--batch-size", "0"])
    assert "--batch-size 0: must be an integer >= 1; pass e.g. --batch-size 128" in err
    err = error_of(capsys, ["eval", "--checkpoint", str(stopped), "--data", "cifar10"])
    assert "1-channel images (digits); 'cifar10' is a classification dataset with 10 classes of 3-channel" in err
    fits = re.search(r"\(([^()]*)\)$", err).group(1).split(", ")
    assert "digits" in fits and "fashion-mnist" in fits

    from lifestudy import data

    splits = []
    original = data.build_dataset
    monkeypatch.setattr(data, "build_dataset", lambda name, split, *a, **k: splits.append(split) or
                        original(name, split, *a, **k))
    ok(capsys, ["eval", "--checkpoint", str(stopped), "--data", fits[fits.index("digits")]])
    assert splits == ["test"]
