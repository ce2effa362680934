"""Pascal VOC and Cityscapes on tiny trees in their real formats: images, boxes, difficult
flags, masks (255 kept), the Cityscapes id -> train id mapping, transforms that keep
targets aligned, and the bad-input messages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

import data_trees as trees
from lifestudy import data
from lifestudy.cli import main
from lifestudy.data.spec import VOC_CLASSES
from lifestudy.errors import DatasetError


def cli(capsys, *argv):
    rc = main(["data", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_voc_detection_targets(tmp_path):
    trees.write_voc(tmp_path, years=("2007",), segmentation=False)
    train = data.build_dataset("voc-det", "train", root=tmp_path)
    test = data.build_dataset("voc-det", "test", root=tmp_path)
    assert len(train) == 3 and len(test) == 1
    image, target = train[0]  # 000005: 48 x 40, a dog and a difficult person
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8
    assert tuple(image.shape) == (3, 40, 48)
    boxes = target["boxes"]
    assert isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.format == tv_tensors.BoundingBoxFormat.XYXY
    assert tuple(boxes.canvas_size) == (40, 48)
    # VOC's 1-based inclusive pixels -> XYXY pixel edges
    assert boxes.tolist() == [[4.0, 5.0, 20.0, 30.0], [21.0, 2.0, 47.0, 40.0]]
    assert target["labels"].tolist() == [VOC_CLASSES.index("dog"), VOC_CLASSES.index("person")]
    assert target["labels"].dtype == torch.int64
    assert target["difficult"].tolist() == [False, True]
    _, t = test[0]
    assert t["labels"].tolist() == [VOC_CLASSES.index(c) for c in ("car", "car", "bus")]
    assert t["difficult"].tolist() == [False, False, True]


def test_voc_07_plus_12(tmp_path):
    trees.write_voc(tmp_path, segmentation=False)
    train = data.build_dataset("voc-det", "train", root=tmp_path)
    assert len(train) == 4
    assert train[3][1]["labels"].tolist() == [VOC_CLASSES.index("cat")]
    assert len(data.build_dataset("voc-det", "train", root=tmp_path, years=["2007"])) == 3


def test_voc_transforms_keep_boxes_aligned(tmp_path):
    trees.write_voc(tmp_path, years=("2007",), segmentation=False)
    flip = v2.Compose([v2.RandomHorizontalFlip(p=1.0), v2.Resize((80, 96))])
    image, target = data.build_dataset("voc-det", "train", root=tmp_path, transform=flip)[0]
    assert tuple(image.shape) == (3, 80, 96)
    assert target["boxes"].tolist()[0] == [(48 - 20) * 2.0, 10.0, (48 - 4) * 2.0, 60.0]
    assert target["difficult"].tolist() == [False, True]


def test_voc_segmentation_keeps_the_boundary_label(tmp_path):
    semantic = trees.write_voc(tmp_path, years=("2007",))
    train = data.build_dataset("voc-seg", "train", root=tmp_path)
    val = data.build_dataset("voc-seg", "test", root=tmp_path)
    assert len(train) == 2 and len(val) == 1
    image, target = train[1]
    mask = target["semantic"]
    assert isinstance(mask, tv_tensors.Mask) and mask.dtype == torch.int64
    assert tuple(image.shape) == (3, 30, 40) and tuple(mask.shape) == (30, 40)
    assert np.array_equal(mask.numpy(), semantic["2007_000039"])
    assert set(mask.unique().tolist()) == {0, 2, 255}
    assert train.spec.ignore_index == 255 and train.spec.num_classes == 21


def test_cityscapes_maps_label_ids_to_train_ids(tmp_path):
    truth = trees.write_cityscapes(tmp_path)
    train = data.build_dataset("cityscapes", "train", root=tmp_path)
    val = data.build_dataset("cityscapes", "test", root=tmp_path)
    assert len(train) == 4 and len(val) == 2
    lut = np.full(256, 255)
    for label_id, train_id in trees.CITYSCAPES_IDS.items():
        lut[label_id] = train_id
    for ds, split in ((train, "train"), (val, "val")):
        for i in range(len(ds)):
            image, target = ds[i]
            stem = ds.pairs[i][0].name[: -len("_leftImg8bit.png")]
            assert tuple(image.shape) == (3, 16, 32)
            assert np.array_equal(target["semantic"].numpy(), lut[truth[split][stem]])
    assert set(val[0][1]["semantic"].unique().tolist()) == {0, 1, 2, 11, 13, 18, 255}
    assert train.spec.class_names[13] == "car"


def test_cityscapes_transform_keeps_mask_aligned(tmp_path):
    trees.write_cityscapes(tmp_path)
    crop = v2.Compose([v2.RandomHorizontalFlip(p=1.0), v2.Resize((8, 16), interpolation=v2.InterpolationMode.NEAREST)])
    plain = data.build_dataset("cityscapes", "test", root=tmp_path)[0][1]["semantic"]
    image, target = data.build_dataset("cityscapes", "test", root=tmp_path, transform=crop)[0]
    assert tuple(image.shape) == (3, 8, 16) and tuple(target["semantic"].shape) == (8, 16)
    assert torch.equal(target["semantic"], plain.flip(-1)[::2, ::2])


@pytest.mark.parametrize("case, needles", [
    ("no-gtfine", ["gtFine/train (from gtFine_trainvaltest.zip) not found"]),
    ("missing-label", ["no fine labels for", "half-extracted gtFine archive?"]),
    ("corrupt-label", ["corrupt file", "_gtFine_labelIds.png"]),
    ("wrong-root", ["looks like the dataset's own folder"]),
])
def test_cityscapes_bad_input(tmp_path, capsys, case, needles):
    import shutil

    truth = trees.write_cityscapes(tmp_path)
    root = tmp_path
    stem = sorted(truth["train"])[0]
    city = stem.split("_")[0]
    label = tmp_path / "cityscapes" / "gtFine" / "train" / city / f"{stem}_gtFine_labelIds.png"
    if case == "no-gtfine":
        shutil.rmtree(tmp_path / "cityscapes" / "gtFine")
    elif case == "missing-label":
        label.unlink()
    elif case == "corrupt-label":
        label.write_bytes(b"\x89PNG broken")
    else:
        root = tmp_path / "cityscapes"
    rc, _, err = cli(capsys, "check", "cityscapes", "--root", root)
    assert rc == 2 and "Traceback" not in err and "dataset 'cityscapes'" in err
    for needle in needles:
        assert needle in err


@pytest.mark.parametrize("case, needles", [
    ("no-test-set", ["ImageSets/Main/test.txt", "VOCtest_06-Nov-2007.tar"]),
    ("missing-jpeg", ["000007.jpg is missing", "half-extracted"]),
    ("corrupt-xml", ["corrupt file", "000005.xml"]),
])
def test_voc_bad_input(tmp_path, capsys, case, needles):
    trees.write_voc(tmp_path, years=("2007",), segmentation=False)
    base = tmp_path / "VOCdevkit" / "VOC2007"
    if case == "no-test-set":
        (base / "ImageSets" / "Main" / "test.txt").unlink()
    elif case == "missing-jpeg":
        (base / "JPEGImages" / "000007.jpg").unlink()
    else:
        (base / "Annotations" / "000005.xml").write_text("<annotation><object>")
    rc, out, err = cli(capsys, "check", "voc-det", "--root", tmp_path)
    assert rc == 2 and "Traceback" not in err and "dataset 'voc-det'" in err, out + err
    for needle in needles:
        assert needle in err


def test_voc_check_summary(tmp_path, capsys):
    trees.write_voc(tmp_path)
    rc, out, _ = cli(capsys, "check", "voc-det", "--root", tmp_path)
    assert rc == 0 and "voc-det: ok (train 4, test 1; 20 classes; detection" in out
    rc, out, _ = cli(capsys, "check", "voc-seg", "--root", tmp_path)
    assert rc == 0 and "voc-seg: ok (train 2, test 1; 21 classes; segmentation" in out


def test_corrupt_annotation_met_during_training_is_named(tmp_path):
    trees.write_voc(tmp_path, years=("2007",), segmentation=False)
    ds = data.build_dataset("voc-det", "train", root=tmp_path)
    (tmp_path / "VOCdevkit" / "VOC2007" / "Annotations" / "000007.xml").write_text("<oops")
    with pytest.raises(DatasetError, match="bad annotation .*000007.xml"):
        ds[1]


def test_voc_targets_agree_with_torchvisions_wrapper(tmp_path):
    """Parity with an independent reader: torchvision's own v2 wrapper of VOCDetection
    (raw 1-based corners, labels shifted by a background class)."""
    from torchvision.datasets import VOCDetection, wrap_dataset_for_transforms_v2

    trees.write_voc(tmp_path, years=("2007",), segmentation=False)
    ours = data.build_dataset("voc-det", "train", root=tmp_path)
    theirs = wrap_dataset_for_transforms_v2(VOCDetection(str(tmp_path), year="2007", image_set="trainval"))
    for i in range(len(ours)):
        (img, t), (ref_img, ref) = ours[i], theirs[i]
        assert np.array_equal(img.permute(1, 2, 0).numpy(), np.asarray(ref_img))  # a PIL image
        assert torch.equal(t["boxes"] + torch.tensor([1.0, 1.0, 0.0, 0.0]), ref["boxes"].as_subclass(torch.Tensor).float())
        assert torch.equal(t["labels"] + 1, ref["labels"])
