"""Generated scenes: the offline stand-in for Pascal VOC and Cityscapes.

Each canvas holds a few Fashion-MNIST items (scikit-learn's digits only when a caller
names ``source="digits"``: never as a silent stand-in), pasted at random positions,
scales and colours over a cluttered textured background, in the spirit of multi-object
MNIST benchmarks (e.g. Eslami et al. 2016's Multi-MNIST; torchvision's detection
tutorial's targets format). What makes it hard enough for a model's choices to show:

- **scale range**: an item's longer side is drawn from ``item_size`` (12..40 px on a
  64 px canvas, a 3.3x range);
- **occlusion**: later items cover earlier ones, up to ``max_occlusion`` of an item
  (the frame counts as an occluder: items may hang over the border);
- **clutter**: a gradient + oriented stripes + low-frequency blotches + pixel noise,
  and fragments of other items pasted as unlabelled distractors;
- **colour**: items are tinted, with a minimum contrast to the background under them.

Targets are exact: an item's instance mask is its *visible* pixels (its own pixel mask,
holes filled, minus what later items cover), its box is the tight box of that mask
(XYXY, pixel edges: ``x2 = last column + 1``), and the semantic mask gives every visible
item pixel ``label + 1`` (0 is background). Items that would end up mostly hidden are
never painted, so every painted item is labelled.

Everything is a pure function of ``(seed, split, index)``: any canvas can be produced on
its own, in any order, in any worker. Train canvases draw items (and distractor
fragments) only from the source's training images, test canvases only from its test
images, so the splits share no source image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from torch.utils.data import Dataset
from torchvision import tv_tensors

from lifestudy.data.catalog import Source, default_root, register_source
from lifestudy.data.spec import DIGITS_CLASSES, SPECS, DatasetSpec
from lifestudy.errors import ConfigError, DatasetError

__all__ = ["SceneConfig", "Scenes", "render_scene", "item_pool", "SCENE_VARIANTS", "ITEM_SOURCES"]

#: which targets each name returns
SCENE_VARIANTS = {
    "scenes-det": ("boxes", "labels"),
    "scenes-seg": ("semantic",),
    "scenes": ("boxes", "labels", "masks", "semantic"),
}
_SPLIT_CODE = {"train": 0, "test": 1}
_DEFAULT_LENGTH = {"train": 2000, "test": 500}
#: where the items come from; the first is the default (every profile that makes claims)
ITEM_SOURCES = ("fashion-mnist", "digits")


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn (all sizes in pixels)."""

    size: tuple[int, int] = (64, 64)  # canvas (H, W), e.g. (64, 64) or (64, 128)
    num_items: tuple[int, int] = (1, 4)  # inclusive range of labelled items per canvas
    item_size: tuple[int, int] = (12, 40)  # inclusive range of an item's longer side
    max_occlusion: float = 0.5  # the most of an item that others (or the frame) may hide
    min_visible: int = 16  # fewest visible pixels a labelled item keeps
    clutter: tuple[int, int] = (2, 6)  # inclusive range of distractor fragments
    min_contrast: float = 0.25  # RGB distance between an item's tint and the background under it

    def __post_init__(self):
        H, W = self.size
        lo, hi = self.num_items
        slo, shi = self.item_size
        problems = []
        if not (H >= 16 and W >= 16):
            problems.append(f"size {self.size} must be at least 16x16")
        if not 0 <= lo <= hi:
            problems.append(f"num_items {self.num_items} must be (min, max) with 0 <= min <= max")
        if not 4 <= slo <= shi <= min(H, W):
            problems.append(f"item_size {self.item_size} must lie within 4..{min(H, W)} (the canvas)")
        if not 0.0 <= self.max_occlusion < 1.0:
            problems.append(f"max_occlusion {self.max_occlusion} must be in [0, 1)")
        if problems:
            raise ConfigError("scenes: " + "; ".join(problems))


