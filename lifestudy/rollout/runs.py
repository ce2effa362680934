"""Roll-out maps and localisation scores of a trained run (a folder of ``lifestudy train``).

The model is rebuilt from the run's checkpoint (:func:`lifestudy.engine.trained.load_run`,
which carries the config), and images go through the run's own evaluation preprocessing
(the task's test dataset), so the maps are of exactly what the run evaluated. A dense run
(segmentation) gets class maps; a classifier gets the standard class-token roll-out.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import v2

from lifestudy.data import get_spec
from lifestudy.dense.backbone import is_swin
from lifestudy.engine.trained import load_run
from lifestudy.errors import ConfigError
from lifestudy.records import provenance, write_json_atomic
from lifestudy.rollout.capture import has_class_token
from lifestudy.rollout.localisation import METHODS, localisation_scores, method_maps, score_map
from lifestudy.rollout.maps import attention_rollout
from lifestudy.tasks import get_task

__all__ = ["run_dataset", "load_image", "run_maps", "image_scores", "score_run"]

DENSE_TASKS = ("segmentation",)


def run_dataset(cfg, data: str | None = None, root: str | os.PathLike | None = None):
    """The test split of ``data`` (default: the run's dataset) with the run's evaluation
    preprocessing, and its spec. A scenes run may read another scenes variant (``scenes``
    carries every target, ``scenes-seg`` only the semantic mask; the canvases are the same)."""
    data = data or cfg.data
    if data != cfg.data and not (data.startswith("scenes") and cfg.data.startswith("scenes")):
        raise ConfigError(
            f"the run was trained on {cfg.data!r}; read its own dataset (--data {cfg.data}) "
            f"or, for a scenes run, another scenes variant -- not {data!r}"
        )
    root = root if root is not None else cfg.root
    spec = get_spec(data, root)
    cfg = dataclasses.replace(cfg, data=data, root=None if root is None else str(root))
    return get_task(cfg.task).build_datasets(cfg, spec)[1], spec


def load_image(path: str | os.PathLike, spec, img_size: Sequence[int]) -> torch.Tensor:
    """An image file as the model's input ``(1, C, H, W)``: converted to the spec's channels,
    resized (bilinear, antialiased) to ``img_size`` and normalised with the spec's statistics."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no image file at {path}; pass --image with a PNG/JPEG file")
    try:
        img = Image.open(path).convert("L" if spec.in_chans == 1 else "RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise ConfigError(f"cannot read {path} as an image ({err}); pass a PNG or JPEG file") from err
    tf = v2.Compose([
        v2.PILToTensor(),
        v2.Resize(tuple(int(s) for s in img_size), antialias=True),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(spec.mean), list(spec.std)),
    ])
    return tf(img).as_subclass(torch.Tensor)[None]


def run_maps(model, task: str, images: torch.Tensor, methods: Sequence[str] | None = None,
             head_fusion: str = "mean", discard_ratio: float = 0.0) -> dict[str, torch.Tensor]:
    """Maps ``{method: (B, K, gh, gw)}`` of a run's model: for a dense task, the given methods
    (default: all that apply); for a classifier, the class-token roll-out ``(B, 1, gh, gw)``."""
    if task in DENSE_TASKS:
        return method_maps(model, images, methods or METHODS, None, head_fusion, discard_ratio)
    asked = set(methods or ["cls-rollout"]) - {"cls-rollout"}
    if asked:
        raise ConfigError(
            f"method(s) {sorted(asked)} need per-token predictions, which a {task} model does not "
            "make; use --method cls-rollout (the class token's roll-out) or a segmentation run"
        )
    if not is_swin(model) and not has_class_token(model):
        raise ConfigError(f"this {task} model has no class token, so it has no class-token roll-out")
    return {"cls-rollout": attention_rollout(model, images, head_fusion, discard_ratio)[:, None]}


def image_scores(maps: dict[str, torch.Tensor], semantic: torch.Tensor, background: int | None = 0,
                 ignore_index: int | None = 255) -> dict[str, dict[str, dict[str, float]]]:
    """Per method and present class, the scores of one image's maps ``(K, gh, gw)``."""
    semantic = torch.as_tensor(semantic).long()
    valid = torch.ones_like(semantic, dtype=torch.bool) if ignore_index is None else semantic != ignore_index
    classes = [int(c) for c in semantic[valid].unique() if int(c) != background]
    out: dict[str, dict[str, dict[str, float]]] = {}
    for method, m in maps.items():
        up = F.interpolate(m[None].float(), size=semantic.shape, mode="bilinear", align_corners=False)[0]
        out[method] = {str(k): score_map(up[min(k, up.shape[0] - 1)], semantic == k, valid) for k in classes}
    return out


def score_run(run: str | os.PathLike, n: int | None = 200, data: str | None = None,
              root: str | os.PathLike | None = None, methods: Sequence[str] = METHODS,
              out: str | os.PathLike | None = None, device: str = "cpu", head_fusion: str = "mean",
              discard_ratio: float = 0.0, batch_size: int = 16) -> dict:
    """Localisation scores of a segmentation run on the first ``n`` test images, as a record
    (``kind: "localisation"``); written atomically to ``out`` when given.

    Args:
        run: the run folder.
        n: test images to score (None: all).
        data: a scenes variant (default: the run's dataset).
        root: dataset root (default: the run's).
        methods: from :data:`lifestudy.rollout.localisation.METHODS`.
        out: where to write the record (a ``.json`` path), or None.
        device: where the model runs.
        head_fusion, discard_ratio: see :func:`lifestudy.rollout.rollout`.
        batch_size: images per forward pass.
    """
    start = time.time()
    model, cfg, _ = load_run(run, device=device)
    if cfg.task not in DENSE_TASKS:
        raise ConfigError(
            f"localisation scores need a segmentation run (per-pixel predictions give the class "
            f"weights); {run} is a {cfg.task} run"
        )
    dataset, spec = run_dataset(cfg, data, root)
    scores = localisation_scores(model, dataset, methods, n=n, batch_size=batch_size,
                                 ignore_index=spec.ignore_index, head_fusion=head_fusion,
                                 discard_ratio=discard_ratio, device=device)
    record = {
        "kind": "localisation",
        "task": cfg.task,
        "run": str(run),
        "model": cfg.model,
        "data": spec.name,
        "metrics": {m: {k: v["mean"] for k, v in d.items()} for m, d in scores["methods"].items()},
        "sem": {m: {k: v["sem"] for k, v in d.items()} for m, d in scores["methods"].items()},
        "chance": {k: v["mean"] for k, v in scores["chance"].items()},
        **{k: scores[k] for k in ("n_images", "n_pairs", "threshold_rules", "head_fusion",
                                  "discard_ratio", "unavailable")},
        "provenance": provenance(profile=cfg.profile, dataset=spec.name, split="test", model=cfg.model,
                                 seed=cfg.seed, device=device, wall_time_s=round(time.time() - start, 2)),
    }
    if out is not None:
        write_json_atomic(out, record)
    return record
