"""Pascal VOC and Cityscapes, read through torchvision after our own layout checks.

- ``voc-det``: Pascal VOC detection (Everingham et al. 2010), 20 classes; train is the
  ``trainval`` set of VOC2007 (and VOC2012 when present: the usual "07+12"), test is
  VOC2007 ``test``. Boxes are XYXY in pixel edges (VOC's 1-based inclusive ``xmin`` becomes
  ``xmin - 1``, as in Detectron's and mmdetection's loaders); ``difficult`` objects are
  kept and flagged, because VOC's mAP ignores them rather than counting them as misses.
- ``voc-seg``: VOC2012 segmentation, 21 classes (0 = background); 255 marks object
  boundaries and is never scored; train = ``train``, test = ``val``.
- ``cityscapes``: fine annotations (Cordts et al. 2016), ``*_gtFine_labelIds.png`` mapped
  to the 19 training ids with the official table (cityscapesScripts ``labels.py``, which
  torchvision's ``Cityscapes.classes`` carries), every other id to 255; test = ``val``.

Items are ``(tv_tensors.Image uint8 (3, H, W), target)``; ``transform`` is a
``torchvision.transforms.v2`` callable on ``(image, target)``, which keeps boxes and masks
aligned with the image.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2.functional import pil_to_tensor

from lifestudy.data.catalog import Source, register_source
from lifestudy.data.spec import IGNORE_INDEX, SPECS, VOC_CLASSES
from lifestudy.errors import ConfigError, DatasetError

__all__ = ["VOCDetectionDataset", "SemanticDataset", "cityscapes_train_id_lut", "voc_target"]

_VOC_INDEX = {name: i for i, name in enumerate(VOC_CLASSES)}


def _open_rgb(path: Path, name: str) -> Image.Image:
    try:
        with Image.open(path) as f:
            return f.convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError) as err:
        raise DatasetError(f"dataset {name!r}: cannot read image {path} ({err}); re-extract "
                           f"the archive and run `lifestudy data check {name} --full`") from None


def voc_target(annotation: dict, canvas_size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """torchvision's parsed VOC XML -> ``boxes`` (XYXY, pixel edges), ``labels`` (0..19),
    ``difficult`` (bool)."""
    objects = annotation.get("object", [])
    if isinstance(objects, dict):
        objects = [objects]
    boxes, labels, difficult = [], [], []
    for obj in objects:
        box = obj["bndbox"]
        boxes.append([float(box["xmin"]) - 1, float(box["ymin"]) - 1,
                      float(box["xmax"]), float(box["ymax"])])
        labels.append(_VOC_INDEX[obj["name"].strip()])
        difficult.append(str(obj.get("difficult", "0")).strip() == "1")
    return {
        "boxes": tv_tensors.BoundingBoxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                          format="XYXY", canvas_size=canvas_size),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "difficult": torch.tensor(difficult, dtype=torch.bool),
    }


class VOCDetectionDataset(Dataset):
    """VOC detection over one or more (year, image_set) parts, in the study's target format."""

    def __init__(self, root: Path, parts: list[tuple[str, str]], transform: Callable | None = None,
                 name: str = "voc-det"):
        from torchvision.datasets import VOCDetection

        self.parts = [VOCDetection(str(root), year=y, image_set=s, download=False) for y, s in parts]
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])
        self.transform, self.name = transform, name
        self.classes = list(VOC_CLASSES)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(index)
        part = int(np.searchsorted(self.offsets, index, side="right") - 1)
        voc = self.parts[part]
        i = index - int(self.offsets[part])
        image = _open_rgb(Path(voc.images[i]), self.name)
        try:
            annotation = voc.parse_voc_xml(ET.parse(voc.annotations[i]).getroot())["annotation"]
            target = voc_target(annotation, (image.height, image.width))
        except (ET.ParseError, KeyError, ValueError) as err:
            raise DatasetError(f"dataset {self.name!r}: bad annotation {voc.annotations[i]} ({err}); "
                               f"run `lifestudy data check {self.name} --full`") from None
        image = tv_tensors.Image(pil_to_tensor(image))
        if self.transform is not None:
            image, target = self.transform(image, target)
        return image, target