# ----------------------------------------------------------------------------- item sources
def item_pool(source: str, split: str, root: Path | None = None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The grey item images (M, h, w) uint8, their labels (M,) and class names for a split.

    ``source`` is one of :data:`ITEM_SOURCES`. Without Fashion-MNIST under ``root`` (or the
    Debian package's files) "fashion-mnist" raises a DatasetError saying how to fetch it."""
    from lifestudy.data.classification import FashionMNIST, digits_split

    check_item_source(source)
    root = Path(root) if root is not None else default_root()
    if source == "fashion-mnist":
        try:
            images, labels = FashionMNIST()._load("fashion-mnist", root, split)
        except DatasetError as err:
            raise DatasetError(f"scenes take their items from Fashion-MNIST (source='digits' "
                               f"for digits); {err}") from None
        return images, np.asarray(labels, dtype=np.int64), SPECS["fashion-mnist"].class_names
    images, labels = digits_split()[split]
    return images, np.asarray(labels, dtype=np.int64), DIGITS_CLASSES


def check_item_source(source: str) -> None:
    if source not in ITEM_SOURCES:
        raise ConfigError(f"scenes: source must be one of {', '.join(map(repr, ITEM_SOURCES))}, "
                          f"got {source!r}")


# ----------------------------------------------------------------------------- drawing
def _resize(a: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float image (h, w) to (H, W)."""
    img = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32))  # mode "F"
    return np.asarray(img.resize((hw[1], hw[0]), Image.BILINEAR), dtype=np.float32)


def _background(rng: np.random.Generator, H: int, W: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    t = (xx * np.cos(theta) + yy * np.sin(theta)) / max(H, W)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    c0, c1 = rng.uniform(0.15, 0.85, size=(2, 3)).astype(np.float32)
    bg = c0 * (1 - t[..., None]) + c1 * t[..., None]
    if rng.random() < 0.75:  # oriented stripes
        phi = rng.uniform(0, np.pi)
        freq = rng.uniform(0.04, 0.3)
        wave = np.sin(2 * np.pi * freq * (xx * np.cos(phi) + yy * np.sin(phi)) + rng.uniform(0, 2 * np.pi))
        bg += rng.uniform(0.04, 0.18) * wave[..., None] * rng.uniform(-1, 1, size=3).astype(np.float32)
    coarse = rng.normal(0, 1, size=(max(H // 8, 2), max(W // 8, 2), 3)).astype(np.float32)
    bg += 0.08 * np.stack([_resize(coarse[..., c], (H, W)) for c in range(3)], axis=-1)
    bg += rng.normal(0, rng.uniform(0.01, 0.06), size=(H, W, 3)).astype(np.float32)
    return bg


def _item_patch(rng: np.random.Generator, item: np.ndarray, side: int):
    """Crop an item to its pixels, resize so its longer side is ``side`` (aspect jittered);
    returns intensity (h, w) in [0, 1] and its mask (holes filled)."""
    ys, xs = np.nonzero(item > 20)
    if len(ys) == 0:
        return None, None
    crop = item[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1].astype(np.float32) / 255.0
    h0, w0 = crop.shape
    aspect = (h0 / w0) * rng.uniform(0.8, 1.25)
    h, w = (side, max(2, round(side / aspect))) if aspect >= 1 else (max(2, round(side * aspect)), side)
    intensity = np.clip(_resize(crop, (h, w)), 0, 1)
    mask = ndimage.binary_fill_holes(intensity > 0.1)
    if rng.random() < 0.5:
        intensity, mask = intensity[:, ::-1], mask[:, ::-1]
    return intensity, mask


def _paste_box(H, W, y, x, h, w):
    """Canvas and patch slices for a patch of (h, w) at top-left (y, x), clipped to the canvas."""
    y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + h, H), min(x + w, W)
    if y0 >= y1 or x0 >= x1:
        return None
    return (slice(y0, y1), slice(x0, x1)), (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))


def render_scene(cfg: SceneConfig, images: np.ndarray, labels: np.ndarray,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw one canvas. Returns ``image`` (H, W, 3) uint8, ``masks`` (N, H, W) bool (visible
    pixels), ``boxes`` (N, 4) float XYXY, ``labels`` (N,) int64, ``semantic`` (H, W) int64,
    ``sources`` (N,) the items' indices in ``images``, ``visible_fraction`` (N,) of each item's
    pixels left visible (by later items and the frame)."""
    H, W = cfg.size
    canvas = _background(rng, H, W)

    # clutter: fragments of items, unlabelled
    for _ in range(rng.integers(cfg.clutter[0], cfg.clutter[1] + 1)):
        src = images[rng.integers(len(images))].astype(np.float32) / 255.0
        sh, sw = src.shape
        ch, cw = rng.integers(max(sh // 4, 2), max(sh // 2, 3), size=2)
        cy, cx = rng.integers(0, sh - ch + 1), rng.integers(0, sw - cw + 1)
        side = int(rng.integers(6, max(7, cfg.item_size[0] + 4)))
        frag = _resize(src[cy: cy + ch, cx: cx + cw], (side, side))
        y, x = int(rng.integers(-side // 2, H - side // 2)), int(rng.integers(-side // 2, W - side // 2))
        placed = _paste_box(H, W, y, x, side, side)
        if placed is None:
            continue
        cs, ps = placed
        alpha = 0.7 * np.clip(frag[ps], 0, 1)[..., None]
        tint = rng.uniform(0, 1, size=3).astype(np.float32)
        canvas[cs] = canvas[cs] * (1 - alpha) + tint * alpha

    want = int(rng.integers(cfg.num_items[0], cfg.num_items[1] + 1))
    full_area: list[int] = []
    visible: list[np.ndarray] = []
    item_labels: list[int] = []
    sources: list[int] = []
    for _ in range(want):
        for _attempt in range(20):
            j = int(rng.integers(len(images)))
            side = int(rng.integers(cfg.item_size[0], cfg.item_size[1] + 1))
            intensity, mask = _item_patch(rng, images[j], side)
            if mask is None or mask.sum() < cfg.min_visible:
                continue
            h, w = mask.shape
            y = int(rng.integers(-h // 4, H - (3 * h) // 4 + 1))
            x = int(rng.integers(-w // 4, W - (3 * w) // 4 + 1))
            placed = _paste_box(H, W, y, x, h, w)
            if placed is None:
                continue
            cs, ps = placed
            new = np.zeros((H, W), dtype=bool)
            new[cs] = mask[ps]
            area = int(mask.sum())
            keep = 1.0 - cfg.max_occlusion
            if new.sum() < max(keep * area, cfg.min_visible):
                continue  # mostly outside the canvas
            if any((v & ~new).sum() < max(keep * a, cfg.min_visible) for v, a in zip(visible, full_area)):
                continue  # would hide too much of an earlier item
            under = canvas[new].mean(axis=0)
            for _ in range(8):
                tint = rng.uniform(0, 1, size=3).astype(np.float32)
                if np.linalg.norm(tint - under) >= cfg.min_contrast:
                    break
            else:
                tint = np.where(under > 0.5, 0.0, 1.0).astype(np.float32)
            texture = (0.35 + 0.65 * intensity[ps])[..., None] * tint
            region = canvas[cs]
            region[mask[ps]] = texture[mask[ps]]
            canvas[cs] = region
            visible = [v & ~new for v in visible]
            visible.append(new)
            full_area.append(area)
            item_labels.append(int(labels[j]))
            sources.append(j)
            break

    # sensor noise over everything, so smoothness alone does not tell items from background
    canvas += rng.normal(0, rng.uniform(0.0, 0.04), size=canvas.shape).astype(np.float32)
    N = len(visible)
    masks = np.stack(visible) if N else np.zeros((0, H, W), dtype=bool)
    boxes = np.zeros((N, 4), dtype=np.float32)
    semantic = np.zeros((H, W), dtype=np.int64)
    for n, (m, lab) in enumerate(zip(masks, item_labels)):
        ys, xs = np.nonzero(m)
        boxes[n] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        semantic[m] = lab + 1
    image = (np.clip(canvas, 0, 1) * 255 + 0.5).astype(np.uint8)
    return {"image": image, "masks": masks, "boxes": boxes,
            "labels": np.asarray(item_labels, dtype=np.int64), "semantic": semantic,
            "sources": np.asarray(sources, dtype=np.int64),
            "visible_fraction": masks.sum(axis=(1, 2)) / np.maximum(np.asarray(full_area, dtype=np.float64), 1)}


# ----------------------------------------------------------------------------- the dataset
class Scenes(Dataset):
    """Generated scenes for one split; item ``i`` is a pure function of (seed, split, i).

    Items are ``(tv_tensors.Image uint8 (3, H, W), target)`` with the target keys of
    :data:`SCENE_VARIANTS` for ``variant``; ``transform`` is a ``torchvision.transforms.v2``
    callable applied to ``(image, target)``.
    """

    def __init__(self, split: str, variant: str = "scenes", cfg: SceneConfig = SceneConfig(),
                 length: int | None = None, seed: int = 0, source: str = ITEM_SOURCES[0],
                 root: str | Path | None = None, transform: Callable | None = None,
                 cache: bool = True):
        if split not in _SPLIT_CODE:
            raise ConfigError(f"scenes: split must be 'train' or 'test', got {split!r}")
        if variant not in SCENE_VARIANTS:
            raise ConfigError(f"scenes: variant must be one of {sorted(SCENE_VARIANTS)}")
        self.split, self.variant, self.cfg, self.seed = split, variant, cfg, int(seed)
        self.length = _DEFAULT_LENGTH[split] if length is None else int(length)
        if self.length < 1:
            raise ConfigError(f"scenes: length must be positive, got {length}")
        root = Path(root) if root is not None else default_root()
        self.source = source
        self.images, self.item_labels, names = item_pool(self.source, split, root)
        self.classes = list(names)
        self.transform = transform
        # rendered canvases (about 20 kB each at 64x64), so later epochs cost no drawing
        self._cache: dict[int, dict[str, np.ndarray]] | None = {} if cache else None

    def __len__(self) -> int:
        return self.length

    def render(self, index: int) -> dict[str, np.ndarray]:
        """The canvas and all its targets as numpy arrays (see :func:`render_scene`)."""
        if not 0 <= index < self.length:
            raise IndexError(f"scene {index} out of range 0..{self.length - 1}")
        if self._cache is not None and index in self._cache:
            s = self._cache[index]  # copies: callers may modify what they get
            return {k: v.astype(np.int64) if k == "semantic" else v.copy() for k, v in s.items()}
        rng = np.random.default_rng([self.seed, _SPLIT_CODE[self.split], int(index)])
        s = render_scene(self.cfg, self.images, self.item_labels, rng)
        if self._cache is not None:
            self._cache[index] = {**s, "semantic": s["semantic"].astype(np.uint8)}
        return s

    def __getitem__(self, index: int):
        s = self.render(index)
        H, W = self.cfg.size
        image = tv_tensors.Image(torch.from_numpy(s["image"]).permute(2, 0, 1).contiguous())
        target: dict[str, Any] = {}
        keys = SCENE_VARIANTS[self.variant]
        if "boxes" in keys:
            target["boxes"] = tv_tensors.BoundingBoxes(
                torch.from_numpy(s["boxes"]), format="XYXY", canvas_size=(H, W))
            target["labels"] = torch.from_numpy(s["labels"])
        if "masks" in keys:
            target["masks"] = tv_tensors.Mask(torch.from_numpy(s["masks"]))
        if "semantic" in keys:
            target["semantic"] = tv_tensors.Mask(torch.from_numpy(s["semantic"]))
        if self.transform is not None:
            image, target = self.transform(image, target)
        return image, target

    def describe(self) -> dict[str, Any]:
        return {"split": self.split, "variant": self.variant, "length": self.length,
                "seed": self.seed, "source": self.source, **asdict(self.cfg)}


@register_source
class ScenesSource(Source):
    names = tuple(SCENE_VARIANTS)
    how_to_get = ("generated, nothing to download; items come from Fashion-MNIST "
                  "(`lifestudy data fetch fashion-mnist`), or digits with source='digits'")

    def spec(self, name: str, root: Path | None = None, source: str = ITEM_SOURCES[0],
             size: tuple[int, int] | None = None) -> DatasetSpec:
        """The scenes' spec: class names follow the item source, sizes the canvas."""
        check_item_source(source)
        spec = SPECS[name]
        if source == "digits":
            names = ("background",) + DIGITS_CLASSES if name == "scenes-seg" else DIGITS_CLASSES
            spec = spec.with_class_names(names)
        if size is not None:
            spec = replace(spec, input_size=tuple(size), native_size=tuple(size))
        return spec

    def validate(self, name, root, deep=False):
        """``lifestudy data check``: the default item source is readable (a build checks the
        source it is given)."""
        if deep:
            item_pool(ITEM_SOURCES[0], "test", root)

    def build(self, name, root, split, transform=None, *, seed=0, size=(64, 64), num_items=(1, 4),
              length=None, source=ITEM_SOURCES[0], cache=True, **options):
        known = set(SceneConfig.__dataclass_fields__) - {"size", "num_items"}
        unknown = set(options) - known
        if unknown:
            raise ConfigError(f"scenes: unknown options {sorted(unknown)}; known: seed, size, "
                              f"num_items, length, source, cache, {', '.join(sorted(known))}")
        cfg = SceneConfig(size=tuple(size), num_items=tuple(num_items), **options)
        return Scenes(split, name, cfg, length=length, seed=seed, source=source, root=root,
                      transform=transform, cache=cache)

    def describe(self, name, root):
        ds = self.build(name, root, "train", length=1)
        return (f"{name}: ok (generated; items from {ds.source}; train {_DEFAULT_LENGTH['train']}, "
                f"test {_DEFAULT_LENGTH['test']} canvases by default; {len(ds.classes)} item classes; "
                f"{ds.cfg.size[0]}x{ds.cfg.size[1]} canvases, {ds.cfg.num_items[0]}-"
                f"{ds.cfg.num_items[1]} items)")

    def fetch(self, name, root):
        from lifestudy.data.classification import FashionMNIST

        items = FashionMNIST().fetch("fashion-mnist", root)
        return f"{name}: generated on the fly from Fashion-MNIST's items ({items})"
