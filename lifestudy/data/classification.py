"""Classification datasets in their real on-disk formats.

- ``cifar10``, ``cifar100``: the "python version" pickled batches torchvision downloads
  (https://www.cs.toronto.edu/~kriz/cifar.html), read here directly so that a truncated or
  corrupt batch gets a message instead of an md5 failure deep inside torchvision;
- ``tiny-imagenet``: the official ``tiny-imagenet-200`` archive (CS231n), validation images
  in one folder with their labels in ``val/val_annotations.txt`` -- read as it is;
- ``imagenet100``: ``train/`` and ``val/`` class folders, or the Kaggle archive's
  ``train.X1..train.X4`` / ``val.X`` folders and ``Labels.json`` (ambityga/imagenet100);
- ``fashion-mnist``: the idx files (``*-ubyte.gz``) of Xiao et al. 2017, from torchvision's
  folder or the Debian package ``dataset-fashion-mnist`` (installed, or fetched with
  ``apt-get download``: :meth:`FashionMNIST.fetch`);
- ``digits``: scikit-learn's 8x8 digits (UCI optdigits test set), split once, stratified,
  with a fixed seed.

Every split is a dataset of ``(PIL.Image, int)`` with ``.targets`` and ``.classes``.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import shutil
import struct
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from lifestudy.data.catalog import Source, default_root, register_source
from lifestudy.data.spec import SPECS, DatasetSpec
from lifestudy.errors import ConfigError, DatasetError

__all__ = [
    "ArrayImages",
    "ImageList",
    "read_idx",
    "DEBIAN_FASHION_MNIST",
    "DEBIAN_PACKAGE",
    "DIGITS_TEST_FRACTION",
    "DIGITS_SPLIT_SEED",
    "digits_split",
]

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

#: The Debian package with Fashion-MNIST's idx files, and where it installs them.
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
#: apt's package lists (empty in a fresh container until ``apt-get update``)
APT_LISTS = Path("/var/lib/apt/lists")
APT_TIMEOUT_S = 900
FASHION_MNIST_URL = "https://github.com/zalandoresearch/fashion-mnist"
DIGITS_TEST_FRACTION = 1 / 3
DIGITS_SPLIT_SEED = 0


def _no_options(name: str, options: dict) -> None:
    if options:
        raise ConfigError(f"dataset {name!r} takes no options; got {sorted(options)}")


class ArrayImages(Dataset):
    """Images held in one uint8 array (N, H, W) or (N, H, W, 3); items ``(PIL.Image, int)``."""

    def __init__(self, images: np.ndarray, targets: Sequence[int], classes: Sequence[str],
                 transform: Callable | None = None):
        assert len(images) == len(targets)
        self.images = images
        self.targets = [int(t) for t in targets]
        self.classes = list(classes)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        img = Image.fromarray(self.images[index])
        if self.transform is not None:
            img = self.transform(img)
        return img, self.targets[index]


class ImageList(Dataset):
    """Image files with labels; items ``(PIL.Image RGB, int)``.

    A file that cannot be decoded raises a DatasetError naming it, not PIL's traceback.
    """

    def __init__(self, samples: list[tuple[Path, int]], classes: Sequence[str], name: str,
                 transform: Callable | None = None):
        self.samples = samples
        self.targets = [t for _, t in samples]
        self.classes = list(classes)
        self.name = name
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        try:
            with Image.open(path) as f:
                img = f.convert("RGB")
        except (OSError, UnidentifiedImageError, SyntaxError) as err:
            raise DatasetError(
                f"dataset {self.name!r}: cannot read image {path} ({err}); re-extract the archive "
                f"and run `lifestudy data check {self.name} --full`") from None
        if self.transform is not None:
            img = self.transform(img)
        return img, target


def _verify_image(source: Source, name: str, root: Path, path: Path) -> None:
    try:
        with Image.open(path) as f:
            f.verify()
    except (OSError, UnidentifiedImageError, SyntaxError) as err:
        raise source.error(name, root, f"corrupt image {path} ({err})") from None


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS and p.is_file())


# ----------------------------------------------------------------------------- digits
def digits_split() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's digits as uint8 images (values 0..16 scaled to 0..255), split once:
    a third for test, stratified by class, ``random_state=DIGITS_SPLIT_SEED``."""
    return {k: (v[0].copy(), v[1].copy()) for k, v in _digits_split().items()}


