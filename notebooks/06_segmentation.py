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
# from Fashion-MNIST items), about 4 minutes on 2 CPU cores. In the `paper` profile:
# Cityscapes and a GPU.

# %% [markdown]
# ## Setup
#
# In Colab the next cell installs the package from its repository; anywhere else it does
# nothing (install with `pip install -e .` or `make install` instead).

# %% tags=["colab"]
import subprocess, sys  # noqa: E401  (`make colab` writes this cell from book/_config.yml)

if "google.colab" in sys.modules:  # in Colab only: install the package from its repository
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "lifestudy @ git+https://github.com/lifestudy/lifestudy"], check=True)

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from lifestudy import chapters, paper, report
from lifestudy.data import get_spec
from lifestudy.dense.complexity import segmenter_complexity
from lifestudy.tasks.segmentation import decoder_dim

# %% tags=["parameters"]
profile = "cpu"  # smoke | cpu | paper: the plan of lifestudy/profiles.py
device = "cpu"  # cpu | cuda | auto
seeds = None  # None: the seeds the profile gives this chapter
data_root = None  # None: $LIFESTUDY_DATA or <repo>/data
out_dir = None  # None: runs/<profile>/<this chapter>
reuse_runs = False  # True: keep runs that already have a record instead of training again

# %%
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

# %%
spec = get_spec(study.dataset)
size = tuple(chap.settings.img_size or spec.input_size)
sizes = [size, *study.extra_img_sizes]
pd.DataFrame({"dataset": [study.dataset], "backbones": [list(study.backbones)],
              "input sizes (H, W)": [sizes], "seeds": [chap.seeds],
              "canvases (train, test)": [chap.settings.canvases or "the dataset's own"],
              "decoder width": [decoder_dim(chap.settings.task_options())]})

# %%
_ = chap.train(
    chap.config("segmentation", study.dataset, b, s, img_size=tuple(hw), out=("x".join(map(str, hw)), b, f"seed{s}"))
    for hw in sizes
    for b in study.backbones
    for s in chap.seeds
)

# %% [markdown]
# ## Results

# %%
runs = chap.records("train")
runs = runs.rename(columns={"provenance.model": "backbone", "provenance.seed": "seed",
                            "metrics.miou": "mIoU (%)"})
runs["input (H x W)"] = runs["provenance.img_size"].map(lambda hw: "x".join(map(str, hw)))
stats = report.mean_std(runs, ["input (H x W)", "backbone"], "mIoU (%)")
cost = pd.DataFrame([
    {"input (H x W)": hw, "backbone": b, **{k: c[k] for k in ("params_m", "gmacs")}}
    for hw, b in stats.index
    for c in [segmenter_complexity(b, num_classes=spec.num_classes, in_chans=spec.in_chans,
                                   img_size=tuple(int(v) for v in hw.split("x")),
                                   dim=decoder_dim(chap.settings.task_options()))]
]).set_index(["input (H x W)", "backbone"]).rename(columns={"params_m": "params (M)", "gmacs": "GMACs"})
table = report.format_mean_std(stats).join(cost.round(3))
table

# %%
fig, ax = plt.subplots(figsize=(6, 3.8), constrained_layout=True)
sns.pointplot(data=runs, x="input (H x W)", y="mIoU (%)", hue="backbone", dodge=0.3,
              errorbar="sd", capsize=0.1, ax=ax)
ax.set_xlabel("input size (pixels, H x W)")
ax.set_ylabel("mIoU (percent)")
ax.set_title(chap.caption(f"Segmentation on {study.dataset}, mean ± sd"), fontsize=9)
plt.show()

# %% [markdown]
# ## Beside the paper
#
# The paper's table (Cityscapes, DeiT-T with and without LIFE, random initialisation)
# is shown beside our rows at the profile's input size, matched by role (baseline or
# with LIFE). The data and the decoder differ, so compare the direction of the change,
# not the values.

# %%
ours = table.loc["x".join(map(str, size))].reindex(list(study.backbones))
ours.insert(0, "backbone (ours)", ours.index)
ours.index = ["with LIFE" if b.endswith("_life") else "baseline" for b in ours.index]
theirs = {"baseline": paper.SEGMENTATION["deit_tiny"], "with LIFE": paper.SEGMENTATION["deit_tiny_life"]}
report.beside_paper(ours, theirs, {"miou": "mIoU", "params_m": "params (M)", "gmacs": "GMACs"})

# %% [markdown]
# ## Summary

# %%
lines = [
    f"{hw}, {backbone}: mIoU {row[('mIoU (%)', 'mean')]:.2f} ± {row[('mIoU (%)', 'std')]:.2f} % "
    f"({int(row[('mIoU (%)', 'count')])} seeds)."
    for (hw, backbone), row in stats.iterrows()
]
lines.append(f"Profile {profile}; dataset {study.dataset}; records under {chap.show()}.")
report.summary(lines)
