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
# # 6. Segmentation
#
# **What you will do.** Train semantic segmentation models — a ViT backbone with and
# without LIFE under a light decoder — several seeds each, at a square input and at a
# 2:1 input (Cityscapes' shape), and score them with mIoU.
#
# **What you will learn.** Whether LIFE's gain carries over to dense prediction, and that
# LIFE works on rectangular patch grids.
#
# **What you need.** In the `cpu` profile: nothing to download (the scenes are generated
# from Fashion-MNIST items), about 8-10 minutes on 2 CPU cores (12 runs). In the `paper` profile:
# Cityscapes and a GPU.

# %% [markdown] tags=["remove-cell"]
# ## Setup
#
# In Colab the next cell installs the package from its repository; anywhere else it does
# nothing (install with `pip install -e .` or `make install` instead).

# %% tags=["colab", "remove-cell"]
import subprocess, sys  # noqa: E401  (`make colab` writes this cell from book/_config.yml)

if "google.colab" in sys.modules:  # in Colab only: install the package from its repository
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "lifestudy @ git+https://github.com/lifestudy/lifestudy"], check=True)

# %% tags=["hide-input"]
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from lifestudy import chapters, paper, report, stats
from lifestudy.data import get_spec
from lifestudy.dense.complexity import segmenter_complexity
from lifestudy.dense.segmenter import SegLossConfig
from lifestudy.tasks.segmentation import decoder_dim

# %% tags=["parameters", "hide-input"]
profile = "cpu"  # smoke | cpu | paper: the plan of lifestudy/profiles.py
device = "cpu"  # cpu | cuda | auto
seeds = None  # None: the seeds the profile gives this chapter
data_root = None  # None: $LIFESTUDY_DATA or <repo>/data
out_dir = None  # None: runs/<profile>/<this chapter>
reuse_runs = False  # True: keep runs that already have a record instead of training again

# %% tags=["hide-input"]
chap = chapters.setup("06_segmentation", profile, seeds, device, out_dir, data_root, reuse_runs)
study = chap.study
chap.banner()

# %% [markdown]
# ## The plan
#
# Each backbone is trained with each seed at the profile's input size, and once more at
# each extra input size (the 2:1 one: a rectangular patch grid). mIoU is the mean over
# classes of the intersection over union of predicted and true pixels, ignoring
# unlabelled pixels (label 255); the background is a class. The decoder's width and the
# number of generated scenes are the profile's settings of the dataset.
#
# **Class imbalance.** Most pixels of a scene are background, and a segmenter that is not
# yet sure *which* item a pixel shows spreads its item probability over ten classes, so
# the background wins every argmax: mIoU sits at the all-background level while the model
# already separates items from background. The loss can counter this
# (`lifestudy.dense.segmenter`, each remedy with its source): class-weighted
# cross-entropy, a soft Dice term, and a classifier bias that starts at the log class
# prior. The profile's choice (`DataSettings.seg_loss`) is shown here and recorded with
# every run.

# %%
spec = get_spec(study.dataset)
size = chapters.segmentation_size(chap.profile)  # the main size; chapter 5 reads its runs
sizes = [size, *study.extra_img_sizes]
pd.DataFrame({"dataset": [study.dataset], "backbones": [list(study.backbones)],
              "input sizes (H, W)": [sizes], "seeds": [chap.seeds],
              "canvases (train, test)": [chap.settings.canvases or "the dataset's own"],
              "decoder width": [decoder_dim(chap.settings.task_options())],
              "loss": [SegLossConfig.from_options(chap.settings.task_options())]})

# %%
_ = chap.train(  # the extra sizes at the first study.extra_size_seeds seeds (the profile's budget)
    chap.config("segmentation", study.dataset, b, s, img_size=tuple(hw), out=("x".join(map(str, hw)), b, f"seed{s}"))
    for hw, b, s in study.plan(chap.seeds, size)
)

# %% [markdown]
# ## Results

# %%
runs = chap.records("train")
runs = runs.rename(columns={"provenance.model": "backbone", "provenance.seed": "seed",
                            "metrics.miou": "mIoU (%)"})
runs["input (H x W)"] = runs["provenance.img_size"].map(lambda hw: "x".join(map(str, hw)))
runs["LIFE"] = runs["backbone"].map(lambda b: "with LIFE" if b.endswith("_life") else "baseline")
stats_table = report.mean_std(runs, ["input (H x W)", "backbone"], "mIoU (%)")
cost = pd.DataFrame([
    {"input (H x W)": hw, "backbone": b, **{k: c[k] for k in ("params_m", "gmacs")}}
    for hw, b in stats_table.index
    for c in [segmenter_complexity(b, num_classes=spec.num_classes, in_chans=spec.in_chans,
                                   img_size=tuple(int(v) for v in hw.split("x")),
                                   dim=decoder_dim(chap.settings.task_options()))]
]).set_index(["input (H x W)", "backbone"]).rename(columns={"params_m": "params (M)", "gmacs": "GMACs"})
table = report.mean_ci(runs, ["input (H x W)", "backbone"], "mIoU (%)").join(cost.round(3))
table

