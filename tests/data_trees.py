"""Tiny dataset trees in the real on-disk formats, for the data tests.

Each writer builds a few images of a dataset exactly as its archive unpacks (CIFAR's
pickled batches, idx ``.gz`` files, Tiny-ImageNet's folders and ``val_annotations.txt``,
VOC's XML / JPEG / palette PNG, Cityscapes' ``*_labelIds.png``) under ``root`` and returns
the truth the loaders must reproduce. Pixel values encode what the test checks (the image
index, the class, the position), so a transposed or mislabelled image is caught.
"""

from __future__ import annotations

import gzip
import json
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "cifar_pixels",
    "write_cifar10",
    "write_cifar100",
    "write_idx",
    "write_fashion_mnist",
    "class_colour",
    "write_tiny_imagenet",
    "write_imagenet100",
    "write_voc",
    "write_cityscapes",
    "VOC_OBJECTS",
    "CITYSCAPES_IDS",
]


# ----------------------------------------------------------------------------- CIFAR
def cifar_pixels(k: int) -> np.ndarray:
    """Image ``k`` as (32, 32, 3) uint8: every channel, row and column distinguishable."""
    y, x, c = np.meshgrid(np.arange(32), np.arange(32), np.arange(3), indexing="ij")
    return ((7 * k + 50 * c + 3 * y + x) % 256).astype(np.uint8)


def _cifar_batch(indices, labels, label_key) -> dict:
    data = np.stack([cifar_pixels(k).transpose(2, 0, 1).reshape(-1) for k in indices])
    return {"batch_label": "tiny", label_key: list(labels), "data": data,
            "filenames": [f"img_{k}.png" for k in indices]}


def _dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root: Path, per_batch: int = 4) -> dict[str, list[int]]:
    """cifar-10-batches-py with 5 train batches and a test batch; returns labels per split."""
    base = Path(root) / "cifar-10-batches-py"
    truth = {"train": [], "test": []}
    k = 0
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [(k + j) % 10 for j in range(per_batch)]
        _dump(base / name, _cifar_batch(range(k, k + per_batch), labels, "labels"))
        truth["test" if name == "test_batch" else "train"].extend(labels)
        k += per_batch
    _dump(base / "batches.meta", {"label_names": ["airplane", "automobile", "bird", "cat", "deer",
                                                  "dog", "frog", "horse", "ship", "truck"],
                                  "num_cases_per_batch": per_batch, "num_vis": 3072})
    return truth


