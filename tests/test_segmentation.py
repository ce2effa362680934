"""Segmentation that can learn: a tiny segmenter fits a few canvases almost perfectly (so
the decoder, upsampling and loss carry the signal), the class-imbalance remedies do what
their definitions say, and the engine wires them in."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

import data_trees as trees
from lifestudy import data
from lifestudy.dense import SegmentationMetrics, build_segmenter
from lifestudy.dense.segmenter import (
    SegLossConfig,
    SegmentationLoss,
    class_weights,
    init_class_prior,
    pixel_frequencies,
    soft_dice_loss,
)
from lifestudy.errors import ConfigError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def fmnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("segscenes")
    trees.write_fashion_mnist(root, n_train=80, n_test=30)
    return root


def _canvases(root, n, size=(32, 32)):
    ds = data.build_dataset("scenes-seg", "train", root=root, source="fashion-mnist", length=n, size=size,
                            item_size=(12, 32))
    x = torch.stack([torch.as_tensor(ds[i][0]).as_subclass(torch.Tensor) for i in range(n)]).float() / 255
    mean, std = torch.tensor(ds.spec.mean).view(1, 3, 1, 1), torch.tensor(ds.spec.std).view(1, 3, 1, 1)
    y = torch.stack([torch.as_tensor(ds[i][1]["semantic"]).as_subclass(torch.Tensor) for i in range(n)]).long()
    return (x - mean) / std, y


@pytest.mark.parametrize("size", [(32, 32), (32, 64)])
def test_a_tiny_segmenter_overfits_a_few_canvases(fmnist_root, size):
    """The tiny-overfit check: if four canvases cannot be fitted, nothing else will be."""
    x, y = _canvases(fmnist_root, 4, size)
    torch.manual_seed(0)
    seg = build_segmenter("deit_test_patch4_32", num_classes=11, img_size=size, dim=32)
    opt = torch.optim.AdamW(seg.parameters(), lr=5e-3, weight_decay=0.0)
    loss_fn = SegmentationLoss()
    for _ in range(60):  # ~95 % mIoU measured at 32x32 (random init: the all-background level is ~6 %)
        loss, _ = loss_fn(seg(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    seg.eval()
    metric = SegmentationMetrics(11)
    with torch.no_grad():
        metric.update(seg(x), y)
    res = metric.compute()
    assert res["pixel_acc"] > 95 and res["miou"] > 85, res


def test_class_weights_known_answers():
    f = torch.tensor([0.5, 0.25, 0.25])
    assert class_weights(f, "none") is None
    w = class_weights(f, "median")  # median(f) / f = (0.5, 1, 1), scaled so sum f w = 1
    assert torch.allclose(w, torch.tensor([0.5, 1.0, 1.0]) / 0.75)
    for rule in ("median", "enet", "inverse_sqrt"):
        w = class_weights(f, rule)
        assert float((w * f).sum()) == pytest.approx(1.0)
        assert w[1] > w[0] and w[1] == w[2]  # rarer classes weigh more
    enet = class_weights(torch.tensor([0.9, 0.1]), "enet")
    expected = 1 / torch.log(1.02 + torch.tensor([0.9, 0.1]))
    assert torch.allclose(enet / enet[0], expected / expected[0])
    with pytest.raises(ConfigError, match="class_weighting"):
        class_weights(f, "inverse")


def test_pixel_frequencies_of_scenes_match_their_masks(fmnist_root):
    ds = data.build_dataset("scenes-seg", "train", root=fmnist_root, length=12, size=(32, 32), item_size=(12, 32))
    labels = np.stack([ds.render(i)["semantic"] for i in range(12)])
    expected = np.bincount(labels.ravel(), minlength=11).clip(min=0.5)
    f = pixel_frequencies(ds, 11)
    assert np.allclose(f.numpy(), expected / expected.sum(), atol=1e-6)
    assert f[0] > 0.3  # background dominates
    plain = data.build_dataset("scenes-seg", "train", root=fmnist_root, length=12, size=(32, 32),
                               item_size=(12, 32), cache=False)
    assert torch.allclose(pixel_frequencies(plain, 11), f)
    any_dataset = torch.utils.data.Subset(plain, range(12))  # counted item by item, through __getitem__
    assert torch.allclose(pixel_frequencies(any_dataset, 11), f)
    assert torch.allclose(pixel_frequencies(any_dataset, 11, max_items=6),
                          pixel_frequencies(torch.utils.data.Subset(plain, range(0, 12, 2)), 11))


def test_soft_dice_loss():
    y = torch.tensor([[[0, 1], [2, 255]]])
    perfect = torch.nn.functional.one_hot(y.clamp(max=2), 3).permute(0, 3, 1, 2).float() * 50
    assert float(soft_dice_loss(perfect, y)) == pytest.approx(0.0, abs=1e-6)
    # uniform softmax over 3 classes on 3 labelled pixels: each class 2*(1/3)/(1 + 1) + smoothing 1
    uniform = torch.zeros(1, 3, 2, 2)
    expected = 1 - (2 / 3 + 1) / (1 + 1 + 1)
    assert float(soft_dice_loss(uniform, y)) == pytest.approx(expected)
    # the ignored pixel does not count, whatever the logits say there
    other = perfect.clone()
    other[0, :, 1, 1] = torch.tensor([0.0, 0.0, 100.0])
    assert float(soft_dice_loss(other, y)) == pytest.approx(float(soft_dice_loss(perfect, y)))


def test_weighted_loss_and_dice_combine():
    torch.manual_seed(0)
    logits, y = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    w = torch.tensor([0.2, 1.0, 3.0])
    loss, logs = SegmentationLoss(SegLossConfig(class_weighting="median", dice_weight=0.5), w)(logits, y)
    ce = torch.nn.functional.cross_entropy(logits, y, weight=w)
    assert torch.allclose(logs["loss_ce"], ce)
    assert torch.allclose(loss, ce + 0.5 * soft_dice_loss(logits, y))
    with pytest.raises(ConfigError, match="dice_weight"):
        SegLossConfig(dice_weight=-1)
    with pytest.raises(ConfigError, match="class_weighting"):
        SegLossConfig.from_options({"seg_loss": {"class_weighting": "balanced"}})
    with pytest.raises(ConfigError, match="unknown field"):
        SegLossConfig.from_options({"seg_loss": {"focal": 2.0}})
    assert SegLossConfig.from_options({}) == SegLossConfig()
    assert SegLossConfig.from_options({"seg_loss": {"dice_weight": 1}}).dice_weight == 1.0


def test_prior_init_sets_the_first_prediction_to_the_class_prior():
    seg = build_segmenter("deit_test_patch4_32", num_classes=3, img_size=32, dim=16).eval()
    f = torch.tensor([0.7, 0.2, 0.1])
    init_class_prior(seg, f)
    with torch.no_grad():
        seg.decoder.classifier.weight.zero_()  # only the bias speaks
        p = seg(torch.randn(1, 3, 32, 32)).softmax(1)
    assert torch.allclose(p[0, :, 5, 5], f, atol=1e-6)
    with pytest.raises(ConfigError, match="classifier of 3"):
        init_class_prior(seg, torch.tensor([0.5, 0.5]))


@pytest.mark.slow
def test_engine_run_with_the_imbalance_remedies(tmp_path, fmnist_root):
    from lifestudy.engine import TrainConfig, train
    from lifestudy.engine import load_run

    opts = {"train_length": 8, "test_length": 4, "data_options": {"source": "fashion-mnist"},
            "seg_loss": {"class_weighting": "median", "dice_weight": 1.0, "prior_init": True}}
    cfg = TrainConfig(task="segmentation", data="scenes-seg", model="deit_test_patch4_32", profile="smoke",
                      img_size=(32, 32), epochs=1, root=str(fmnist_root), quiet=True, options=opts,
                      out=str(tmp_path / "run"))
    rec = train(cfg)
    assert 0 <= rec["metrics"]["miou"] <= 100
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert {"loss_ce", "loss_dice"} <= set(rows[0])
    model, _, _ = load_run(tmp_path / "run")  # rebuilt without recounting anything
    assert model.decoder.classifier.bias.shape == (11,)


def test_the_papers_segmentation_table_is_whole_and_labelled():
    from lifestudy import paper

    assert len(paper.SEGMENTATION) == 6
    random = paper.segmentation_rows("random")
    assert random["DeiT-T"]["miou"] == 31.89 and random["DeiT-T-LIFE"]["miou"] == 33.73
    assert not any(r["needs_pretrained"] for r in random.values())
    pretrained = paper.segmentation_rows("imagenet-1k")
    assert set(pretrained) == {"DeiT-T", "DeiT-T-LIFE", "Swinv2-T", "Swinv2-T-LIFE"}
    assert all(r["needs_pretrained"] for r in pretrained.values())
    assert pretrained["Swinv2-T-LIFE"] == {**pretrained["Swinv2-T-LIFE"], "params_m": 32.52, "gmacs": 24.20,
                                           "miou": 60.25}
