"""``lifestudy bench``: a tiny real run, its record, its errors."""

from __future__ import annotations

import json

import pytest
import timm
import torch

from lifestudy.bench import BenchConfig, activation_bytes, bench
from lifestudy.cli import main
from lifestudy.errors import ConfigError


def test_bench_record_pairs_each_life_model_with_its_baseline():
    cfg = BenchConfig(models=["deit_test_patch4_32_life"], batch_size=2, repeats=2, threads=1, num_classes=5)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the caller's setting differs from the bench's
    try:
        rec = bench(cfg)
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(threads)
    assert rec["kind"] == "bench"
    (row,) = rec["results"]
    assert (row["baseline"], row["life"]) == ("deit_test_patch4_32", "deit_test_patch4_32_life")
    for mode in ("train", "infer"):
        r = row[mode]
        assert len(r["ratios"]) == 2 and r["ratio"] > 0 and r["baseline_img_s"] > 0
    mem = row["memory"]["activation_mb"]
    assert mem["life"] > mem["baseline"] > 0
    assert rec["metrics"]["deit_test_patch4_32_life/train_ratio"] == row["train"]["ratio"]
    assert rec["provenance"]["device"] == "cpu" and rec["provenance"]["threads"] == 1
    assert rec["provenance"]["device_name"].startswith("cpu (1 thread,")  # as timed, not as restored after


def test_activation_bytes_counts_saved_tensors_not_parameters():
    model = torch.nn.Linear(8, 8)
    x = torch.randn(4, 8)
    assert activation_bytes(model, x) == x.numel() * 4  # the input, saved for the weight grad
    big = timm.create_model("deit_test_patch4_32", num_classes=3)
    assert activation_bytes(big, torch.randn(2, 3, 32, 32)) < activation_bytes(big, torch.randn(4, 3, 32, 32))


def test_cli_writes_the_record(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", "--models", "deit_test_patch4_32", "--batch-size", "2", "--repeats", "1",
               "--modes", "infer", "--threads", "1", "--out", str(out)])
    assert rc == 0
    rec = json.loads(out.read_text())
    assert rec["config"]["modes"] == ["infer"] and "train" not in rec["results"][0]
    assert "deit_test_patch4_32_life" in capsys.readouterr().out


def test_life_reference_times_the_previous_path():
    """``life_reference`` runs LIFE through forward_reference, which keeps every intermediate
    for autograd: more activation memory than LIFE's own autograd function, same baseline."""
    kw = dict(models=["deit_test_patch4_32"], batch_size=2, repeats=1, threads=1, num_classes=5, modes=("infer",))
    fused = bench(BenchConfig(**kw))["results"][0]["memory"]["activation_mb"]
    ref = bench(BenchConfig(**kw, life_reference=True))["results"][0]["memory"]["activation_mb"]
    assert ref["baseline"] == fused["baseline"]
    assert ref["life"] > fused["life"]


@pytest.mark.slow
def test_compile_times_both_models_compiled(tmp_path):
    """``--compile`` really hands both models to torch.compile (one graph each at least)."""
    import torch._dynamo

    torch._dynamo.reset()
    out = tmp_path / "bench.json"
    rc = main(["bench", "--models", "deit_test_patch4_32", "--batch-size", "2", "--repeats", "1",
               "--modes", "train", "--threads", "1", "--compile", "--out", str(out)])
    assert rc == 0
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 2
    rec = json.loads(out.read_text())
    assert rec["config"]["compile"] is True and rec["results"][0]["train"]["ratio"] > 0
    torch._dynamo.reset()


@pytest.mark.parametrize(
    "kw,match", [({"models": ["resnet18"]}, "no LIFE twin"), ({"device": "tpu"}, "unknown device 'tpu'; use cpu, cuda"),
                 ({"modes": ("fly",)}, "unknown bench mode")],
)
def test_bad_input_is_a_clear_error(kw, match):
    with pytest.raises(ConfigError, match=match):
        bench(BenchConfig(**{"batch_size": 1, "repeats": 1, **kw}))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_cuda_says_so():
    with pytest.raises(ConfigError, match="no CUDA GPU; use --device cpu"):
        bench(BenchConfig(device="cuda", batch_size=1, repeats=1))