class SemanticDataset(Dataset):
    """Image / label-map pairs; label values pass through ``lut`` (None: taken as they are)."""

    def __init__(self, pairs: list[tuple[Path, Path]], classes, name: str,
                 lut: np.ndarray | None = None, transform: Callable | None = None):
        self.pairs, self.classes, self.name, self.lut = pairs, list(classes), name, lut
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int):
        image_path, label_path = self.pairs[index]
        image = _open_rgb(image_path, self.name)
        try:
            with Image.open(label_path) as f:
                labels = np.asarray(f)
        except (OSError, UnidentifiedImageError, SyntaxError) as err:
            raise DatasetError(f"dataset {self.name!r}: cannot read label map {label_path} ({err}); "
                               f"run `lifestudy data check {self.name} --full`") from None
        if labels.ndim != 2 or labels.shape != (image.height, image.width):
            raise DatasetError(f"dataset {self.name!r}: label map {label_path} has shape "
                               f"{labels.shape}, image {image_path} is {image.height}x{image.width}")
        if self.lut is not None:
            labels = self.lut[labels]
        semantic = tv_tensors.Mask(torch.from_numpy(labels.astype(np.int64)))
        image = tv_tensors.Image(pil_to_tensor(image))
        target = {"semantic": semantic}
        if self.transform is not None:
            image, target = self.transform(image, target)
        return image, target


def _verify(source: Source, name: str, root: Path, paths) -> None:
    for path in paths:
        try:
            if path.suffix == ".xml":
                ET.parse(path)
            else:
                with Image.open(path) as f:
                    f.verify()
        except (OSError, UnidentifiedImageError, SyntaxError, ET.ParseError) as err:
            raise source.error(name, root, f"corrupt file {path} ({err})") from None


# ----------------------------------------------------------------------------- VOC
class _VOC(Source):
    folder = "VOCdevkit"
    markers = ("VOC2007", "VOC2012")
    how_to_get = ("`lifestudy data fetch {name} --root {root}` (torchvision download of the "
                  "VOC tar files, extracted in place), or extract VOCtrainval_06-Nov-2007.tar, "
                  "VOCtest_06-Nov-2007.tar and VOCtrainval_11-May-2012.tar in {root}")

    def _ids(self, name, root, year, image_set, kind) -> tuple[Path, list[str]]:
        base = self.require_dir(name, root, self.path(root) / f"VOC{year}", f"VOC{year} folder")
        split_file = base / "ImageSets" / kind / f"{image_set}.txt"
        if not split_file.is_file():
            hint = (" (the test set is a separate archive, VOCtest_06-Nov-2007.tar)"
                    if image_set == "test" else " (half-extracted archive?)")
            raise self.error(name, root, f"split file not found: {split_file}{hint}")
        ids = [line.split()[0] for line in split_file.read_text().splitlines() if line.strip()]
        if not ids:
            raise self.error(name, root, f"split file {split_file} lists no images")
        return base, ids

    def _check_files(self, name, root, base, ids, subdirs, deep):
        needed = [[base / sub / f"{i}{ext}" for sub, ext in subdirs] for i in ids]
        for files in needed:
            for path in files:
                if not path.is_file():
                    raise self.error(name, root, f"{path} is missing ({len(ids)} images listed "
                                                 "in the split file; half-extracted archive?)")
        if deep:
            chosen = needed if deep == "full" else needed[:1] + needed[-1:]
            _verify(self, name, root, [p for files in chosen for p in files])


@register_source
class VOCDet(_VOC):
    names = ("voc-det",)
    layout = """\
VOCdevkit/VOC2007/Annotations/<id>.xml
VOCdevkit/VOC2007/JPEGImages/<id>.jpg
VOCdevkit/VOC2007/ImageSets/Main/trainval.txt, test.txt
VOCdevkit/VOC2012/...   (optional, same layout; its trainval joins the training set)"""

    def parts(self, name, root, split, years=None):
        if split == "test":
            return [("2007", "test")]
        if years is None:
            years = [y for y in ("2007", "2012") if (self.path(root) / f"VOC{y}").is_dir()] or ["2007"]
        years = [str(y) for y in years]
        bad = [y for y in years if y not in ("2007", "2012")]
        if bad:
            raise ConfigError(f"voc-det: years must be among '2007', '2012'; got {bad}")
        return [(y, "trainval") for y in years]

    def validate(self, name, root, deep=False, years=None):
        self.require_dir(name, root, self.path(root), "folder")
        for split in ("train", "test"):
            for year, image_set in self.parts(name, root, split, years):
                base, ids = self._ids(name, root, year, image_set, "Main")
                self._check_files(name, root, base, ids, [("Annotations", ".xml"), ("JPEGImages", ".jpg")], deep)

    def build(self, name, root, split, transform=None, years=None, **options):
        if options:
            raise ConfigError(f"voc-det: unknown options {sorted(options)} (known: years)")
        parts = self.parts(name, root, split, years)
        for year, image_set in parts:
            self._ids(name, root, year, image_set, "Main")
        return VOCDetectionDataset(root, parts, transform, name)

    def fetch(self, name, root):
        from torchvision.datasets import VOCDetection

        def download():
            for year, image_set in [("2007", "trainval"), ("2007", "test"), ("2012", "trainval")]:
                VOCDetection(str(root), year=year, image_set=image_set, download=True)

        return self.fetch_by(name, root, download)


