"""Figures of class maps: the image, its ground truth, and each class's map overlaid.

One row per method (a single map tensor gives one row), one column per class; every map
panel has its own colour bar (maps of different methods live on different scales) and the
class's ground-truth outline drawn over it, so a reader sees at once whether the map's
mass sits on the item. Maps are drawn over a grey copy of the image so that their colours
are not confused with the image's own.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

__all__ = ["display_image", "plot_class_maps"]


def display_image(image: torch.Tensor, mean: Sequence[float] | None = None,
                  std: Sequence[float] | None = None):
    """``(C, H, W)`` image (uint8, or float normalised with ``mean``/``std``) -> an
    ``(H, W, 3)`` float array in [0, 1] for ``imshow``."""
    x = torch.as_tensor(image).detach().cpu()
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    else:
        x = x.float()
        if mean is not None and std is not None:
            x = x * torch.tensor(std).view(-1, 1, 1) + torch.tensor(mean).view(-1, 1, 1)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return x.clamp(0, 1).permute(1, 2, 0).numpy()


def plot_class_maps(
    image: torch.Tensor,
    maps: torch.Tensor | Mapping[str, torch.Tensor],
    semantic: torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
    classes: Sequence[int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    background: int | None = 0,
    ignore_index: int | None = 255,
    alpha: float = 0.55,
    cmap: str = "inferno",
    title: str | None = None,
):
    """Image | ground truth | one overlaid map per class, one row per method.

    Args:
        image: ``(C, H, W)`` uint8 or normalised float (give ``mean``/``std`` to undo it).
        maps: ``(K, gh, gw)`` class maps of one image, a single ``(gh, gw)`` map, or
            ``{method: (K, gh, gw)}`` for one row per method.
        semantic: ``(H, W)`` ground-truth classes (None: no ground-truth panel).
        class_names: names of the K classes.
        classes: which classes to draw; default: those present in ``semantic``
            (background and ignored pixels excluded), else the first min(K, 4).
        mean, std: normalisation of a float image.
        background, ignore_index: classes left out of the default selection.
        alpha: opacity of the overlaid map.
        cmap: colour map of the maps.
        title: figure title.

    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib import colors

    rows = dict(maps) if isinstance(maps, Mapping) else {"": maps}
    rows = {name: (m[None] if m.dim() == 2 else m).detach().float().cpu() for name, m in rows.items()}
    K = max(m.shape[0] for m in rows.values())
    img = display_image(image, mean, std)
    H, W = img.shape[:2]
    grey = img.mean(axis=-1)
    sem = None if semantic is None else torch.as_tensor(semantic).cpu()
    if classes is None:
        if sem is not None:
            present = [int(c) for c in sem.unique() if int(c) not in (background, ignore_index)]
            classes = [c for c in present if c < K] or list(range(min(K, 4)))
        else:
            classes = list(range(min(K, 4)))
    names = list(class_names) if class_names is not None else [f"class {k}" for k in range(max(K, 1))]

    n_cols = 1 + (sem is not None) + len(classes)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(2.6 * n_cols, 2.5 * len(rows)), squeeze=False)
    for r, (method, m) in enumerate(rows.items()):
        up = F.interpolate(m[None], size=(H, W), mode="bilinear", align_corners=False)[0]
        ax = axes[r, 0]
        if r == 0:
            ax.imshow(img)
            ax.set_title("image")
        else:
            ax.set_frame_on(False)
        if method:
            ax.set_ylabel(method, fontsize=10)
        col = 1
        if sem is not None and r > 0:
            axes[r, col].set_axis_off()
            col += 1
        elif sem is not None:
            ax = axes[r, col]
            shown = sem.clone().float()
            if ignore_index is not None:
                shown[sem == ignore_index] = float("nan")
            n_cls = max(len(names), int(sem[sem != (ignore_index or -1)].max()) + 1 if sem.numel() else 1)
            im = ax.imshow(shown.numpy(), cmap="tab20", vmin=-0.5, vmax=n_cls - 0.5, interpolation="nearest")
            present = [int(c) for c in sem.unique() if int(c) != ignore_index]
            cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, ticks=present)
            cb.ax.set_yticklabels([names[c] if c < len(names) else str(c) for c in present], fontsize=7)
            ax.set_title("ground truth" if r == 0 else "")
            col += 1
        for k in classes:
            ax = axes[r, col]
            heat = up[min(k, up.shape[0] - 1)].numpy()
            ax.imshow(grey, cmap="gray", vmin=0, vmax=1)
            im = ax.imshow(heat, cmap=cmap, alpha=alpha,
                           norm=colors.Normalize(vmin=float(heat.min()), vmax=float(heat.max()) or 1.0))
            if sem is not None:
                ax.contour((sem == k).numpy().astype(float), levels=[0.5], colors="cyan", linewidths=1.0)
            cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
            cb.ax.tick_params(labelsize=7)
            ax.set_title(names[k] if k < len(names) else f"class {k}", fontsize=10)
            col += 1
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
