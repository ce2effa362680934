"""What the study needs to know about a dataset before it reads a single image.

A :class:`DatasetSpec` carries the task, the classes, the normalisation statistics and the
input size a dataset is used at, so models and heads can be built from the name alone.
Normalisation statistics: CIFAR's are the widely used per-channel values of its training
set; Tiny-ImageNet, ImageNet-100, VOC and Cityscapes use ImageNet's
(``timm.data.IMAGENET_DEFAULT_MEAN``/``STD``), as the paper's DeiT recipe does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

__all__ = ["DatasetSpec", "SPECS", "TASKS", "IGNORE_INDEX"]

TASKS = ("classification", "detection", "segmentation")
#: Label of pixels that no loss or metric counts (VOC's object boundaries, Cityscapes' void).
IGNORE_INDEX = 255


@dataclass(frozen=True)
class DatasetSpec:
    """The facts about a dataset that models, heads and metrics are built from."""

    name: str
    task: str  # "classification" | "detection" | "segmentation"
    num_classes: int  # segmentation: including background where the dataset has one
    class_names: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, of images scaled to [0, 1]
    std: tuple[float, ...]
    input_size: tuple[int, int]  # (H, W) the study feeds models by default
    in_chans: int = 3
    ignore_index: int | None = None  # segmentation label that is never scored
    native_size: tuple[int, int] | None = None  # (H, W) as stored; None when it varies
    note: str = field(default="", compare=False)  # how input_size is reached, caveats

    def __post_init__(self):
        assert self.task in TASKS, self.task
        assert len(self.class_names) == self.num_classes, (self.name, len(self.class_names))
        assert len(self.mean) == len(self.std) == self.in_chans, self.name

    def with_class_names(self, names) -> "DatasetSpec":
        """The same spec with names read from the files (Tiny-ImageNet, ImageNet-100)."""
        return replace(self, class_names=tuple(names))


def _generic(n: int, prefix: str = "class") -> tuple[str, ...]:
    return tuple(f"{prefix}_{i:03d}" for i in range(n))


_IMNET = dict(mean=tuple(IMAGENET_DEFAULT_MEAN), std=tuple(IMAGENET_DEFAULT_STD))

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DIGITS_CLASSES = tuple(str(i) for i in range(10))
VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
               "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor")
# Cityscapes' 19 training classes, in trainId order (cityscapesScripts' labels.py).
CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole",
                      "traffic light", "traffic sign", "vegetation", "terrain", "sky",
                      "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                      "bicycle")

#: Mean / std of generated scene canvases (measured over 2,000 Fashion-MNIST training canvases of
#: 64x64, seed 0; see tests/test_data_scenes.py).
SCENES_MEAN = (0.4749, 0.4702, 0.4802)
SCENES_STD = (0.1964, 0.1952, 0.1991)

_PAPER_SIZE = ("224x224 is DeiT's input size, at which the paper reports complexity; "
               "profiles choose the training size (e.g. the native size, with patch 4)")

SPECS: dict[str, DatasetSpec] = {
    s.name: s
    for s in [
        DatasetSpec("cifar10", "classification", 10, CIFAR10_CLASSES,
                    (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), (224, 224),
                    native_size=(32, 32), note=_PAPER_SIZE),
        DatasetSpec("cifar100", "classification", 100, _generic(100),
                    (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), (224, 224),
                    native_size=(32, 32), note=_PAPER_SIZE),
        DatasetSpec("tiny-imagenet", "classification", 200, _generic(200), **_IMNET,
                    input_size=(224, 224), native_size=(64, 64), note=_PAPER_SIZE),
        DatasetSpec("imagenet100", "classification", 100, _generic(100), **_IMNET,
                    input_size=(224, 224), note=_PAPER_SIZE),
        DatasetSpec("fashion-mnist", "classification", 10, FASHION_MNIST_CLASSES,
                    (0.2860,), (0.3530,), (32, 32), in_chans=1, native_size=(28, 28),
                    note="28x28 grey images, padded by 2 pixels to 32x32 (patch 4 -> 8x8 grid)"),
        DatasetSpec("digits", "classification", 10, DIGITS_CLASSES,
                    (0.3053,), (0.3759,), (32, 32), in_chans=1, native_size=(8, 8),
                    note="scikit-learn's 8x8 digits (values 0..16 scaled to 0..255), "
                         "upsampled to 32x32 (patch 4 -> 8x8 grid)"),
        DatasetSpec("voc-det", "detection", 20, VOC_CLASSES, **_IMNET,
                    input_size=(224, 224),
                    note="train: VOC2007 (+2012 when present) trainval; test: VOC2007 test; "
                         "'difficult' objects kept and flagged for evaluation"),
        DatasetSpec("voc-seg", "segmentation", 21, ("background",) + VOC_CLASSES, **_IMNET,
                    input_size=(224, 224), ignore_index=IGNORE_INDEX,
                    note="train: VOC2012 train; test: VOC2012 val; 255 marks object boundaries"),
        DatasetSpec("cityscapes", "segmentation", 19, CITYSCAPES_CLASSES, **_IMNET,
                    input_size=(256, 512), ignore_index=IGNORE_INDEX, native_size=(1024, 2048),
                    note="fine annotations, label ids mapped to the 19 train ids (255 ignored); "
                         "test is the official val split (test labels are withheld)"),
        DatasetSpec("scenes-det", "detection", 10, FASHION_MNIST_CLASSES, SCENES_MEAN,
                    SCENES_STD, (64, 64), native_size=(64, 64),
                    note="generated offline stand-in for VOC; items from Fashion-MNIST "
                         "(scikit-learn digits when a caller names source='digits')"),
        DatasetSpec("scenes-seg", "segmentation", 11, ("background",) + FASHION_MNIST_CLASSES,
                    SCENES_MEAN, SCENES_STD, (64, 64), ignore_index=IGNORE_INDEX,
                    native_size=(64, 64),
                    note="generated offline stand-in for Cityscapes; class 0 is background, "
                         "item class c is c + 1"),
        DatasetSpec("scenes", "detection", 10, FASHION_MNIST_CLASSES, SCENES_MEAN,
                    SCENES_STD, (64, 64), ignore_index=IGNORE_INDEX, native_size=(64, 64),
                    note="every target of a scene: boxes, labels, instance masks, semantic"),
    ]
}
