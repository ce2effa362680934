# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 8. Dense Attention Roll-Out
#
# **What you will do.** Draw class-specific attention maps of segmentation models with
# and without LIFE using Dense Attention Roll-Out, and *score* them against the scenes'
# ground-truth masks, beside simpler alternatives.
#
# **What you will learn.** How the paper's visualisation is defined (we write the
# definition out, with our reasoning where the paper leaves room), and whether its maps
# point at the right objects more often than cheaper maps do.
#
# **What you need.** The segmentation runs of chapter 6 (trained here if they are
# missing); in the `cpu` profile about 2 minutes on 2 CPU cores.

# %% [markdown]
# ## Setup
#
# In Colab this cell installs the package from its repository; anywhere else it does
# nothing (install with `pip install -e .` or `make install` instead).

# %%
try:
    import google.colab  # noqa: F401  (importable only in Colab)

    IN_COLAB = True
except ImportError:
    IN_COLAB = False
if IN_COLAB:
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet",
         "lifestudy @ git+https://github.com/lifestudy/lifestudy"],
        check=True,
    )

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch

from lifestudy import report
from lifestudy.engine import TrainConfig
from lifestudy.engine.checkpoint import load_run
from lifestudy.profiles import get_profile
from lifestudy.records import provenance, read_json, write_json_atomic
from lifestudy.rollout import figures, localisation
from lifestudy.tasks import get_task

# %% tags=["parameters"]
profile = "cpu"  # smoke | cpu | paper
device = "cpu"  # cpu | cuda | auto
seeds = None  # None: the profile's seeds (the maps use the first seed's models)
data_root = None  # None: $LIFESTUDY_DATA or <repo>/data
out_dir = None  # None: runs/<profile>/08_rollout
scene_canvases = None  # (train, test) generated scenes; None: the chapter's choice for the profile
segmentation_runs = None  # None: chapter 6's runs, runs/<profile>/06_segmentation
n_images = None  # test images to score; None: the profile's default
reuse_runs = True  # reuse chapter 6's trained models (this chapter only reads them)

# %%
prof = get_profile(profile)
study = prof.segmentation
seeds = list(seeds) if seeds is not None else prof.seeds_for(study)  # the study's own, else the profile's
# Unless the profile sets the number of generated scenes, the smoke profile draws few
# (seconds, not minutes); other profiles use the dataset's default.
if scene_canvases is None and "train_length" not in prof.settings_for(study.dataset).options:
    scene_canvases = {"smoke": (32, 16)}.get(profile)
scene_options = (
    {"train_length": scene_canvases[0], "test_length": scene_canvases[1]} if scene_canvases else {}
)
out_dir = Path(out_dir) if out_dir is not None else Path("runs") / profile / "08_rollout"
segmentation_runs = (
    Path(segmentation_runs) if segmentation_runs is not None else out_dir.parent / "06_segmentation"
)
n_images = n_images or {"smoke": 8, "cpu": 200, "paper": 500}.get(profile, 200)
torch_device = "cuda" if device in ("cuda", "auto") and torch.cuda.is_available() else "cpu"
report.run_banner(profile, seeds[:1], device)