@lru_cache(maxsize=1)
def _digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    idx_train, idx_test = train_test_split(
        np.arange(len(images)), test_size=DIGITS_TEST_FRACTION, stratify=digits.target,
        random_state=DIGITS_SPLIT_SEED)
    return {"train": (images[idx_train], digits.target[idx_train]),
            "test": (images[idx_test], digits.target[idx_test])}


@register_source
class Digits(Source):
    names = ("digits",)
    how_to_get = "it ships with scikit-learn (`pip install scikit-learn`); nothing to download"

    def validate(self, name, root, deep=False):
        try:
            import sklearn.datasets  # noqa: F401
        except ImportError:
            raise self.error(name, root, "scikit-learn is not installed") from None

    def build(self, name, root, split, transform=None, **options):
        _no_options(name, options)
        images, targets = _digits_split()[split]
        return ArrayImages(images, targets, SPECS[name].class_names, transform)

    def fetch(self, name, root):
        self.validate(name, root)
        return "digits: nothing to fetch (it ships with scikit-learn)"


# ----------------------------------------------------------------------------- idx / Fashion-MNIST
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (LeCun's MNIST format), gzipped or not, into a read-only numpy array
    (cached per file and modification time, so building a split twice reads it once).

    Raises ValueError when the file is not a well-formed idx file."""
    return _read_idx_cached(str(path), Path(path).stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _read_idx_cached(path: str, mtime_ns: int) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"not a readable (gzip) file: {err}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError("bad idx magic number")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4: 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    body = data[4 + 4 * ndim:]
    if len(body) != int(np.prod(shape)) * dtype.itemsize:
        raise ValueError(f"truncated: header says {shape}, found {len(body)} bytes of data")
    return np.frombuffer(body, dtype=dtype).reshape(shape)


_FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class _NotFetched(Exception):
    """One step of Fashion-MNIST's fetch chain could not get the files (the reason)."""


@register_source
class FashionMNIST(Source):
    names = ("fashion-mnist",)
    folder = "FashionMNIST"
    markers = ("raw/train-images-idx3-ubyte.gz", "raw/train-images-idx3-ubyte")
    layout = """\
FashionMNIST/raw/train-images-idx3-ubyte[.gz]   (torchvision's layout)
FashionMNIST/raw/train-labels-idx1-ubyte[.gz]
FashionMNIST/raw/t10k-images-idx3-ubyte[.gz]
FashionMNIST/raw/t10k-labels-idx1-ubyte[.gz]
(or none of these, with the Debian package dataset-fashion-mnist installed:
 /usr/share/datasets/fashion-mnist/*-ubyte.gz)"""
    how_to_get = ("`lifestudy data fetch {name} --root {root}` (links the Debian package's files "
                  "when installed, else extracts them from `apt-get download dataset-fashion-mnist`, "
                  "else downloads; or `sudo apt-get install dataset-fashion-mnist`)")

    def _find(self, root: Path, stem: str) -> Path | None:
        for folder in (root / self.folder / "raw", DEBIAN_FASHION_MNIST):
            for candidate in (folder / stem, folder / f"{stem}.gz"):
                if candidate.is_file():
                    return candidate
        return None

    def files(self, name: str, root: Path) -> dict[str, tuple[Path, Path]]:
        paths = {s: self._find(root, s) for stems in _FMNIST_FILES.values() for s in stems}
        missing = [s for s, p in paths.items() if p is None]
        if missing:
            problem = ("not found" if len(missing) == len(paths)
                       else "incomplete (half-extracted or interrupted download?)")
            raise self.error(name, root, f"{problem}: missing {', '.join(missing)}")
        return {split: (paths[i], paths[l]) for split, (i, l) in _FMNIST_FILES.items()}

    def _load(self, name, root, split):
        images_path, labels_path = self.files(name, root)[split]
        arrays = []
        for path in (images_path, labels_path):
            try:
                arrays.append(read_idx(path))
            except ValueError as err:
                raise self.error(name, root, f"corrupt file {path}: {err}") from None
        images, labels = arrays
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise self.error(name, root, f"{images_path} and {labels_path} do not match: "
                                         f"images {images.shape}, labels {labels.shape}")
        if labels.max(initial=0) >= 10:
            raise self.error(name, root, f"labels outside 0..9 in {labels_path}")
        return images, labels

    def validate(self, name, root, deep=False):
        files = self.files(name, root)
        if deep:
            for split in files:
                self._load(name, root, split)

    def build(self, name, root, split, transform=None, **options):
        _no_options(name, options)
        images, labels = self._load(name, root, split)
        return ArrayImages(images, labels, SPECS[name].class_names, transform)

    def fetch(self, name, root):
        """The fetch chain: (1) the files already under ``root``; (2) the Debian package's
        files, linked; (3) on Debian/Ubuntu, ``apt-get download`` of the package and
        ``dpkg-deb -x`` (no root needed; ``apt-get update`` first when running as root with
        empty package lists); (4) torchvision's download; (5) a DatasetError naming what was
        tried and the commands that fix it. Steps 2-4 fill a staging folder under ``root``
        that is renamed into place only when complete and readable, so ``root`` never holds
        a half-fetched dataset."""
        from lifestudy.records import display_path

        final = self.path(root)
        shown = display_path(final / "raw")
        if self._in_place(name, root):
            self.validate(name, root, deep=True)
            return f"{name}: already in place under {shown}"
        tried = [f"(1) not under {shown}"]
        for step, method in ((2, self._link_debian), (3, self._apt_download), (4, self._download)):
            stage = Path(tempfile.mkdtemp(prefix=".fashion-mnist-fetch-", dir=root))
            try:
                try:
                    how = method(stage)
                    missing = self._missing(stage)
                    if missing:  # (checked here: validate would also accept the Debian files)
                        raise _NotFetched(f"{how}, but {', '.join(missing)} missing")
                    self.validate(name, stage, deep=True)
                except (_NotFetched, DatasetError) as err:
                    tried.append(f"({step}) {str(err).splitlines()[0]}")
                    continue
                try:
                    (stage / self.folder).rename(final)
                except OSError:  # another process put it there first
                    if not self._in_place(name, root):
                        raise
                self.validate(name, root, deep=True)
                return f"{name}: {how} into {shown}"
            finally:
                shutil.rmtree(stage, ignore_errors=True)
        raise DatasetError(
            f"dataset {name!r}: cannot fetch it; tried " + "; ".join(tried) + ". Fix: "
            f"`sudo apt-get install {DEBIAN_PACKAGE}` (Debian/Ubuntu), or with internet access "
            f"`lifestudy data fetch {name} --root {root}`, or copy the four *-ubyte.gz files of "
            f"{FASHION_MNIST_URL} into {final / 'raw'}/")

    def _in_place(self, name: str, root: Path) -> bool:
        """True when ``root`` holds all four files; False when it holds none of them (after
        removing links left dangling by an uninstalled Debian package); a DatasetError
        when it holds some, or a folder of something else."""
        raw = self.path(root) / "raw"
        stems = [s for pair in _FMNIST_FILES.values() for s in pair]
        if not self._missing(root):
            return True
        for s in stems:
            for p in (raw / s, raw / f"{s}.gz"):
                if p.is_symlink() and not p.exists():
                    p.unlink()
        for folder in (raw, self.path(root)):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        if self.path(root).exists():
            raise self.error(name, root, f"incomplete: {self.path(root)} lacks "
                                         f"{', '.join(self._missing(root))}; remove it "
                                         f"(`rm -r {self.path(root)}`) and fetch again")
        return False

    def _missing(self, root: Path) -> list[str]:
        """The idx files (by stem) not under ``root`` in torchvision's layout."""
        raw = self.path(root) / "raw"
        return [s for pair in _FMNIST_FILES.values() for s in pair
                if not (raw / s).is_file() and not (raw / f"{s}.gz").is_file()]

    def _link_debian(self, stage: Path) -> str:
        files = [DEBIAN_FASHION_MNIST / f"{s}.gz" for pair in _FMNIST_FILES.values() for s in pair]
        if not all(f.is_file() for f in files):
            raise _NotFetched(f"the Debian package {DEBIAN_PACKAGE} is not installed ({DEBIAN_FASHION_MNIST})")
        raw = stage / self.folder / "raw"
        raw.mkdir(parents=True)
        for f in files:
            (raw / f.name).symlink_to(f)
        return f"linked the Debian package's files from {DEBIAN_FASHION_MNIST}"

    def _apt_download(self, stage: Path) -> str:
        apt_get, dpkg_deb = shutil.which("apt-get"), shutil.which("dpkg-deb")
        if not apt_get or not dpkg_deb:
            raise _NotFetched("`apt-get download` needs apt-get and dpkg-deb (Debian/Ubuntu): not on PATH")
        work = stage / "deb"
        work.mkdir()

        def run(tool: str, *args: str) -> None:
            cmd = " ".join([Path(tool).name, *args])
            try:
                proc = subprocess.run([tool, *args], cwd=work, capture_output=True, text=True,
                                      timeout=APT_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired) as err:
                raise _NotFetched(f"`{cmd}` failed ({err})") from None
            if proc.returncode != 0:
                lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
                raise _NotFetched(f"`{cmd}` failed ({lines[-1] if lines else f'exit {proc.returncode}'})")

        if os.geteuid() == 0 and not any(APT_LISTS.glob("*_Packages*")):
            run(apt_get, "update")  # a fresh container: no package lists yet
        run(apt_get, "download", DEBIAN_PACKAGE)
        debs = sorted(work.glob(f"{DEBIAN_PACKAGE}_*.deb"))
        if not debs:
            raise _NotFetched(f"`apt-get download {DEBIAN_PACKAGE}` left no .deb file")
        run(dpkg_deb, "-x", debs[-1].name, "x")
        found = work / "x" / "usr/share/datasets/fashion-mnist"
        raw = stage / self.folder / "raw"
        raw.mkdir(parents=True)
        for pair in _FMNIST_FILES.values():
            for s in pair:
                if (found / f"{s}.gz").is_file():
                    (found / f"{s}.gz").rename(raw / f"{s}.gz")
        return f"extracted {debs[-1].name} (`apt-get download`, no root needed)"

    def _download(self, stage: Path) -> str:
        from torchvision.datasets import FashionMNIST as TVFashionMNIST

        try:
            TVFashionMNIST(str(stage), train=True, download=True)
            TVFashionMNIST(str(stage), train=False, download=True)
        except Exception as err:  # urllib / socket errors differ across versions
            reason = " ".join(str(err).split())  # torchvision's message spans lines
            raise _NotFetched(f"torchvision's download failed ({err.__class__.__name__}: {reason})") from None
        return "downloaded (torchvision)"


# ----------------------------------------------------------------------------- CIFAR
class _CIFAR(Source):
    batches: dict[str, tuple[str, ...]]
    meta_file: str
    label_key: str
    names_key: str
    url: str

    def _unpickle(self, name, root, path: Path) -> dict:
        self.require_file(name, root, path, "batch file")
        try:
            with open(path, "rb") as f:
                entry = pickle.load(f, encoding="latin1")
        except Exception as err:  # truncated pickles raise EOFError, UnpicklingError, ...
            raise self.error(name, root, f"corrupt file {path} ({err.__class__.__name__}: {err})") from None
        if not isinstance(entry, dict):
            raise self.error(name, root, f"corrupt file {path} (not a CIFAR batch)")
        return entry

    def validate(self, name, root, deep=False):
        base = self.path(root)
        self.require_dir(name, root, base, "folder")
        expected = [*self.batches["train"], *self.batches["test"], self.meta_file]
        missing = [f for f in expected if not (base / f).is_file()]
        if missing:
            problem = "not found" if len(missing) == len(expected) else "incomplete (half-extracted archive?)"
            raise self.error(name, root, f"{problem}: missing {', '.join(missing)} in {base}")
        if deep:
            self.class_names(name, root)
            for split in ("train", "test"):
                self._load(name, root, split)

    def class_names(self, name, root) -> list[str]:
        meta = self._unpickle(name, root, self.path(root) / self.meta_file)
        if self.names_key not in meta:
            raise self.error(name, root, f"corrupt file {self.meta_file}: no {self.names_key!r}")
        return list(meta[self.names_key])

    def _load(self, name, root, split):
        data, labels = [], []
        for batch in self.batches[split]:
            path = self.path(root) / batch
            entry = self._unpickle(name, root, path)
            if "data" not in entry or self.label_key not in entry:
                raise self.error(name, root, f"corrupt file {path}: no 'data'/{self.label_key!r}")
            x = np.asarray(entry["data"], dtype=np.uint8)
            if x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or len(x) != len(entry[self.label_key]):
                raise self.error(name, root, f"corrupt file {path}: data of shape {x.shape}")
            data.append(x)
            labels.extend(entry[self.label_key])
        images = np.concatenate(data).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(images), labels

    def spec(self, name, root=None) -> DatasetSpec:
        return SPECS[name]

    def build(self, name, root, split, transform=None, **options):
        _no_options(name, options)
        self.validate(name, root)
        images, labels = self._load(name, root, split)
        classes = self.class_names(name, root)
        if len(classes) != SPECS[name].num_classes or max(labels) >= len(classes):
            raise self.error(name, root, f"{self.meta_file} lists {len(classes)} classes, "
                                         f"expected {SPECS[name].num_classes}")
        return ArrayImages(images, labels, classes, transform)

    def fetch(self, name, root):
        from torchvision import datasets

        cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
        return self.fetch_by(name, root, lambda: cls(str(root), train=True, download=True), deep=True,
                             fix=f"; download {self.url} and extract it under {root}")


@register_source
class CIFAR10(_CIFAR):
    names = ("cifar10",)
    folder = "cifar-10-batches-py"
    markers = ("data_batch_1", "batches.meta")
    batches = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
    meta_file, label_key, names_key = "batches.meta", "labels", "label_names"
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    layout = """\
cifar-10-batches-py/data_batch_1 ... data_batch_5   (pickled batches, "python version")
cifar-10-batches-py/test_batch
cifar-10-batches-py/batches.meta"""
    how_to_get = "`lifestudy data fetch {name} --root {root}` (torchvision download)"


@register_source
class CIFAR100(_CIFAR):
    names = ("cifar100",)
    folder = "cifar-100-python"
    markers = ("train", "meta")
    batches = {"train": ("train",), "test": ("test",)}
    meta_file, label_key, names_key = "meta", "fine_labels", "fine_label_names"
    url = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    layout = """\
cifar-100-python/train   (pickled, "python version"; fine labels are used)
cifar-100-python/test
cifar-100-python/meta"""
    how_to_get = "`lifestudy data fetch {name} --root {root}` (torchvision download)"

    def _wrong_root_hint(self, root):
        return super()._wrong_root_hint(root) if (root / "meta").exists() else ""

    def spec(self, name, root=None):
        root = root or default_root()
        try:
            return SPECS[name].with_class_names(self.class_names(name, root))
        except DatasetError:
            return SPECS[name]


# ----------------------------------------------------------------------------- folders of images
def _check_classes(source: Source, name: str, root: Path, split_dirs: dict[str, list[Path]],
                   class_ids: list[str], deep: bool) -> None:
    """Every class has a non-empty folder in every split; ``deep`` verifies one image each."""
    for split, dirs in split_dirs.items():
        for wnid in class_ids:
            folders = [d / wnid for d in dirs if (d / wnid).is_dir()]
            if not folders:
                raise source.error(name, root, f"class folder {wnid} missing from the {split} split "
                                               f"(looked in {', '.join(str(d) for d in dirs)}; "
                                               "half-extracted archive?)")
            images = [p for f in folders for p in _list_images(f)]
            if not images:
                raise source.error(name, root, f"empty class folder: {folders[0]} has no images")
            if deep is True:
                _verify_image(source, name, root, images[0])
            elif deep == "full":
                for p in images:
                    _verify_image(source, name, root, p)


@register_source
class TinyImageNet(Source):
    names = ("tiny-imagenet",)
    folder = "tiny-imagenet-200"
    markers = ("wnids.txt", "val/val_annotations.txt")
    layout = """\
tiny-imagenet-200/wnids.txt                      (200 class ids, e.g. n01443537)
tiny-imagenet-200/words.txt                      (id -> names; optional)
tiny-imagenet-200/train/<wnid>/images/*.JPEG     (500 per class)
tiny-imagenet-200/val/images/*.JPEG              (10,000 images in one folder)
tiny-imagenet-200/val/val_annotations.txt        (file <tab> wnid <tab> box)"""
    url = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
    how_to_get = ("`lifestudy data fetch {name} --root {root}`, or download "
                  "http://cs231n.stanford.edu/tiny-imagenet-200.zip and unzip it in {root} "
                  "(as it is: the val folder needs no reorganising)")

    def wnids(self, name, root) -> list[str]:
        base = self.require_dir(name, root, self.path(root), "folder")
        path = self.require_file(name, root, base / "wnids.txt", "wnids.txt")
        wnids = sorted({line.strip() for line in path.read_text().splitlines() if line.strip()})
        if len(wnids) != SPECS[name].num_classes:
            raise self.error(name, root, f"{path} lists {len(wnids)} classes, expected "
                                         f"{SPECS[name].num_classes}")
        return wnids

    def class_names(self, name, root, wnids) -> list[str]:
        words = self.path(root) / "words.txt"
        names = {}
        if words.is_file():
            for line in words.read_text(errors="replace").splitlines():
                key, _, value = line.partition("\t")
                names[key.strip()] = value.split(",")[0].strip()
        return [names.get(w) or w for w in wnids]

    def spec(self, name, root=None):
        root = root or default_root()
        try:
            wnids = self.wnids(name, root)
        except DatasetError:
            return SPECS[name]
        return SPECS[name].with_class_names(self.class_names(name, root, wnids))

    def val_samples(self, name, root, class_to_idx) -> list[tuple[Path, int]]:
        base = self.path(root) / "val"
        images = self.require_dir(name, root, base / "images", "val/images folder")
        ann = self.require_file(name, root, base / "val_annotations.txt", "val/val_annotations.txt")
        samples = []
        for lineno, line in enumerate(ann.read_text().splitlines(), 1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 2 or fields[1] not in class_to_idx:
                raise self.error(name, root, f"{ann}:{lineno}: expected 'file<TAB>wnid<TAB>...' "
                                             f"with a wnid from wnids.txt, got {line!r}")
            samples.append((images / fields[0], class_to_idx[fields[1]]))
        missing = [p for p, _ in samples if not p.is_file()]
        if missing:
            raise self.error(name, root, f"{len(missing)} images listed in val_annotations.txt are "
                                         f"missing, e.g. {missing[0]} (half-extracted archive?)")
        if not samples:
            raise self.error(name, root, f"{ann} lists no images")
        return samples

    def validate(self, name, root, deep=False):
        wnids = self.wnids(name, root)
        train = self.require_dir(name, root, self.path(root) / "train", "train folder")
        _check_classes(self, name, root, {"train": [train]}, wnids, deep)
        samples = self.val_samples(name, root, {w: i for i, w in enumerate(wnids)})
        if deep:
            for path, _ in samples if deep == "full" else samples[:1] + samples[-1:]:
                _verify_image(self, name, root, path)

    def fetch(self, name, root):
        from torchvision.datasets.utils import download_and_extract_archive

        return self.fetch_by(name, root, lambda: download_and_extract_archive(self.url, download_root=str(root)),
                             done="downloaded and extracted")

    def build(self, name, root, split, transform=None, **options):
        _no_options(name, options)
        wnids = self.wnids(name, root)
        class_to_idx = {w: i for i, w in enumerate(wnids)}
        if split == "train":
            train = self.require_dir(name, root, self.path(root) / "train", "train folder")
            samples = [(p, class_to_idx[w]) for w in wnids for p in _list_images(train / w)]
        else:
            samples = self.val_samples(name, root, class_to_idx)
        return ImageList(samples, self.class_names(name, root, wnids), name, transform)


@register_source
class ImageNet100(Source):
    names = ("imagenet100",)
    folder = "imagenet100"
    markers = ("train", "val", "train.X1", "val.X", "Labels.json")
    layout = """\
imagenet100/train/<wnid>/*.JPEG     (100 class folders)
imagenet100/val/<wnid>/*.JPEG
or the Kaggle archive as it unpacks:
imagenet100/train.X1 ... train.X4/<wnid>/*.JPEG,  imagenet100/val.X/<wnid>/*.JPEG,
imagenet100/Labels.json             (wnid -> name; optional)"""
    how_to_get = ("manual: download ImageNet-100 (e.g. kaggle.com/datasets/ambityga/imagenet100: "
                  "`kaggle datasets download ambityga/imagenet100`) and unzip it into {root}/imagenet100")

    def _wrong_root_hint(self, root):
        if ((root / "train.X1").exists() or (root / "Labels.json").exists()
                or (root / "train").is_dir() and (root / "val").is_dir() or root.name == self.folder):
            return (f"--root {root} looks like the dataset's own folder; the root is the folder "
                    f"that contains {self.folder}/, i.e. --root {root.parent}")
        return ""

    def split_dirs(self, name, root) -> dict[str, list[Path]]:
        base = self.require_dir(name, root, self.path(root), "folder")
        dirs = {
            "train": [base / "train"] if (base / "train").is_dir() else sorted(base.glob("train.X*")),
            "test": [base / "val"] if (base / "val").is_dir() else sorted(base.glob("val.X*")),
        }
        for split, found in dirs.items():
            if not found:
                want = "train/ (or train.X1..X4/)" if split == "train" else "val/ (or val.X/)"
                raise self.error(name, root, f"no {want} folder in {base}")
        return dirs

    def class_ids(self, name, root, dirs) -> list[str]:
        ids = sorted({c.name for d in dirs["train"] for c in d.iterdir() if c.is_dir()})
        if len(ids) != SPECS[name].num_classes:
            raise self.error(name, root, f"found {len(ids)} class folders in the train split, "
                                         f"expected {SPECS[name].num_classes} (half-extracted archive?)")
        return ids

    def class_names(self, name, root, ids) -> list[str]:
        labels = self.path(root) / "Labels.json"
        names = {}
        if labels.is_file():
            try:
                names = json.loads(labels.read_text())
            except ValueError as err:
                raise self.error(name, root, f"corrupt file {labels} ({err})") from None
        return [str(names.get(i, i)).split(",")[0].strip() for i in ids]

    def spec(self, name, root=None):
        root = root or default_root()
        try:
            ids = self.class_ids(name, root, self.split_dirs(name, root))
        except DatasetError:
            return SPECS[name]
        return SPECS[name].with_class_names(self.class_names(name, root, ids))

    def validate(self, name, root, deep=False):
        dirs = self.split_dirs(name, root)
        _check_classes(self, name, root, dirs, self.class_ids(name, root, dirs), deep)

    def build(self, name, root, split, transform=None, **options):
        _no_options(name, options)
        dirs = self.split_dirs(name, root)
        ids = self.class_ids(name, root, dirs)
        samples = [(p, i) for i, c in enumerate(ids) for d in dirs[split] for p in _list_images(d / c)]
        return ImageList(samples, self.class_names(name, root, ids), name, transform)
