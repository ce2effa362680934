"""Classification datasets: each loader on a tiny tree in its real format, the small-data
subsets, and every bad-input case through ``lifestudy data check`` (message, no traceback)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import data_trees as trees
from lifestudy import data
from lifestudy.cli import main
from lifestudy.data import classification
from lifestudy.errors import ConfigError, DatasetError


@pytest.fixture(autouse=True)
def no_debian_fashion_mnist(monkeypatch, tmp_path):
    """Tests see only the trees they write, never /usr/share/datasets."""
    monkeypatch.setattr(classification, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")


def cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main(["data", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_message(rc, err, *needles):
    assert rc == 2, err
    assert "Traceback" not in err
    assert err.startswith("lifestudy data: error: dataset ")
    for needle in needles:
        assert needle in err, f"{needle!r} not in:\n{err}"


# ----------------------------------------------------------------------------- specs
@pytest.mark.parametrize("name", data.DATASETS)
def test_every_dataset_has_a_consistent_spec(name):
    spec = data.get_spec(name)
    assert spec.name == name and len(spec.class_names) == spec.num_classes
    assert len(spec.mean) == len(spec.std) == spec.in_chans
    assert spec.task in ("classification", "detection", "segmentation")
    assert (spec.ignore_index == 255) == (spec.task == "segmentation" or name == "scenes")


def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(DatasetError, match="unknown dataset 'cifar-10'.*cifar10"):
        data.build_dataset("cifar-10", "train")


def test_default_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LIFESTUDY_DATA", str(tmp_path))
    assert data.default_root() == tmp_path
    monkeypatch.delenv("LIFESTUDY_DATA")
    assert data.default_root().name == "data"


# ----------------------------------------------------------------------------- digits
def test_digits_split_is_fixed_stratified_and_disjoint():
    train, test = data.build_dataset("digits", "train"), data.build_dataset("digits", "test")
    assert len(train) + len(test) == 1797 and len(test) == 599
    assert np.bincount(test.targets).min() >= 57  # a third of each class (174..183)
    img, label = train[0]
    assert img.mode == "L" and img.size == (8, 8) and isinstance(label, int)
    from sklearn.datasets import load_digits

    counts = np.bincount(load_digits().target)
    assert (np.bincount(train.targets) + np.bincount(test.targets) == counts).all()
    assert max(np.asarray(train[i][0]).max() for i in range(50)) == 255  # 0..16 scaled to 0..255
    again = data.build_dataset("digits", "train")
    assert again.targets == train.targets


# ----------------------------------------------------------------------------- Fashion-MNIST
@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_reads_idx_files(tmp_path, compress):
    truth = trees.write_fashion_mnist(tmp_path)
    if not compress:  # torchvision's download leaves them uncompressed
        for gz in (tmp_path / "FashionMNIST" / "raw").glob("*.gz"):
            gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
            gz.unlink()
    for split in ("train", "test"):
        ds = data.build_dataset("fashion-mnist", split, root=tmp_path)
        images, labels = truth[split]
        assert len(ds) == len(labels) and ds.targets == labels.tolist()
        img, label = ds[7]
        assert img.mode == "L" and np.array_equal(np.asarray(img), images[7]) and label == labels[7]
    assert ds.spec.class_names[0] == "T-shirt/top"


def test_fashion_mnist_falls_back_to_the_debian_package(tmp_path, monkeypatch):
    truth = trees.write_fashion_mnist(tmp_path / "deb")
    debian = tmp_path / "deb" / "FashionMNIST" / "raw"
    monkeypatch.setattr(classification, "DEBIAN_FASHION_MNIST", debian)
    ds = data.build_dataset("fashion-mnist", "test", root=tmp_path / "empty")
    assert np.array_equal(np.asarray(ds[3][0]), truth["test"][0][3])
    # (fetching, which links them into torchvision's layout: tests/test_data_fetch.py)


def test_fetch_digits_has_nothing_to_do(capsys):
    rc, out, _ = cli(capsys, "fetch", "digits")
    assert rc == 0 and "nothing to fetch" in out


# ----------------------------------------------------------------------------- CIFAR
def test_cifar10_reads_pickled_batches(tmp_path):
    truth = trees.write_cifar10(tmp_path)
    train = data.build_dataset("cifar10", "train", root=tmp_path)
    test = data.build_dataset("cifar10", "test", root=tmp_path)
    assert train.targets == truth["train"] and test.targets == truth["test"]
    img, label = train[5]
    assert img.mode == "RGB" and img.size == (32, 32)
    assert np.array_equal(np.asarray(img), trees.cifar_pixels(5)) and label == truth["train"][5]
    assert np.array_equal(np.asarray(test[1][0]), trees.cifar_pixels(len(truth["train"]) + 1))
    assert train.classes[3] == "cat"


def test_cifar100_uses_fine_labels_and_their_names(tmp_path):
    truth = trees.write_cifar100(tmp_path)
    test = data.build_dataset("cifar100", "test", root=tmp_path)
    assert test.targets == truth["test"]
    assert np.array_equal(np.asarray(test[2][0]), trees.cifar_pixels(200 + 2))
    assert data.get_spec("cifar100", tmp_path).class_names[:2] == ("fine0", "fine1")


def test_transform_applies_to_the_image(tmp_path):
    trees.write_cifar10(tmp_path)
    ds = data.build_dataset("cifar10", "train", root=tmp_path, transform=lambda im: im.size)
    assert ds[0][0] == (32, 32)


# ----------------------------------------------------------------------------- Tiny-ImageNet
def _colour_class(img: Image.Image) -> int:
    return int(round(np.asarray(img)[..., 0].mean()))


def test_tiny_imagenet_reads_the_archive_as_it_unpacks(tmp_path):
    truth = trees.write_tiny_imagenet(tmp_path)
    train = data.build_dataset("tiny-imagenet", "train", root=tmp_path)
    val = data.build_dataset("tiny-imagenet", "test", root=tmp_path)
    assert len(train) == 400 and len(val) == 6
    assert val.targets == truth["val_labels"]
    for ds in (train, val):
        for i in (0, len(ds) - 1):
            img, label = ds[i]
            assert img.mode == "RGB" and img.size == (64, 64)
            assert abs(_colour_class(img) - label) <= 2  # the colour says which class it is
    spec = val.spec
    assert spec.class_names[0] == f"thing {truth['wnids'][0][-3:]}"  # first name in words.txt


def test_imagenet100_class_folders_and_kaggle_layout(tmp_path):
    wnids = trees.write_imagenet100(tmp_path / "plain")
    kaggle = trees.write_imagenet100(tmp_path / "kaggle", kaggle=True)
    for root in (tmp_path / "plain", tmp_path / "kaggle"):
        for split in ("train", "test"):
            ds = data.build_dataset("imagenet100", split, root=root)
            assert len(ds) == 100 and sorted(ds.targets) == list(range(100))
            img, label = ds[37]
            assert abs(_colour_class(img) - label) <= 2 and img.size == (40, 48)
    assert data.get_spec("imagenet100", tmp_path / "kaggle").class_names[5] == "name 5"
    assert data.get_spec("imagenet100", tmp_path / "plain").class_names[5] == wnids[5] == kaggle[5]


# ----------------------------------------------------------------------------- small-data regime
def test_subset_per_class_is_stratified_seeded_and_nested(tmp_path):
    trees.write_fashion_mnist(tmp_path, n_train=200)
    kw = dict(root=tmp_path)
    small = data.build_dataset("fashion-mnist", "train", subset_per_class=3, seed=1, **kw)
    large = data.build_dataset("fashion-mnist", "train", subset_per_class=8, seed=1, **kw)
    other = data.build_dataset("fashion-mnist", "train", subset_per_class=3, seed=2, **kw)
    assert np.bincount(small.targets).tolist() == [3] * 10
    assert set(small.indices) <= set(large.indices)
    assert small.indices != other.indices
    assert small.indices == data.build_dataset("fashion-mnist", "train", subset_per_class=3, seed=1, **kw).indices
    img, label = small[4]
    assert label == small.targets[4] and img.size == (28, 28)
    assert small.spec.name == "fashion-mnist"
    # the test split is always whole
    assert len(data.build_dataset("fashion-mnist", "test", subset_per_class=3, **kw)) == 20


def test_subset_larger_than_a_class_names_the_limit(tmp_path):
    trees.write_fashion_mnist(tmp_path, n_train=50)
    with pytest.raises(ConfigError, match="only 5 training images.*subset_per_class <= 5"):
        data.build_dataset("fashion-mnist", "train", root=tmp_path, subset_per_class=6)
    with pytest.raises(ConfigError, match="classification"):
        data.build_dataset("scenes-det", "train", subset_per_class=2, source="digits")


# ----------------------------------------------------------------------------- lifestudy data check
def test_check_prints_a_one_line_summary(tmp_path, capsys):
    trees.write_cifar10(tmp_path)
    rc, out, err = cli(capsys, "check", "cifar10", "--root", tmp_path)
    assert rc == 0 and err == ""
    assert out.count("\n") == 1 and "cifar10: ok (train 20, test 4; 10 classes" in out


def test_check_list_prints_every_dataset(capsys):
    rc, out, _ = cli(capsys, "list")
    assert rc == 0 and all(name in out for name in data.DATASETS)


@pytest.mark.parametrize("name, folder", [
    ("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python"),
    ("tiny-imagenet", "tiny-imagenet-200"), ("imagenet100", "imagenet100"),
    ("fashion-mnist", "FashionMNIST/raw/train-images-idx3-ubyte"),
    ("voc-det", "VOCdevkit/VOC2007"), ("voc-seg", "VOCdevkit/VOC2012"),
    ("cityscapes", "cityscapes/leftImg8bit"),
])
def test_missing_dataset_names_layout_and_fix(tmp_path, capsys, name, folder):
    rc, _, err = cli(capsys, "check", name, "--root", tmp_path)
    assert_message(rc, err, f"dataset {name!r}", "not found", "expected layout under", folder, "to get it:")


def test_manual_datasets_print_their_steps(tmp_path, capsys):
    rc, _, err = cli(capsys, "fetch", "imagenet100", "--root", tmp_path)
    assert_message(rc, err, "kaggle", "imagenet100/train/<wnid>")
    rc, _, err = cli(capsys, "fetch", "cityscapes", "--root", tmp_path)
    assert_message(rc, err, "cannot be downloaded automatically", "gtFine_trainvaltest.zip")


def test_half_extracted_cifar(tmp_path, capsys):
    trees.write_cifar10(tmp_path)
    for i in (4, 5):
        (tmp_path / "cifar-10-batches-py" / f"data_batch_{i}").unlink()
    rc, _, err = cli(capsys, "check", "cifar10", "--root", tmp_path)
    assert_message(rc, err, "incomplete (half-extracted archive?)", "data_batch_4, data_batch_5")


def test_half_extracted_tiny_imagenet(tmp_path, capsys):
    truth = trees.write_tiny_imagenet(tmp_path)
    (tmp_path / "tiny-imagenet-200" / "val" / "val_annotations.txt").unlink()
    rc, _, err = cli(capsys, "check", "tiny-imagenet", "--root", tmp_path)
    assert_message(rc, err, "val/val_annotations.txt not found", "val_annotations.txt")
    trees.write_tiny_imagenet(tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "tiny-imagenet-200" / "train" / truth["wnids"][-1])
    rc, _, err = cli(capsys, "check", "tiny-imagenet", "--root", tmp_path)
    assert_message(rc, err, f"class folder {truth['wnids'][-1]} missing from the train split")


def test_half_extracted_fashion_mnist(tmp_path, capsys):
    trees.write_fashion_mnist(tmp_path)
    (tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    rc, _, err = cli(capsys, "check", "fashion-mnist", "--root", tmp_path)
    assert_message(rc, err, "incomplete", "t10k-labels-idx1-ubyte", "apt-get install dataset-fashion-mnist")


def test_empty_class_folder(tmp_path, capsys):
    wnids = trees.write_imagenet100(tmp_path)
    for f in (tmp_path / "imagenet100" / "val" / wnids[3]).iterdir():
        f.unlink()
    rc, _, err = cli(capsys, "check", "imagenet100", "--root", tmp_path)
    assert_message(rc, err, "empty class folder", f"val/{wnids[3]}")


def test_imagenet100_with_missing_classes(tmp_path, capsys):
    wnids = trees.write_imagenet100(tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "imagenet100" / "train" / wnids[0])
    rc, _, err = cli(capsys, "check", "imagenet100", "--root", tmp_path)
    assert_message(rc, err, "found 99 class folders in the train split, expected 100")


@pytest.mark.parametrize("case", ["cifar-pickle", "fashion-gz", "tiny-jpeg"])
def test_corrupt_files_are_named(tmp_path, capsys, case):
    if case == "cifar-pickle":
        trees.write_cifar10(tmp_path)
        bad = tmp_path / "cifar-10-batches-py" / "data_batch_2"
        bad.write_bytes(bad.read_bytes()[:500])
        name = "cifar10"
    elif case == "fashion-gz":
        trees.write_fashion_mnist(tmp_path)
        bad = tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte.gz"
        bad.write_bytes(gzip.compress(gzip.decompress(bad.read_bytes())[:1000]))
        name = "fashion-mnist"
    else:
        truth = trees.write_tiny_imagenet(tmp_path)
        bad = tmp_path / "tiny-imagenet-200" / "train" / truth["wnids"][7] / "images" / f"{truth['wnids'][7]}_0.JPEG"
        bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
        name = "tiny-imagenet"
    rc, _, err = cli(capsys, "check", name, "--root", tmp_path)
    assert_message(rc, err, "corrupt", str(bad))


def test_corrupt_image_met_during_training_is_named(tmp_path):
    truth = trees.write_tiny_imagenet(tmp_path)
    ds = data.build_dataset("tiny-imagenet", "test", root=tmp_path)
    Path(ds.samples[2][0]).write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="cannot read image .*val_2.JPEG.*--full"):
        ds[2]
    assert truth


def test_full_check_opens_every_image(tmp_path, capsys):
    truth = trees.write_tiny_imagenet(tmp_path)
    bad = tmp_path / "tiny-imagenet-200" / "train" / truth["wnids"][7] / "images" / f"{truth['wnids'][7]}_1.JPEG"
    bad.write_bytes(b"garbage")
    assert cli(capsys, "check", "tiny-imagenet", "--root", tmp_path)[0] == 0  # not sampled
    rc, _, err = cli(capsys, "check", "tiny-imagenet", "--root", tmp_path, "--full")
    assert_message(rc, err, "corrupt", str(bad))


@pytest.mark.parametrize("name, writer, inner", [
    ("tiny-imagenet", trees.write_tiny_imagenet, "tiny-imagenet-200"),
    ("cifar10", trees.write_cifar10, "cifar-10-batches-py"),
    ("imagenet100", lambda root: trees.write_imagenet100(root, kaggle=True), "imagenet100"),
    ("imagenet100", trees.write_imagenet100, "imagenet100"),
])
def test_wrong_root_suggests_the_parent(tmp_path, capsys, name, writer, inner):
    writer(tmp_path)
    rc, _, err = cli(capsys, "check", name, "--root", tmp_path / inner)
    assert_message(rc, err, "looks like the dataset's own folder", f"--root {tmp_path}\n")


def test_a_root_that_does_not_exist_is_named(tmp_path, capsys):
    rc, _, err = cli(capsys, "check", "cifar10", "--root", tmp_path / "nowhere")
    assert_message(rc, err, f"the data root {tmp_path / 'nowhere'} does not exist", "LIFESTUDY_DATA")


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="split must be 'train' or 'test'"):
        data.build_dataset("digits", "val")
    with pytest.raises(ConfigError, match="takes no options"):
        data.build_dataset("digits", "train", size=(32, 32))


@pytest.mark.parametrize("name, module, attr, manual", [
    ("cifar10", "torchvision.datasets", "CIFAR10", "cifar-10-python.tar.gz"),
    ("tiny-imagenet", "torchvision.datasets.utils", "download_and_extract_archive", "tiny-imagenet-200.zip"),
])
def test_fetch_offline_fails_with_the_manual_route(tmp_path, capsys, monkeypatch, name, module, attr, manual):
    import importlib

    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(importlib.import_module(module), attr, offline)
    rc, _, err = cli(capsys, "fetch", name, "--root", tmp_path)
    assert_message(rc, err, "download failed (OSError", "name resolution", manual)


def test_idx_reader_agrees_with_torchvision(tmp_path):
    """Parity with an independent reader: torchvision's MNIST idx parser."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.arange(5, dtype=np.uint8)
    trees.write_idx(tmp_path / "images", images, compress=False)
    trees.write_idx(tmp_path / "labels", labels, compress=False)
    trees.write_idx(tmp_path / "images.gz", images)
    assert np.array_equal(classification.read_idx(tmp_path / "images"), read_image_file(str(tmp_path / "images")).numpy())
    assert np.array_equal(classification.read_idx(tmp_path / "images.gz"), images)
    assert np.array_equal(classification.read_idx(tmp_path / "labels"), read_label_file(str(tmp_path / "labels")).numpy())