# %% [markdown]
# ### LIFE against the baseline, paired by seed
#
# Both backbones of a seed see the same canvases in the same order, so the per-seed
# difference (with LIFE minus baseline, in mIoU points) removes what the seed does to
# both; its 95 % t-interval over seeds decides whether a direction can be stated
# (`lifestudy.stats`).

# %%
diffs = stats.paired_differences(runs, by="input (H x W)", condition="LIFE", value="mIoU (%)",
                                 first="baseline", second="with LIFE")
diffs[["mean", "low", "high", "n", "verdict"]].round(2) if len(diffs) else diffs

# %% [markdown]
# ### Per class
#
# IoU of every class (percent), mean over seeds: which items the models find, and whether
# the background is the only class they get right.

# %%
iou_cols = [c for c in runs.columns if c.startswith("metrics.iou_")]
# a class absent from both truth and prediction has no IoU (recorded as "nan")
per_class = runs[iou_cols].apply(pd.to_numeric, errors="coerce").join(runs[["input (H x W)", "backbone"]])
per_class = per_class.groupby(["input (H x W)", "backbone"])[iou_cols].mean()
per_class.columns = [c.removeprefix("metrics.iou_") for c in iou_cols]
per_class.T.round(1)

# %% mystnb={"figure": {"caption": "Test mIoU of each backbone at each input size, mean ± sd over seeds.", "name": "fig-06-1"}}
fig, ax = plt.subplots(figsize=(6, 3.8), constrained_layout=True)
sns.pointplot(data=runs, x="input (H x W)", y="mIoU (%)", hue="backbone", dodge=0.3,
              errorbar="sd", capsize=0.1, ax=ax)
ax.set_xlabel("input size (pixels, H x W)")
ax.set_ylabel("mIoU (percent)")
ax.set_title(chap.caption(f"Segmentation on {study.dataset}, mean ± sd"), fontsize=9)
plt.show()

# %% [markdown]
# ### Learning curves
#
# The training loss of every run (cross-entropy, plus the Dice term where it is on), mean
# ± sd over seeds: where the curves still fall at the last epoch, the schedule is short.

# %% mystnb={"figure": {"caption": "Training loss per epoch of every backbone and input size, mean ± sd over seeds.", "name": "fig-06-2"}}
curves = pd.concat([
    pd.read_csv(Path(p).parent / "metrics.csv").assign(backbone=b, size=hw)
    for p, b, hw in zip(runs["path"], runs["backbone"], runs["input (H x W)"])
])
fig, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
sns.lineplot(data=curves, x="epoch", y="train_loss", hue="backbone", style="size", errorbar="sd", ax=ax)
ax.set_ylabel("training loss")
ax.set_title(chap.caption("Training loss per epoch, mean ± sd over seeds"), fontsize=9)
plt.show()

# %% [markdown]
# ## Beside the paper
#
# The paper's table (Cityscapes, DeiT-T with and without LIFE) is shown beside our rows at
# the profile's input size, matched by role (baseline or with LIFE), labelled "paper".
# Ours start from random initialisation, as the paper's first two rows do. The data and
# the decoder differ, so compare the direction of the change, not the values.

# %%
ours = table.loc["x".join(map(str, size))].reindex(list(study.backbones))
ours.insert(0, "backbone (ours)", ours.index)
ours.index = ["with LIFE" if b.endswith("_life") else "baseline" for b in ours.index]
random_rows = paper.segmentation_rows("random")
theirs = {"baseline": random_rows["DeiT-T"], "with LIFE": random_rows["DeiT-T-LIFE"]}
report.beside_paper(ours, theirs, {"miou": "mIoU", "params_m": "params (M)", "gmacs": "GMACs"})

# %% [markdown]
# The paper's whole table, labelled. The ImageNet-1k rows start from pretrained weights,
# which this study's machines cannot download, so they have no row of ours.

# %%
whole = pd.DataFrame(paper.SEGMENTATION).set_index(["init", "backbone"])
whole.columns = [c if c == "needs_pretrained" else f"{c} ({report.PAPER})" for c in whole.columns]
whole

# %% tags=["key-results", "remove-input"]
seg_paper = paper.segmentation_rows("random")
chap.key_results([
    report.Finding.from_row(row, claim="dense_gain", what=f"{hw}: LIFE − baseline, mIoU (points)", chapter=chap.name,
                            section="LIFE against the baseline, paired by seed",
                            paper=f"{seg_paper['DeiT-T-LIFE']['miou'] - seg_paper['DeiT-T']['miou']:+.2f} mIoU")
    for hw, row in diffs.iterrows()
])

# %% [markdown]
# ## Summary

# %%
lines = [
    f"{hw}, {backbone}: mIoU {report.mean_pm(group['mIoU (%)'])}."
    for (hw, backbone), group in runs.groupby(["input (H x W)", "backbone"], sort=False)
]
for hw, row in diffs.iterrows():
    lines.append(f"{hw}: LIFE minus baseline {row['text']} mIoU points: {row['verdict']}.")
minutes = runs["provenance.wall_time_s"].sum() / 60
lines.append(f"Profile {profile}; dataset {study.dataset}; {len(runs)} runs, {minutes:.1f} minutes of "
             f"training and evaluation in all ({chap.profile.jobs} at a time; chapter time {chap.minutes():.1f} min); "
             f"records under {chap.show()}.")
report.summary(lines)
