"""Parameters and MACs: the paper's complexity table (fvcore convention) and the CLI."""

from __future__ import annotations

import json

import pytest
import timm
import torch

import lifestudy  # noqa: F401
from lifestudy import paper
from lifestudy.cli import main
from lifestudy.complexity import complexity, count_macs
from lifestudy.errors import ConfigError


@pytest.mark.parametrize(
    "name", ["deit_tiny_patch16_224", "deit_tiny_patch16_224_life", "deit_small_patch16_224",
             "deit_small_patch16_224_life"],
)
def test_paper_table_deit_exactly(name):
    """100 classes at 224x224: the paper's params (M) and GMACs to the second decimal."""
    row = complexity(name, num_classes=100, img_size=224)
    ref = paper.COMPLEXITY[name]
    assert round(row["params_m"], 2) == ref["params_m"]
    assert round(row["gmacs"], 2) == ref["gmacs"]
    assert row["paper"]["label"] == "paper"


def test_t2t_vit_12_params_match_the_paper():
    """Trainable parameters (the fixed sinusoid table excluded) match; the GMACs the paper
    gives equal ours without the Performer's einsum products (see the report)."""
    row = complexity("t2t_vit_12", num_classes=100, img_size=224)
    assert round(row["params_m"], 2) == paper.COMPLEXITY["t2t_vit_12"]["params_m"]
    without_einsum = (row["macs"] - row["macs_by_operator"]["einsum"]) / 1e9
    assert round(without_einsum, 2) == paper.COMPLEXITY["t2t_vit_12"]["gmacs"]


def test_fused_attention_counts_like_the_explicit_matmuls():
    model = timm.create_model("deit_test_patch4_32_life", num_classes=10)
    x = torch.randn(1, 3, 32, 32)
    fused, by_op_fused, _ = count_macs(model, x)
    for m in model.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = False
    explicit, by_op, _ = count_macs(model, x)
    assert fused == explicit
    assert by_op_fused["scaled_dot_product_attention"] == by_op["matmul"] > 0


def test_life_adds_only_its_depthwise_convs_to_the_macs():
    base = complexity("deit_test_patch4_32", num_classes=10, img_size=32)
    life = complexity("deit_test_patch4_32_life", num_classes=10, img_size=32)
    C, depth, patches = 48, 2, 64
    assert life["macs"] - base["macs"] == depth * patches * C * (3 * 3 + 5 * 5)
    assert life["params"] - base["params"] == depth * C * (3 * 3 + 5 * 5 - 2)  # minus the k/v bias
    assert life["paper"] is None  # not a paper model / size


def test_cli_prints_and_writes_a_record(tmp_path, capsys):
    out = tmp_path / "cx.json"
    assert main(["complexity", "--model", "deit_test_patch4_32_life", "--num-classes", "10",
                 "--img-size", "32", "32", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "deit_test_patch4_32_life" in text and "GMACs" in text
    rec = json.loads(out.read_text())
    assert rec["kind"] == "complexity" and rec["results"][0]["img_size"] == [32, 32]
    assert "torch" in rec["provenance"]


def test_unknown_model_is_a_clear_error(capsys):
    with pytest.raises(ConfigError, match="unknown model"):
        complexity("no_such_model_life")
    assert main(["complexity", "--model", "no_such_model"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_one_record_shape_for_cli_and_chapters():
    from lifestudy.complexity import complexity_record, default_img_size

    rows = [complexity("deit_test_patch4_32", num_classes=10, img_size=32)]
    rec = complexity_record(rows, profile="smoke", chapter="07_efficiency")
    assert rec["kind"] == "complexity" and rec["results"] == rows
    assert rec["metrics"]["deit_test_patch4_32@32x32"] == {"params_m": rows[0]["params_m"], "gmacs": rows[0]["gmacs"]}
    assert rec["provenance"]["chapter"] == "07_efficiency" and "fvcore" in rec["provenance"]["convention"]
    # The paper's table counts each model at its own input size (a LIFE twin at its baseline's).
    assert default_img_size("swinv2_tiny_window8_256_life") == (256, 256)
    assert default_img_size("deit_tiny_patch16_224") == (224, 224)