# %% [markdown]
# ## The definitions
#
# **Attention roll-out** {cite:p}`abnar2020rollout` follows information through the
# layers. Take each block's softmax attention, fuse its heads (the mean), add the
# identity for the residual connection and renormalise each row to sum to one,
# $\hat A_l = (A_l + I) / \mathrm{rowsum}(A_l + I)$, and multiply the layers in order,
# $R = \hat A_L \cdots \hat A_1$. Row $i$ of $R$ says how much of token $i$'s final
# representation flows from each input token; a classifier's map is the class token's
# row over the patch tokens.
#
# **Dense Attention Roll-Out** {cite:p}`akkaya2023life` is for dense models, which have no
# class token: every patch token makes its own prediction. With $R_{pp}$ the roll-out
# restricted to patch tokens (rows and columns) and $w_{ik} \ge 0$ token $i$'s weight for
# class $k$, the map of class $k$ is
#
# $$
# M_k = \frac{\sum_i w_{ik}\, R_{pp}[i, :]}{\sum_i w_{ik}},
# $$
#
# the answer to "where, on average, do the tokens that predict class $k$ take their
# information from?". The weights are the model's own predicted probabilities of class
# $k$, averaged over each patch, so the tokens that predict $k$ weigh most; one-hot
# weights on one token give exactly that token's roll-out row. The paper describes the
# weighting in words; the exact normalisation above is ours (`lifestudy.rollout.maps`).
#
# **Measured, not just drawn.** On the scenes every item's mask is known. For every test
# image and every item class present in it, the map is upsampled to the image and
# scored by the *pointing game* (is the map's maximum inside the class's mask?), by the
# *energy inside the mask* (the share of the map's mass that lies on the object), and by
# the IoU of the map's top region with the mask, where the region is the mask's own
# number of highest-valued pixels (so every method gets the same pixel budget). The
# alternatives: the same weighting of the last layer's attention alone (`last-layer`),
# the class-token roll-out where the backbone has a class token (`cls-rollout`,
# class-agnostic), a centre prior (a Gaussian in the middle of the image, `centre`), and
# the token weights themselves (`prediction`), the baseline an
# attention map must beat to say something the prediction does not. Chance levels are
# reported beside them. Every score comes with a 95 % bootstrap interval over images
# (an image's classes are resampled together), and the comparisons that matter --
# dense roll-out against the prediction, the centre prior and chance -- are paired
# differences on the same images with their own intervals.

# %% [markdown]
# ## The models
#
# The first seed's segmentation models of chapter 6, at the profile's input size; any
# that are missing are trained here with the same settings.

# %%
size = prof.settings_for(study.dataset).img_size
size_dir = "x".join(map(str, size)) if size is not None else "default"
run_dirs = {}
for b in study.backbones:
    run_dir = segmentation_runs / size_dir / b / f"seed{seeds[0]}"
    if not (reuse_runs and (run_dir / "record.json").exists()):
        run_dir = out_dir / "models" / b / f"seed{seeds[0]}"
        report.train_all([TrainConfig(
            task="segmentation", data=study.dataset, model=b, profile=profile, seed=seeds[0],
            root=data_root, device=device, quiet=True, options=scene_options, out=str(run_dir),
        )], reuse=reuse_runs)
    run_dirs[b] = run_dir
pd.Series({b: str(d) for b, d in run_dirs.items()}, name="run folder").to_frame()

# %% [markdown]
# ## Localisation scores

# %%
for b, run_dir in run_dirs.items():
    model, cfg, spec = load_run(run_dir, device=torch_device)
    _, test_set = get_task("segmentation").build_datasets(cfg, spec)
    scores = localisation.localisation_scores(model, test_set, n=n_images, device=torch_device)
    write_json_atomic(out_dir / "localisation" / b / "record.json", {
        "kind": "localisation", "task": "rollout", "metrics": scores,
        "provenance": provenance(profile=profile, model=b, dataset=study.dataset, seed=seeds[0],
                                 device=torch_device, run=str(run_dir), n_images=n_images,
                                 segmentation_miou=read_json(Path(run_dir) / "record.json")["metrics"]["miou"]),
    })

# %%
records = report.chapter_records(out_dir / "localisation", kind="localisation")
scores = {
    row["provenance.model"]: read_json(row["path"])["metrics"] for _, row in records.iterrows()
}
miou = {row["provenance.model"]: row.get("provenance.segmentation_miou") for _, row in records.iterrows()}
table = localisation.localisation_table(scores)
metrics = ["pointing_game", "energy", "iou_area"]


def with_interval(df, metric):
    return df.apply(lambda r: f"{r[metric]:.3f} [{r[metric + '_low']:.3f}, {r[metric + '_high']:.3f}]", axis=1)


shown = table[["model", "method", "n_pairs"]].copy()
for metric in metrics:
    shown[metric] = with_interval(table, metric)
shown

