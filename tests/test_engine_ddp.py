"""Two CPU processes under torchrun (gloo): one record, written by rank 0, with the world size;
the global batch as asked; every evaluation image counted exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lifestudy.engine import load_checkpoint

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "lifestudy", "train", "--profile", "smoke", "--data", "digits",
           "--model", "deit_test_patch4_32_life", "--subset", "8", "--batch-size", "16", "--epochs", "2",
           "--set", "eval_subset=50", "--device", "cpu", "--quiet", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    # Its own session, so a hung run can be stopped with all its worker processes.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, stderr[-3000:]
    assert stdout.count("record.json") == 1  # one summary line: rank 0 only

    record = json.loads((out / "record.json").read_text())
    assert record["provenance"]["world_size"] == 2
    assert record["config"]["batch_size"] == 16  # global: 8 per process
    assert record["metrics"]["eval_images"] == 50  # 25 + 25, none twice, none missed
    assert 0 <= record["metrics"]["top1"] <= 100
    ckpt = load_checkpoint(out)
    assert ckpt["epoch"] == 2 and len(ckpt["rng"]) == 2  # each process's RNG state, for resume
    # 80 images, 8 per process per step: 5 steps per epoch, 10 updates in all.
    assert ckpt["num_updates"] == 10
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
