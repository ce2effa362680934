"""Generated scenes: deterministic by seed, disjoint train/test sources, exact targets
(boxes = tight boxes of the visible masks, semantic = the masks' union), occlusion kept
within bounds, and v2 transforms that keep every target aligned."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

import data_trees as trees
from lifestudy import data
from lifestudy.data import classification
from lifestudy.data.scenes import SceneConfig
from lifestudy.errors import ConfigError, DatasetError


@pytest.fixture(scope="module")
def fmnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    trees.write_fashion_mnist(root, n_train=80, n_test=30)
    return root


@pytest.fixture(params=["fashion-mnist", "digits"])
def scenes_kw(request, fmnist_root):
    return {"root": fmnist_root, "source": request.param, "length": 24}


def tight_box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


@pytest.mark.parametrize("size", [(64, 64), (64, 128)])
def test_targets_are_consistent(scenes_kw, size):
    ds = data.build_dataset("scenes", "train", size=size, **scenes_kw)
    assert ds.spec.input_size == size
    counts = []
    for i in range(len(ds)):
        image, t = ds[i]
        assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8
        assert tuple(image.shape) == (3, *size)
        masks, boxes, labels, semantic = t["masks"].numpy(), t["boxes"], t["labels"], t["semantic"].numpy()
        assert isinstance(boxes, tv_tensors.BoundingBoxes) and tuple(boxes.canvas_size) == size
        assert masks.dtype == bool and semantic.dtype == np.int64 and labels.dtype == torch.int64
        assert len(masks) == len(boxes) == len(labels)
        assert 1 <= len(labels) <= 4 and labels.min() >= 0 and labels.max() < 10
        assert masks.sum(0).max() <= 1  # visible masks never overlap
        expected = np.zeros(size, dtype=np.int64)
        for m, b, lab in zip(masks, boxes.tolist(), labels.tolist()):
            assert m.sum() >= SceneConfig().min_visible
            assert b == tight_box(m)
            expected[m] = lab + 1
        assert np.array_equal(semantic, expected)
        counts.append(len(labels))
    assert len(set(counts)) >= 3  # 1..4 items vary over canvases


def test_occlusion_happens_but_no_item_is_mostly_hidden(scenes_kw):
    ds = data.build_dataset("scenes", "train", **{**scenes_kw, "length": 60})
    fractions = np.concatenate([ds.render(i)["visible_fraction"] for i in range(len(ds))])
    assert fractions.min() >= 0.5 - 1e-9
    assert (fractions < 0.95).mean() > 0.1  # occlusion (or the frame) bites often


def test_deterministic_by_seed_and_index(scenes_kw):
    a = data.build_dataset("scenes", "test", seed=3, **scenes_kw)
    b = data.build_dataset("scenes", "test", seed=3, cache=False, **scenes_kw)
    for i in (5, 0, 17, 5):  # any order, each on its own
        ia, ta = a[i]
        ib, tb = b[i]
        assert torch.equal(ia, ib) and torch.equal(ta["masks"], tb["masks"])
        assert torch.equal(ta["boxes"], tb["boxes"]) and torch.equal(ta["semantic"], tb["semantic"])
    c = data.build_dataset("scenes", "test", seed=4, **scenes_kw)
    assert not torch.equal(a[0][0], c[0][0])
    assert not torch.equal(a[0][0], data.build_dataset("scenes", "train", seed=3, **scenes_kw)[0][0])


def test_train_and_test_draw_from_disjoint_source_images(fmnist_root):
    for source in ("fashion-mnist", "digits"):
        tr = data.build_dataset("scenes", "train", root=fmnist_root, source=source, length=40)
        te = data.build_dataset("scenes", "test", root=fmnist_root, source=source, length=40)
        train_pool = {im.tobytes() for im in tr.images}
        test_pool = {im.tobytes() for im in te.images}
        if source == "fashion-mnist":  # the tiny tree's images are all distinct
            assert not train_pool & test_pool
        used_train = {tr.images[j].tobytes() for i in range(40) for j in tr.render(i)["sources"]}
        used_test = {te.images[j].tobytes() for i in range(40) for j in te.render(i)["sources"]}
        assert used_train <= train_pool and used_test <= test_pool


def test_variants_return_their_targets(scenes_kw):
    det = data.build_dataset("scenes-det", "train", **scenes_kw)
    seg = data.build_dataset("scenes-seg", "train", **scenes_kw)
    full = data.build_dataset("scenes", "train", **scenes_kw)
    assert set(det[0][1]) == {"boxes", "labels"}
    assert set(seg[0][1]) == {"semantic"}
    assert torch.equal(seg[2][1]["semantic"], full[2][1]["semantic"])
    assert torch.equal(det[2][1]["boxes"], full[2][1]["boxes"])
    assert seg.spec.num_classes == 11 and seg.spec.class_names[0] == "background"
    names = seg.spec.class_names[1:]
    assert names == (("0", "1") if scenes_kw["source"] == "digits" else ("T-shirt/top", "Trouser")) + names[2:]
    assert det.spec.num_classes == 10 and det.spec.task == "detection"


def test_transforms_keep_boxes_and_masks_aligned(scenes_kw):
    flip = v2.Compose([v2.RandomHorizontalFlip(p=1.0)])
    ds = data.build_dataset("scenes", "train", transform=flip, **scenes_kw)
    plain = data.build_dataset("scenes", "train", **scenes_kw)
    for i in range(4):
        image, t = ds[i]
        ref_image, ref = plain[i]
        assert torch.equal(image, ref_image.flip(-1))
        assert torch.equal(t["semantic"], ref["semantic"].flip(-1))
        for m, b in zip(t["masks"].numpy(), t["boxes"].tolist()):
            assert b == tight_box(m)


def test_no_silent_change_of_item_source(tmp_path, monkeypatch):
    """Without Fashion-MNIST the scenes fail with how to fetch it; digits only when named."""
    monkeypatch.setattr(classification, "DEBIAN_FASHION_MNIST", tmp_path / "none")
    for attempt in (lambda: data.build_dataset("scenes-det", "train", root=tmp_path, length=3),
                    lambda: data.check("scenes-seg", root=tmp_path)):
        with pytest.raises(DatasetError, match="(?s)scenes take their items from Fashion-MNIST.*"
                                               "lifestudy data fetch fashion-mnist"):
            attempt()
    ds = data.build_dataset("scenes-det", "train", root=tmp_path, length=3, source="digits")
    assert ds.source == "digits" and ds.spec.class_names[:2] == ("0", "1")
    assert ds.describe()["source"] == "digits"
    with pytest.raises(ConfigError, match="source must be one of 'fashion-mnist', 'digits'"):
        data.build_dataset("scenes-det", "train", root=tmp_path, source="auto")


def test_fashion_mnist_is_the_default_item_source(fmnist_root):
    ds = data.build_dataset("scenes-seg", "train", root=fmnist_root, length=3)
    assert ds.source == "fashion-mnist" and ds.spec.class_names[:3] == ("background", "T-shirt/top", "Trouser")
    assert "items from fashion-mnist" in data.check("scenes-seg", root=fmnist_root)


def test_generation_is_fast(scenes_kw):
    import time

    ds = data.build_dataset("scenes", "train", cache=False, **{**scenes_kw, "length": 50})
    start = time.perf_counter()
    for i in range(50):
        ds[i]
    assert (time.perf_counter() - start) / 50 < 0.05  # ~2 ms on one core; generous for CI


def test_normalisation_statistics_describe_the_canvases(fmnist_root):
    ds = data.build_dataset("scenes", "train", root=fmnist_root, source="fashion-mnist", length=100)
    pixels = np.stack([ds.render(i)["image"] for i in range(100)]) / 255.0
    assert np.allclose(pixels.mean((0, 1, 2)), ds.spec.mean, atol=0.05)
    assert np.allclose(pixels.std((0, 1, 2)), ds.spec.std, atol=0.05)


@pytest.mark.parametrize("options, match", [
    ({"size": (8, 8)}, "at least 16x16"),
    ({"num_items": (3, 1)}, "num_items"),
    ({"item_size": (12, 80)}, "item_size"),
    ({"length": 0}, "length must be positive"),
    ({"colour": "red"}, "unknown options"),
    ({"source": "mnist"}, "source must be"),
])
def test_bad_options(fmnist_root, options, match):
    with pytest.raises(ConfigError, match=match):
        data.build_dataset("scenes", "train", root=fmnist_root, **options)
