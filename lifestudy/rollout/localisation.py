"""Measuring class maps against ground-truth masks: pointing game, energy inside, IoU.

On the generated scenes every item's mask is known, so a class map can be *scored*, not
just drawn. For every test image and every item class k present in it (background and
ignored pixels excluded), the map of class k is upsampled bilinearly to the image size and
compared with the mask ``semantic == k``:

- **pointing game** (Zhang et al., "Top-down Neural Attention by Excitation Backprop",
  ECCV 2016): a hit when the map's maximum pixel lies inside the mask. We use no tolerance
  margin (the original allows 15 pixels at ImageNet scale; our items are 10-20 pixels wide).
- **energy inside the mask** (``energy``): the share of the map's mass that lies on the
  mask, ``sum_mask h / sum h`` over the labelled pixels, negative values clipped to 0 -- the
  "energy-based pointing game" of Score-CAM (Wang et al., CVPR-W 2020, section 4.2), with
  the object's mask in place of its box. A uniform map scores the mask's area fraction.
- **top-region IoU, area-matched** (``iou_area``): the region is the ``|mask|`` highest-valued
  pixels of the map, i.e. the top-q fraction of the image with q the mask's own area
  fraction; we report its IoU with the mask. Giving every method the same pixel budget makes
  the score independent of how a map is calibrated (roll-out maps are smooth with a high
  floor, last-layer maps are peaky), so it compares *where* the mass is, not its dynamic range.
- **top-region IoU, half-max** (``iou_half_max``): the region where the min-max normalised
  map is at least 0.5 -- the common fixed-threshold rule, reported beside it because readers
  know it, with the caveat above.
- **chance**: a map that points at a random pixel hits with probability q, a uniform map
  puts q of its energy on the mask, and a random region of q's area has expected IoU
  q / (2 - q); these are reported as ``chance``.

Methods compared, all on the same forward pass of the same model:

- ``dense-rollout``: Dense Attention Roll-Out (:func:`lifestudy.rollout.dense_attention_rollout`);
- ``last-layer``: the same weighted rows of the last block's attention alone;
- ``cls-rollout``: the standard class-token roll-out (class-agnostic: the same map is
  scored against every class's mask); only where the backbone has a class token;
- ``prediction``: the token weights themselves (the model's own softmax pooled to the
  patch grid) -- the baseline any attention map must beat to tell us something the
  prediction does not (a dense map contains the weights, scaled by R's diagonal; see
  :mod:`lifestudy.rollout.maps`);
- ``centre``: a centre prior, an isotropic Gaussian on the patch grid (sigma a quarter of
  each side), class-agnostic and image-agnostic: what a map gets for knowing only that
  items tend to lie away from the frame (the centre bias of saliency benchmarks, Judd et
  al., ICCV 2009).

All maps are compared at the patch grid's resolution, upsampled the same way, so the
prediction baseline is the pooled prediction, not the decoder's full-resolution output.

**Intervals.** Each score is the mean over (image, present class) pairs. Pairs of one
image are not independent, so the 95 % interval is a bootstrap over *images*
(``scipy.stats.bootstrap``, BCa, 2,000 resamples, fixed seed): images are resampled with
all their pairs, and the statistic is the pooled pair mean of the resample. Paired
differences (``differences``: dense roll-out minus the prediction, minus the centre prior,
minus chance; the same images in both arms) get their interval the same way, so "better
than" is said only where the difference's interval excludes 0.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lifestudy.errors import ConfigError
from lifestudy.rollout.capture import has_class_token
from lifestudy.rollout.maps import class_maps, fuse_heads, rollout_all

__all__ = [
    "METHODS",
    "THRESHOLD_RULES",
    "method_maps",
    "score_map",
    "localisation_scores",
    "localisation_table",
    "prepare_images",
    "centre_prior",
    "bootstrap_mean",
    "DIFFERENCES",
]

METHODS = ("dense-rollout", "last-layer", "cls-rollout", "prediction", "centre")
METRICS = ("pointing_game", "energy", "iou_area", "iou_half_max")
THRESHOLD_RULES = {
    "iou_area": "top-|mask| pixels of the map (area-matched to the mask)",
    "iou_half_max": "pixels >= 0.5 of the min-max normalised map",
    "pointing_game": "the map's maximum pixel lies inside the mask (no tolerance)",
    "energy": "share of the map's (non-negative) mass on the mask",
}
#: Paired differences reported with intervals: (method, the reference it is compared with).
DIFFERENCES = (("dense-rollout", "prediction"), ("dense-rollout", "centre"), ("dense-rollout", "chance"),
               ("prediction", "chance"))
_CHANCE_METRICS = ("pointing_game", "energy", "iou_area")


def centre_prior(grid: tuple[int, int], sigma: float = 0.25) -> torch.Tensor:
    """An isotropic-in-units-of-the-side Gaussian ``(gh, gw)`` centred on the grid, with
    standard deviation ``sigma`` times each side (the ``centre`` method)."""
    gh, gw = grid
    y = (torch.arange(gh, dtype=torch.float32) + 0.5) / gh - 0.5
    x = (torch.arange(gw, dtype=torch.float32) + 0.5) / gw - 0.5
    return torch.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma ** 2))


def method_maps(
    model: nn.Module,
    images: torch.Tensor,
    methods: Sequence[str] = METHODS,
    token_weights: torch.Tensor | None = None,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Class maps ``(B, K, gh, gw)`` of each method in ``methods`` from one forward pass
    (``cls-rollout`` is class-agnostic: one map repeated over K). Methods that do not apply
    to the model (``cls-rollout`` without a class token) are left out of the result.

    Args:
        model: a segmenter holding a timm ViT as ``.backbone`` (or a ViT with ``token_weights``).
        images: ``(B, C, H, W)`` preprocessed.
        methods: names from :data:`METHODS`.
        token_weights: ``(B, N_patches, K)``; None for the model's own predictions.
        head_fusion, discard_ratio: see :func:`lifestudy.rollout.rollout`.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method(s) {unknown}; choose from {METHODS}.")
    need_weights = any(m not in ("cls-rollout", "centre") for m in methods)
    res = rollout_all(model, images, token_weights, head_fusion, discard_ratio, need_weights)
    R, w, P, (gh, gw) = res["R"], res["token_weights"], res["num_prefix_tokens"], res["grid"]
    B = R.shape[0]
    K = w.shape[-1] if w is not None else 1
    out: dict[str, torch.Tensor] = {}
    for m in methods:
        if m == "dense-rollout":
            out[m] = class_maps(R, w, P, (gh, gw))
        elif m == "last-layer":
            out[m] = class_maps(fuse_heads(res["attentions"][-1], head_fusion), w, P, (gh, gw))
        elif m == "cls-rollout" and has_class_token(model):
            out[m] = R[:, 0, P:].reshape(B, 1, gh, gw).expand(B, K, gh, gw)
        elif m == "prediction":
            out[m] = w.float().transpose(1, 2).reshape(B, K, gh, gw)
        elif m == "centre":
            out[m] = centre_prior((gh, gw)).to(R.device).expand(B, K, gh, gw)
    return out


def score_map(heat: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor | None = None) -> dict[str, float]:
    """Pointing game, energy inside and top-region IoUs of one map against one mask
    (module docstring).

    Args:
        heat: ``(H, W)`` map at image resolution.
        mask: ``(H, W)`` bool, the class's ground truth; must not be empty.
        valid: ``(H, W)`` bool, pixels that count (False for ignored pixels); None for all.
    """
    heat = heat.float().flatten()
    mask = mask.bool().flatten()
    valid = torch.ones_like(mask) if valid is None else valid.bool().flatten()
    mask = mask & valid
    area = int(mask.sum())
    if area == 0:
        raise ConfigError("score_map needs a non-empty mask (a class present in the image).")
    masked = heat.masked_fill(~valid, float("-inf"))
    hit = bool(mask[masked.argmax()])
    top = torch.zeros_like(mask)
    top[masked.topk(area).indices] = True
    inter = int((top & mask).sum())
    iou_area = inter / (2 * area - inter)
    lo, hi = heat[valid].min(), heat[valid].max()
    norm = (heat - lo) / (hi - lo) if hi > lo else torch.ones_like(heat)
    region = (norm >= 0.5) & valid
    iou_half = int((region & mask).sum()) / int((region | mask).sum())
    mass = heat.clamp(min=0) * valid
    total = float(mass.sum())
    energy = float(mass[mask].sum()) / total if total > 0 else area / int(valid.sum())
    return {"pointing_game": float(hit), "energy": energy, "iou_area": iou_area, "iou_half_max": iou_half}


def prepare_images(images: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None) -> torch.Tensor:
    """uint8 ``(B, C, H, W)`` images -> float, scaled to [0, 1] and normalised with
    ``mean``/``std``; float images are taken as already preprocessed."""
    if images.dtype != torch.uint8:
        return images.float()
    if mean is None or std is None:
        raise ConfigError(
            "the dataset yields uint8 images: pass mean and std (e.g. "
            "lifestudy.data.get_spec('scenes-seg').mean / .std) so they can be normalised."
        )
    x = images.float() / 255.0
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


def _items(dataset, indices: Iterable[int]):
    for i in indices:
        image, target = dataset[i]
        semantic = target["semantic"] if isinstance(target, dict) else target
        yield torch.as_tensor(image).as_subclass(torch.Tensor), torch.as_tensor(semantic).as_subclass(torch.Tensor).long()


def bootstrap_mean(sums: np.ndarray, counts: np.ndarray, confidence: float = 0.95,
                   n_resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """The pooled mean ``sum(sums) / sum(counts)`` of per-image sums over per-image pair
    counts, with its standard error and a bootstrap interval over images (module
    docstring): ``{"mean", "sem", "low", "high"}``. With fewer than 3 images, or values
    that do not vary, the interval is the mean itself."""
    from scipy import stats

    sums, counts = np.asarray(sums, dtype=np.float64), np.asarray(counts, dtype=np.float64)
    mean = float(sums.sum() / counts.sum())
    n = len(sums)
    per_image = sums / np.maximum(counts, 1)
    sem = float(np.std(per_image, ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    low = high = mean
    if n >= 3 and np.ptp(per_image) > 0:
        def pooled(s, c, axis=-1):
            return s.sum(axis=axis) / c.sum(axis=axis)

        res = stats.bootstrap((sums, counts), pooled, paired=True, vectorized=True,
                              confidence_level=confidence, n_resamples=n_resamples, method="BCa",
                              random_state=np.random.default_rng(seed))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if not (math.isfinite(low) and math.isfinite(high)):  # BCa degenerates on a few values
            res = stats.bootstrap((sums, counts), pooled, paired=True, vectorized=True,
                                  confidence_level=confidence, n_resamples=n_resamples,
                                  method="percentile", random_state=np.random.default_rng(seed))
            low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return {"mean": mean, "sem": sem, "low": low, "high": high}


def localisation_scores(
    model: nn.Module,
    dataset,
    methods: Sequence[str] = METHODS,
    n: int | None = None,
    batch_size: int = 16,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    background: int | None = 0,
    ignore_index: int | None = 255,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    device: str | torch.device = "cpu",
    confidence: float = 0.95,
) -> dict:
    """Score each method's class maps against the masks of the first ``n`` images.

    Args:
        model: a segmenter whose output ``(B, K, H, W)`` indexes the same classes as the
            dataset's semantic masks (scenes-seg: 0 background, item c -> c + 1).
        dataset: items ``(image, target)`` with ``target["semantic"]`` ``(H, W)`` (or the
            mask itself); images uint8 (normalised here with ``mean``/``std``) or float.
        methods: names from :data:`METHODS`.
        n: number of images (None: all).
        batch_size: images per forward pass.
        mean, std: normalisation of uint8 images.
        background: class never scored (None: score every class).
        ignore_index: pixels excluded from every region and mask.
        head_fusion, discard_ratio: see :func:`lifestudy.rollout.rollout`.
        device: where the model runs.
        confidence: level of the bootstrap intervals.

    Returns:
        ``{"methods": {method: {metric: {"mean", "sem", "low", "high"}}}, "chance": {...},
        "differences": {"A - B": {metric: {...}}}, "n_images", "n_pairs", "confidence",
        "threshold_rules", "head_fusion", "discard_ratio", "unavailable": [methods that
        do not apply to this model]}``; a pair is one (image, present class), ``low`` /
        ``high`` the bootstrap interval over images (module docstring).
    """
    total = len(dataset)
    n = total if n is None else min(int(n), total)
    if n <= 0:
        raise ConfigError(f"no images to score (n={n}, dataset of {total}).")
    model = model.to(device)
    # per image: the sum of each score over its present classes, and how many there are
    sums: dict[str, dict[str, list[float]]] = {}
    chance: dict[str, list[float]] = {k: [] for k in _CHANCE_METRICS}
    counts: list[int] = []
    unavailable: set[str] = set()
    indices = list(range(n))
    for start in range(0, n, batch_size):
        batch = list(_items(dataset, indices[start:start + batch_size]))
        images = prepare_images(torch.stack([b[0] for b in batch]), mean, std).to(device)
        semantic = torch.stack([b[1] for b in batch])
        H, W = semantic.shape[-2:]
        maps = method_maps(model, images, methods, None, head_fusion, discard_ratio)
        unavailable |= set(methods) - set(maps)
        K = next(iter(maps.values())).shape[1]
        up = {m: F.interpolate(v.cpu(), size=(H, W), mode="bilinear", align_corners=False) for m, v in maps.items()}
        for b in range(len(batch)):
            sem = semantic[b]
            valid = torch.ones_like(sem, dtype=torch.bool) if ignore_index is None else sem != ignore_index
            classes = [int(c) for c in sem[valid].unique() if int(c) != background]
            image_sums: dict[str, dict[str, float]] = {m: dict.fromkeys(METRICS, 0.0) for m in up}
            image_chance = dict.fromkeys(_CHANCE_METRICS, 0.0)
            for k in classes:
                if k >= K:
                    raise ConfigError(
                        f"the masks contain class {k} but the model predicts {K} classes: "
                        "use the dataset the model was trained on (scenes-seg for a scenes segmenter)."
                    )
                mask = sem == k
                q = int(mask.sum()) / int(valid.sum())
                image_chance["pointing_game"] += q
                image_chance["energy"] += q
                image_chance["iou_area"] += q / (2 - q)
                for m, v in up.items():
                    for metric, value in score_map(v[b, k], mask, valid).items():
                        image_sums[m][metric] += value
            if not classes:
                continue  # an image with nothing to find adds no pair
            counts.append(len(classes))
            for m, d in image_sums.items():
                for metric, value in d.items():
                    sums.setdefault(m, {}).setdefault(metric, []).append(value)
            for metric, value in image_chance.items():
                chance[metric].append(value)
    n_pairs = int(sum(counts))
    if n_pairs == 0:
        raise ConfigError("no (image, class) pairs to score: the masks hold only background/ignored pixels.")
    c = np.asarray(counts)
    arrays = {m: {metric: np.asarray(v) for metric, v in d.items()} for m, d in sums.items()}
    arrays["chance"] = {metric: np.asarray(v) for metric, v in chance.items()}
    differences = {}
    for a, b in DIFFERENCES:
        if a in arrays and b in arrays:
            shared = [k for k in arrays[a] if k in arrays[b]]
            differences[f"{a} - {b}"] = {k: bootstrap_mean(arrays[a][k] - arrays[b][k], c, confidence)
                                         for k in shared}
    return {
        "methods": {m: {k: bootstrap_mean(v, c, confidence) for k, v in d.items()}
                    for m, d in arrays.items() if m != "chance"},
        "chance": {k: bootstrap_mean(v, c, confidence) for k, v in arrays["chance"].items()},
        "differences": differences,
        "n_images": n,
        "n_pairs": n_pairs,
        "confidence": confidence,
        "threshold_rules": THRESHOLD_RULES,
        "head_fusion": head_fusion,
        "discard_ratio": discard_ratio,
        "unavailable": sorted(unavailable),
    }


def localisation_table(scores: dict[str, dict], differences: bool = False):
    """A pandas table from ``{model_name: localisation_scores(...) or a localisation
    record}``: rows model x method (plus chance), or with ``differences`` model x paired
    difference; columns each metric's mean, ``<metric>_sem``, ``<metric>_low`` and
    ``<metric>_high`` (the bootstrap interval)."""
    import pandas as pd

    rows = []
    for model_name, s in scores.items():
        if "methods" not in s:  # a record written by lifestudy.rollout.runs.score_run
            s = s["scores"]
        groups = s.get("differences", {}) if differences else {**s["methods"], "chance": s["chance"]}
        for method, metrics in groups.items():
            row = {"model": model_name, ("difference" if differences else "method"): method,
                   "n_pairs": s["n_pairs"]}
            for metric, v in metrics.items():
                row[metric] = v["mean"]
                for part in ("sem", "low", "high"):
                    row[f"{metric}_{part}"] = v.get(part, float("nan"))
            rows.append(row)
    return pd.DataFrame(rows)