def write_cifar100(root: Path, n_train: int = 200, n_test: int = 100) -> dict[str, list[int]]:
    base = Path(root) / "cifar-100-python"
    truth = {"train": [k % 100 for k in range(n_train)], "test": [(k * 3) % 100 for k in range(n_test)]}
    for split, offset in (("train", 0), ("test", n_train)):
        labels = truth[split]
        batch = _cifar_batch(range(offset, offset + len(labels)), labels, "fine_labels")
        batch["coarse_labels"] = [lab // 5 for lab in labels]
        _dump(base / split, batch)
    _dump(base / "meta", {"fine_label_names": [f"fine{i}" for i in range(100)],
                          "coarse_label_names": [f"coarse{i}" for i in range(20)]})
    return truth


# ----------------------------------------------------------------------------- idx / Fashion-MNIST
def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    """Write a uint8 array in LeCun's idx format (magic 0x0000 08 ndim, big-endian dims)."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return path


def write_fashion_mnist(root: Path, n_train: int = 60, n_test: int = 20) -> dict[str, tuple]:
    """FashionMNIST/raw/*-ubyte.gz; item k is a 'garment' blob whose brightness encodes k."""
    raw = Path(root) / "FashionMNIST" / "raw"
    truth = {}
    rng = np.random.default_rng(0)
    for split, n, prefix in (("train", n_train, "train"), ("test", n_test, "t10k")):
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        for k in range(n):
            h, w = rng.integers(10, 24, size=2)
            y, x = rng.integers(0, 28 - h), rng.integers(0, 28 - w)
            images[k, y: y + h, x: x + w] = 60 + (k % 190) + (1 if split == "test" else 0)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", labels)
        truth[split] = (images, labels)
    return truth


# ----------------------------------------------------------------------------- image folders
def class_colour(c: int) -> tuple[int, int, int]:
    """A solid colour per class that survives JPEG (R = class index, up to 255)."""
    return (c, 128, 40)


def _jpeg(path: Path, colour, size=(64, 64)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, quality=95)


def write_tiny_imagenet(root: Path, num_classes: int = 200, train_per_class: int = 2,
                        val_images: int = 6) -> dict:
    """tiny-imagenet-200 as the zip unpacks: wnids.txt, words.txt, train/<wnid>/images,
    train/<wnid>/<wnid>_boxes.txt, val/images + val/val_annotations.txt, test/images."""
    base = Path(root) / "tiny-imagenet-200"
    wnids = [f"n{1440000 + 7 * i:08d}" for i in range(num_classes)][::-1]  # file order != sorted
    (base).mkdir(parents=True, exist_ok=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (base / "words.txt").write_text("".join(f"{w}\tthing {w[-3:]}, other name\n" for w in wnids)
                                    + "n99999999\tunused\n")
    order = sorted(wnids)
    for w in wnids:
        c = order.index(w)
        boxes = []
        for j in range(train_per_class):
            _jpeg(base / "train" / w / "images" / f"{w}_{j}.JPEG", class_colour(c))
            boxes.append(f"{w}_{j}.JPEG\t0\t0\t63\t63")
        (base / "train" / w / f"{w}_boxes.txt").write_text("\n".join(boxes) + "\n")
    val_classes = [order[(13 * k) % num_classes] for k in range(val_images)]
    lines = []
    for k, w in enumerate(val_classes):
        _jpeg(base / "val" / "images" / f"val_{k}.JPEG", class_colour(order.index(w)))
        lines.append(f"val_{k}.JPEG\t{w}\t1\t2\t60\t61")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    _jpeg(base / "test" / "images" / "test_0.JPEG", (0, 0, 0))
    return {"wnids": order, "val_labels": [order.index(w) for w in val_classes]}


def write_imagenet100(root: Path, kaggle: bool = False, per_class: int = 1) -> list[str]:
    """imagenet100/{train,val}/<wnid>/*.JPEG, or the Kaggle layout (train.X1, train.X2, val.X,
    Labels.json); returns the sorted wnids."""
    base = Path(root) / "imagenet100"
    wnids = sorted(f"n{2000000 + 11 * i:08d}" for i in range(100))
    for c, w in enumerate(wnids):
        train = base / (f"train.X{1 + c % 2}" if kaggle else "train")
        val = base / ("val.X" if kaggle else "val")
        for j in range(per_class):
            _jpeg(train / w / f"{w}_{j}.JPEG", class_colour(c), (40, 48))
        _jpeg(val / w / f"ILSVRC2012_val_{c:08d}.JPEG", class_colour(c), (40, 48))
    if kaggle:
        (base / "Labels.json").write_text(json.dumps({w: f"name {c}, alias" for c, w in enumerate(wnids)}))
    return wnids


# ----------------------------------------------------------------------------- VOC
#: image id -> (width, height, [(class, xmin, ymin, xmax, ymax, difficult)]) in VOC's 1-based pixels
VOC_OBJECTS = {
    "2007": {
        "000005": (48, 40, [("dog", 5, 6, 20, 30, 0), ("person", 22, 3, 47, 40, 1)]),
        "000007": (40, 48, [("tvmonitor", 1, 1, 40, 48, 0)]),
        "000009": (50, 30, [("aeroplane", 10, 10, 30, 20, 0)]),
        "000001": (32, 32, [("car", 2, 3, 15, 16, 0), ("car", 16, 16, 31, 30, 0), ("bus", 3, 4, 10, 12, 1)]),
    },
    "2012": {"2008_000002": (40, 40, [("cat", 4, 4, 36, 36, 0)])},
}
_VOC_SETS = {"2007": {"trainval": ["000005", "000007", "000009"], "test": ["000001"]},
             "2012": {"trainval": ["2008_000002"]}}


def _voc_xml(image_id: str, year: str, width: int, height: int, objects) -> str:
    objs = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>{diff}</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for name, x0, y0, x1, y1, diff in objects)
    return (f"<annotation><folder>VOC{year}</folder><filename>{image_id}.jpg</filename>"
            f"<source><database>The VOC{year} Database</database></source>"
            f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
            f"<segmented>0</segmented>{objs}</annotation>")


def voc_palette() -> list[int]:
    """The VOC colour map (bit-interleaved), as PIL's flat palette."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def write_voc(root: Path, years=("2007", "2012"), segmentation: bool = True) -> dict:
    """VOCdevkit/VOC<year>/{Annotations, JPEGImages, ImageSets/Main}; with ``segmentation``,
    VOC2012 also gets SegmentationClass palette PNGs (a class square with a 255 border) and
    ImageSets/Segmentation/{train,val}.txt. Returns the semantic maps written."""
    semantic = {}
    for year in years:
        base = Path(root) / "VOCdevkit" / f"VOC{year}"
        for image_id, (w, h, objects) in VOC_OBJECTS[year].items():
            (base / "Annotations").mkdir(parents=True, exist_ok=True)
            (base / "Annotations" / f"{image_id}.xml").write_text(_voc_xml(image_id, year, w, h, objects))
            _jpeg(base / "JPEGImages" / f"{image_id}.jpg", (90, 60, 30), (w, h))
        for image_set, ids in _VOC_SETS[year].items():
            (base / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
            (base / "ImageSets" / "Main" / f"{image_set}.txt").write_text("\n".join(ids) + "\n")
    if segmentation:
        base = Path(root) / "VOCdevkit" / "VOC2012"
        sets = {"train": ["2007_000032", "2007_000039"], "val": ["2007_000063"]}
        for k, image_id in enumerate(sum(sets.values(), [])):
            mask = np.zeros((30, 40), dtype=np.uint8)
            mask[5:25, 8:30] = 255  # boundary band
            mask[7:23, 10:28] = k + 1  # the object, class k + 1
            png = Image.fromarray(mask)  # putpalette makes it a palette ("P") PNG
            png.putpalette(voc_palette())
            (base / "SegmentationClass").mkdir(parents=True, exist_ok=True)
            png.save(base / "SegmentationClass" / f"{image_id}.png")
            _jpeg(base / "JPEGImages" / f"{image_id}.jpg", (10, 200, 10), (40, 30))
            semantic[image_id] = mask
        (base / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
        for name, ids in sets.items():
            (base / "ImageSets" / "Segmentation" / f"{name}.txt").write_text("\n".join(ids) + "\n")
    return semantic


# ----------------------------------------------------------------------------- Cityscapes
#: label id -> train id for the ids the tiny tree uses (cityscapesScripts labels.py)
CITYSCAPES_IDS = {0: 255, 4: 255, 7: 0, 8: 1, 11: 2, 24: 11, 26: 13, 33: 18}


def write_cityscapes(root: Path, cities=None, size=(16, 32)) -> dict[str, dict[str, np.ndarray]]:
    """cityscapes/leftImg8bit/<split>/<city>/*_leftImg8bit.png and gtFine/<split>/<city>/
    *_gtFine_{labelIds,color,instanceIds}.png + *_polygons.json; returns label ids per image."""
    cities = cities or {"train": ["aachen", "bochum"], "val": ["frankfurt"]}
    base = Path(root) / "cityscapes"
    ids = list(CITYSCAPES_IDS)
    truth: dict[str, dict[str, np.ndarray]] = {}
    H, W = size
    for split, names in cities.items():
        truth[split] = {}
        for ci, city in enumerate(names):
            for frame in range(2):
                stem = f"{city}_{ci:06d}_{frame:06d}"
                img_dir = base / "leftImg8bit" / split / city
                gt_dir = base / "gtFine" / split / city
                img_dir.mkdir(parents=True, exist_ok=True)
                gt_dir.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (W, H), (ci * 40, frame * 80, 99)).save(img_dir / f"{stem}_leftImg8bit.png")
                label = np.zeros((H, W), dtype=np.uint8)
                for b, lid in enumerate(ids):  # vertical bands of label ids
                    label[:, b * W // len(ids): (b + 1) * W // len(ids)] = lid
                label = np.roll(label, frame * 3 + ci, axis=1)
                Image.fromarray(label).save(gt_dir / f"{stem}_gtFine_labelIds.png")
                Image.new("RGB", (W, H)).save(gt_dir / f"{stem}_gtFine_color.png")
                Image.fromarray(label.astype(np.uint16)).save(gt_dir / f"{stem}_gtFine_instanceIds.png")
                (gt_dir / f"{stem}_gtFine_polygons.json").write_text(json.dumps({"imgHeight": H, "imgWidth": W, "objects": []}))
                truth[split][stem] = label
    return truth
