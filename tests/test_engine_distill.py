"""DeiT hard distillation through the distillation token, against a CNN teacher trained by
the same engine."""

from __future__ import annotations

import csv

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lifestudy.engine import TrainConfig, load_run, train
from lifestudy.tasks.classification import Classification

TINY = dict(task="classification", data="digits", profile="smoke", subset=8, batch_size=16, epochs=1,
            quiet=True, recipe={"eval_subset": 64})


class _TwoHeads(nn.Module):
    """Stands in for a distilled DeiT in training mode: returns (x_cls, x_dist)."""

    def __init__(self, cls, dist):
        super().__init__()
        self.cls, self.dist = cls, dist

    def forward(self, x):
        return self.cls, self.dist


def test_hard_distillation_loss_is_deits():
    """loss = (1 - alpha) CE(cls, y) + alpha CE(dist, argmax teacher(x)), DeiT's losses.py."""
    torch.manual_seed(0)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    cls, dist, teacher_logits = torch.randn(4, 5), torch.randn(4, 5), torch.randn(4, 5)
    task = Classification()
    task.train_loss_fn = nn.CrossEntropyLoss()
    task.teacher = lambda images: teacher_logits
    task.alpha = 0.5
    loss, logs = task.loss(_TwoHeads(cls, dist), (x, y), cfg=None)
    expected = 0.5 * F.cross_entropy(cls, y) + 0.5 * F.cross_entropy(dist, teacher_logits.argmax(1))
    assert torch.allclose(loss, expected)
    assert torch.allclose(logs["loss_distill"], F.cross_entropy(dist, teacher_logits.argmax(1)))


@pytest.mark.parametrize("student", ["deit_test_distilled_patch4_32", "deit_test_distilled_patch4_32_life"])
def test_distilled_deit_trains_against_a_cnn_teacher(tmp_path_factory, student):
    teacher_dir = tmp_path_factory.getbasetemp() / "teacher"
    if not (teacher_dir / "record.json").exists():
        train(TrainConfig(model="resnet10t", out=str(teacher_dir), **TINY))
    out = tmp_path_factory.mktemp("student") / "run"
    record = train(TrainConfig(model=student, teacher=str(teacher_dir), out=str(out), **TINY))

    assert record["provenance"]["teacher"] == str(teacher_dir)
    row = next(csv.DictReader((out / "metrics.csv").open()))
    # The epoch's loss is the alpha-weighted mean of its two parts (alpha = 0.5).
    assert float(row["train_loss"]) == pytest.approx(
        0.5 * float(row["loss_cls"]) + 0.5 * float(row["loss_distill"]), rel=1e-6)
    # At inference the two heads are averaged (DeiT's rule, timm's distilled ViT in eval).
    model, _, _ = load_run(out)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        feats = model.forward_features(x)
        expected = (model.head(feats[:, 0]) + model.head_dist(feats[:, 1])) / 2
        assert torch.allclose(model(x), expected, atol=1e-6)
