"""Small classification datasets held in memory as tensors, augmented a batch at a time.

For images of at most 64 px (digits, Fashion-MNIST, CIFAR) the per-image PIL pipeline
costs more than a tiny model's training step on a CPU core. Here the images are brought to
the model's input size once (the same resize / zero border the PIL pipeline applies, by
the same PIL calls) and kept as one uint8 tensor; a batch is fetched with one index
(``Dataset.__getitems__``, which PyTorch's DataLoader calls when a dataset has it) and
augmented on the whole batch:

- random crop with zero padding: one offset per image, as ``transforms.RandomCrop(size,
  padding)``;
- horizontal flip with probability ``hflip`` per image;
- ``ToTensor`` + ``Normalize`` (uint8 / 255, then the dataset's mean and std);
- random erasing: timm's ``RandomErasing`` (mode "pixel", one box), which works per image
  of a batch tensor.

That is the recipe of :func:`lifestudy.tasks.classification.classification_transforms`
for small images without RandAugment (RandAugment needs the PIL pipeline; a recipe with
it uses that pipeline). The random draws come from torch's and python's global generators,
as the PIL transforms' do, so a run is seeded and resumes exactly as before; the draws
differ from the PIL pipeline's, so the two paths give equally distributed, not identical,
augmentations. Records say which path ran (``data_pipeline``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

__all__ = ["TensorImages", "BatchAugment", "Batch", "collate", "tensor_images"]


class Batch(tuple):
    """``(images, labels)`` already collated by :meth:`TensorImages.__getitems__`."""


def collate(items):
    """The classification collate: a :class:`Batch` passes through, anything else goes to
    PyTorch's ``default_collate`` (the PIL pipeline's ``(tensor, int)`` items)."""
    if isinstance(items, Batch):
        return tuple(items)
    return default_collate(items)


class BatchAugment:
    """Random crop with padding, flip, normalisation and random erasing on a uint8 batch.

    Args:
        mean, std: per-channel normalisation (of images scaled to [0, 1]).
        crop_padding: zero padding of the random crop (0: no crop).
        hflip: probability of a horizontal flip per image.
        reprob: probability of random erasing per image (timm ``RandomErasing``, "pixel").
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], crop_padding: int = 0,
                 hflip: float = 0.0, reprob: float = 0.0):
        from timm.data.random_erasing import RandomErasing

        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.pad = int(crop_padding)
        self.hflip = float(hflip)
        self.erase = RandomErasing(reprob, mode="pixel", max_count=1, device="cpu") if reprob > 0 else None

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        """Each image cropped at its own offset out of the zero-padded batch."""
        if not self.pad:
            return x
        B, _, H, W = x.shape
        p = self.pad
        padded = torch.nn.functional.pad(x, (p, p, p, p))
        top = torch.randint(0, 2 * p + 1, (B,))
        left = torch.randint(0, 2 * p + 1, (B,))
        rows = (top[:, None] + torch.arange(H)[None, :])[:, None, :, None]  # B,1,H,1
        cols = (left[:, None] + torch.arange(W)[None, :])[:, None, None, :]  # B,1,1,W
        b = torch.arange(B)[:, None, None, None]
        c = torch.arange(x.shape[1])[None, :, None, None]
        return padded[b, c, rows, cols]

    def flip(self, x: torch.Tensor) -> torch.Tensor:
        if self.hflip <= 0:
            return x
        mask = torch.rand(len(x)) < self.hflip
        return torch.where(mask[:, None, None, None], x.flip(-1), x)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = self.flip(self.crop(images))
        x = normalise(x, self.mean, self.std)
        if self.erase is not None:
            x = self.erase(x)
        return x


def normalise(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float, scaled to [0, 1], then ``(x - mean) / std``."""
    return (images.to(torch.float32).div_(255.0) - mean).div_(std)


class TensorImages(Dataset):
    """Images as one uint8 tensor (N, C, H, W) at the model's input size, with labels.

    ``__getitems__`` returns a whole :class:`Batch` (augmented by ``augment`` when given,
    else normalised); ``__getitem__`` one ``(image, label)`` item.
    """

    def __init__(self, images: torch.Tensor, targets: Sequence[int], classes: Sequence[str],
                 mean: Sequence[float], std: Sequence[float], augment: BatchAugment | None = None):
        assert images.dtype == torch.uint8 and images.ndim == 4 and len(images) == len(targets)
        self.images = images
        self.targets = [int(t) for t in targets]
        self._labels = torch.as_tensor(self.targets, dtype=torch.long)
        self.classes = list(classes)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.targets)

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        x = self.images[idx]
        x = self.augment(x) if self.augment is not None else normalise(x, self.mean, self.std)
        return Batch((x, self._labels[idx]))

    def __getitem__(self, index: int):
        x, y = self.__getitems__([index])
        return x[0], int(y[0])


def can_hold(dataset: Any, recipe: dict, img_size, small_image: int) -> bool:
    """Whether ``dataset`` (a classification split) can take the in-memory path: its images
    are one array (``ArrayImages``, possibly inside a subset), small, and the recipe needs
    nothing the batched augmentation lacks (RandAugment)."""
    base = getattr(dataset, "dataset", dataset)
    return (isinstance(getattr(base, "images", None), np.ndarray) and max(img_size) <= small_image
            and not recipe.get("randaugment"))


def tensor_images(dataset: Any, to_size, spec, augment: BatchAugment | None) -> TensorImages:
    """The images of ``dataset`` (an ``ArrayImages`` or a subset of one) as :class:`TensorImages`.

    Args:
        dataset: the split as :func:`lifestudy.data.build_dataset` returns it (no transform).
        to_size: PIL transforms bringing a stored image to the model's size (may be empty).
        spec: the dataset's spec (mean, std).
        augment: the training augmentation, or None (evaluation).
    """
    from PIL import Image
    from torchvision import transforms

    base = getattr(dataset, "dataset", dataset)
    indices = list(getattr(dataset, "indices", range(len(base))))
    stored = base.images[indices]
    if to_size:
        step = transforms.Compose([*to_size, transforms.PILToTensor()])
        images = torch.stack([step(Image.fromarray(img)) for img in stored])
    else:
        images = torch.from_numpy(np.ascontiguousarray(stored))
        images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
    targets = [base.targets[i] for i in indices]
    return TensorImages(images.contiguous(), targets, base.classes, spec.mean, spec.std, augment)