@register_source
class VOCSeg(_VOC):
    names = ("voc-seg",)
    layout = """\
VOCdevkit/VOC2012/JPEGImages/<id>.jpg
VOCdevkit/VOC2012/SegmentationClass/<id>.png   (palette PNG: 0..20, 255 = boundary)
VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt, val.txt"""
    _sets = {"train": "train", "test": "val"}

    def _year(self, year):
        year = str(year)
        if year not in ("2007", "2012"):
            raise ConfigError(f"voc-seg: year must be '2007' or '2012', got {year!r}")
        return year

    def validate(self, name, root, deep=False, year="2012"):
        self.require_dir(name, root, self.path(root), "folder")
        for image_set in self._sets.values():
            base, ids = self._ids(name, root, self._year(year), image_set, "Segmentation")
            self._check_files(name, root, base, ids, [("JPEGImages", ".jpg"), ("SegmentationClass", ".png")], deep)

    def build(self, name, root, split, transform=None, year="2012", **options):
        if options:
            raise ConfigError(f"voc-seg: unknown options {sorted(options)} (known: year)")
        base, ids = self._ids(name, root, self._year(year), self._sets[split], "Segmentation")
        pairs = [(base / "JPEGImages" / f"{i}.jpg", base / "SegmentationClass" / f"{i}.png") for i in ids]
        return SemanticDataset(pairs, SPECS[name].class_names, name, None, transform)

    def fetch(self, name, root):
        from torchvision.datasets import VOCSegmentation

        return self.fetch_by(name, root, lambda: VOCSegmentation(str(root), year="2012", image_set="train", download=True))


# ----------------------------------------------------------------------------- Cityscapes
def cityscapes_train_id_lut() -> np.ndarray:
    """A 256-entry table: Cityscapes label id -> train id (0..18), everything else 255."""
    from torchvision.datasets import Cityscapes

    lut = np.full(256, IGNORE_INDEX, dtype=np.int64)
    for c in Cityscapes.classes:
        if 0 <= c.id < 256 and 0 <= c.train_id < 255:
            lut[c.id] = c.train_id
    return lut


@register_source
class CityscapesSource(Source):
    names = ("cityscapes",)
    folder = "cityscapes"
    markers = ("leftImg8bit", "gtFine")
    layout = """\
cityscapes/leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
cityscapes/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png"""
    how_to_get = ("manual (registration needed): log in at https://www.cityscapes-dataset.com, "
                  "download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip and unzip "
                  "both into {root}/cityscapes")
    _splits = {"train": "train", "test": "val"}

    def pairs(self, name, root, split) -> list[tuple[Path, Path]]:
        base = self.require_dir(name, root, self.path(root), "folder")
        sub = self._splits[split]
        images = self.require_dir(name, root, base / "leftImg8bit" / sub,
                                  f"leftImg8bit/{sub} (from leftImg8bit_trainvaltest.zip)")
        labels = self.require_dir(name, root, base / "gtFine" / sub,
                                  f"gtFine/{sub} (from gtFine_trainvaltest.zip)")
        pairs = []
        for path in sorted(images.glob("*/*_leftImg8bit.png")):
            stem = path.name[: -len("_leftImg8bit.png")]
            label = labels / path.parent.name / f"{stem}_gtFine_labelIds.png"
            if not label.is_file():
                raise self.error(name, root, f"no fine labels for {path}: {label} is missing "
                                             "(half-extracted gtFine archive?)")
            pairs.append((path, label))
        if not pairs:
            raise self.error(name, root, f"no *_leftImg8bit.png images under {images}/<city>/")
        return pairs

    def validate(self, name, root, deep=False):
        for split in self._splits:
            pairs = self.pairs(name, root, split)
            if deep:
                chosen = pairs if deep == "full" else pairs[:1] + pairs[-1:]
                _verify(self, name, root, [p for pair in chosen for p in pair])

    def build(self, name, root, split, transform=None, **options):
        if options:
            raise ConfigError(f"cityscapes takes no options; got {sorted(options)}")
        return SemanticDataset(self.pairs(name, root, split), SPECS[name].class_names, name,
                               cityscapes_train_id_lut(), transform)

    def fetch(self, name, root):
        try:
            self.validate(name, root)
            return f"{name}: already in place under {self.path(root)}"
        except DatasetError as err:
            raise self.error(name, root, "cannot be downloaded automatically (the site needs a login)") from err