# %% [markdown]
# The paired differences (the first method minus the second, on the same images) with
# their 95 % bootstrap intervals; "better" or "worse" is said only where the interval
# excludes 0.

# %%
diff = localisation.localisation_table(scores, differences=True)


def verdict(r, metric):
    return "better" if r[metric + "_low"] > 0 else "worse" if r[metric + "_high"] < 0 else "not resolved"


shown_diff = diff[["model", "difference"]].copy()
for metric in metrics:
    shown_diff[metric] = with_interval(diff, metric)
    shown_diff[metric + " verdict"] = diff.apply(verdict, axis=1, metric=metric)
shown_diff

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
for ax, metric, label in zip(axes, metrics, ["pointing game (fraction of hits)", "energy inside the mask",
                                              "top-region IoU (area-matched)"]):
    pivot = table.pivot(index="method", columns="model", values=metric)
    low = pivot - table.pivot(index="method", columns="model", values=f"{metric}_low")
    high = table.pivot(index="method", columns="model", values=f"{metric}_high") - pivot
    err = [[low[c].values, high[c].values] for c in pivot.columns]
    pivot.plot.barh(xerr=err, ax=ax, capsize=2)
    ax.set_xlabel(label)
    ax.set_ylabel("map")
fig.suptitle(report.caption(f"Localisation on {n_images} {study.dataset} test images (95 % bootstrap intervals)",
                            profile, seeds[:1]))
plt.show()

# %% [markdown]
# ## Maps
#
# One test image, its ground truth and the class maps of each method, for each model.

# %%
for b, run_dir in run_dirs.items():
    model, cfg, spec = load_run(run_dir, device=torch_device)
    _, test_set = get_task("segmentation").build_datasets(cfg, spec)
    image, target = test_set[0]
    maps = localisation.method_maps(model, image[None].to(torch_device), ("dense-rollout", "last-layer", "prediction"))
    fig = figures.plot_class_maps(
        image, {m: v[0].cpu() for m, v in maps.items()}, target["semantic"],
        class_names=list(spec.class_names), mean=spec.mean, std=spec.std,
        title=report.caption(f"{b}: class maps of test image 0", profile, seeds[:1]),
    )
    plt.show()

# %% [markdown]
# ## Summary

# %%
lines = []
for b in study.backbones:
    s, d = scores[b]["methods"], scores[b]["differences"]

    def ci(v):
        return f"{v['mean']:.3f} [{v['low']:.3f}, {v['high']:.3f}]"

    def says(key, metric):
        v = d[key][metric]
        return "better than" if v["low"] > 0 else "worse than" if v["high"] < 0 else "not resolved against"

    lines.append(
        f"{b} (segmentation mIoU {miou[b]:.1f} %): Dense Attention Roll-Out pointing game "
        f"{ci(s['dense-rollout']['pointing_game'])}, energy inside the mask {ci(s['dense-rollout']['energy'])}, "
        f"area-matched IoU {ci(s['dense-rollout']['iou_area'])}; the prediction it is weighted by "
        f"{ci(s['prediction']['pointing_game'])} / {ci(s['prediction']['energy'])} / {ci(s['prediction']['iou_area'])}; "
        f"chance {scores[b]['chance']['pointing_game']['mean']:.3f} / {scores[b]['chance']['energy']['mean']:.3f} / "
        f"{scores[b]['chance']['iou_area']['mean']:.3f} ({scores[b]['n_pairs']} image-class pairs, "
        f"{scores[b]['n_images']} images)."
    )
    lines.append(
        f"{b}: on area-matched IoU, dense roll-out is {says('dense-rollout - chance', 'iou_area')} chance and "
        f"{says('dense-rollout - prediction', 'iou_area')} the prediction; on the pointing game it is "
        f"{says('dense-rollout - chance', 'pointing_game')} chance and "
        f"{says('dense-rollout - prediction', 'pointing_game')} the prediction (95 % bootstrap intervals "
        "of the paired differences)."
    )
lines.append(f"Profile {profile}; models of seed {seeds[0]}; records under {out_dir / 'localisation'}.")
report.summary(lines)
