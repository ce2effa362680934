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
# # 5. Detection
#
# **What you will do.** Train DETR-style detectors on a ViT backbone with and without
# LIFE, with the paper's three head variants — the plain encoder-decoder (`encdec`); a
# parameter-matched control whose encoder attention projections get an extra linear
# stage, capacity without locality (`encdec-linear`: LIFE's cascade with 1x1 kernels);
# and one whose encoder self-attention uses LIFE over the feature grid (`encdec-life`) —
# from random initialisation, from our own classification run's backbone and from our own
# segmentation run's backbone, several seeds each, and score them with mAP and F1.
#
# **What you will learn.** Whether local information helps a detector's backbone and its
# head, how far a small detector gets in a few CPU minutes with DETR's known convergence
# aids, and how our small-scale results sit beside the paper's Pascal VOC table.
#
# **What you need.** In the `cpu` profile: nothing to download (the scenes are generated
# from Fashion-MNIST items); its running time is printed in the summary. In the `paper`
# profile: Pascal VOC and a GPU.

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
from lifestudy.dense.complexity import detector_complexity
from lifestudy.tasks.detection import head_sizes

# %% tags=["parameters", "hide-input"]
profile = "cpu"  # smoke | cpu | paper: the plan of lifestudy/profiles.py
device = "cpu"  # cpu | cuda | auto
seeds = None  # None: the seeds the profile gives this chapter
data_root = None  # None: $LIFESTUDY_DATA or <repo>/data
out_dir = None  # None: runs/<profile>/<this chapter>
reuse_runs = False  # True: keep runs that already have a record instead of training again
init_dir = None  # classification-init runs, in a folder laid out as chapter 2's; None: chapter 2's, else trained here
seg_init_dir = None  # segmentation-init runs, in a folder laid out as chapter 6's; None: chapter 6's, else trained here

# %% tags=["hide-input"]
chap = chapters.setup("05_detection", profile, seeds, device, out_dir, data_root, reuse_runs)
study = chap.study
chap.banner()

# %% [markdown]
# ## The plan
#
# Every backbone is trained with every head, from each of up to three starting points
# (`DetectionStudy.inits`; `lifestudy.profiles.DETECTION_INITS`): random initialisation;
# the backbone of our own classification run of the same model on Fashion-MNIST (chapter
# 2's run, seed 0; trained here when chapter 2 has not run) — the offline analogue of the
# paper's ImageNet-1k rows; and the backbone of our own segmentation run of the same model
# on the scenes' train canvases (chapter 6's run, seed 0) — a pretraining on the scenes'
# own items, which the paper does not have. The third is there because the second does not
# transfer: chapter 2's classifiers saw grey items on black, and the scenes' items are
# tinted shapes on coloured clutter (`lifestudy/profiles.py` has the measurements). A
# profile may thin this grid to its time budget (`DetectionStudy.plan`: some heads at the
# first seed only, some inits with fewer heads or seeds); the second table lists the seeds
# of every row. Scores: COCO-style
# mAP (IoU 0.50:0.95), VOC-style mAP at IoU 0.5, and F1 at IoU 0.5 counting a detection
# when its class score is at least 0.5 (the rule is stated in full in
# `lifestudy.dense.metrics`).
#
# The head is DETR's, with the convergence aids the profile switches on (each is a field
# of `DetrHeadConfig`, with its source; the table below lists the profile's values).

# %%
head_cfg = head_sizes(chap.settings.task_options())
pd.DataFrame({"dataset": [study.dataset], "backbones": [list(study.backbones)],
              "heads": [list(study.heads)], "inits": [list(study.inits)], "seeds": [chap.seeds],
              "canvases (train, test)": [chap.settings.canvases or "the dataset's own"]})

# %%
plan = study.plan(chap.seeds)  # (init, backbone, head, seed) of every run
pd.DataFrame(plan, columns=["init", "backbone", "head", "seed"]).groupby(
    ["init", "backbone", "head"], sort=False)["seed"].agg(list).rename("seeds").to_frame()

# %%
pd.Series(vars(head_cfg), name="detection head").to_frame()

# %%
# The runs whose backbones start the pretrained rows (seed 0): chapter 2's and chapter 6's
# when they are there (`make book` executes chapter 6 first), else trained here with their
# chapters' settings (`lifestudy.chapters.backbone_inits`).
inits = chapters.backbone_inits(chap, init_dir, seg_init_dir)
needed = [c for _, configs in inits.values() for c in configs.values()]
chapters.ensure_data(dict.fromkeys(c.data for c in needed), chap.data_root)
_ = chapters.train_all(needed, reuse=True)
for init, (folder, _) in inits.items():
    print(f"{init} init from {chap.show(folder)}")
INITS = {"random": None} | {init: {b: c.out for b, c in configs.items()} for init, (_, configs) in inits.items()}

# %%
_ = chap.train(
    chap.config("detection", study.dataset, b, s, head=h, init=None if INITS[init] is None else INITS[init][b],
                out=(init, h, b, f"seed{s}"))
    for init, b, h, s in plan
)

# %% [markdown]
# ## Results

# %%
runs = chap.records("train")
runs = runs[runs["task"] == "detection"].reset_index(drop=True)  # not the init runs trained here
runs = runs.rename(columns={"provenance.model": "backbone", "provenance.seed": "seed",
                            "metrics.map": "mAP (%)", "metrics.map_50": "mAP@0.5 (%)",
                            "metrics.f1": "F1 (%)", "metrics.map_50_agnostic": "agnostic mAP@0.5 (%)"})
runs["head"] = runs["provenance.head"]
init_of = {str(Path(p).resolve()): k for k, d in INITS.items() if d for p in d.values()}
runs["init"] = ["random" if pd.isna(v) or not v else init_of[str(Path(v).resolve())] for v in runs["provenance.init"]]
metrics = ["mAP (%)", "mAP@0.5 (%)", "F1 (%)", "agnostic mAP@0.5 (%)"]
keys = ["init", "backbone", "head"]
summary_stats = report.mean_std(runs, keys, metrics)
summary_stats = summary_stats.reindex(pd.MultiIndex.from_tuples(
    list(dict.fromkeys(row[:3] for row in plan)), names=keys))  # the plan's rows, in its order
spec = get_spec(study.dataset)
size = tuple(runs["provenance.img_size"].iloc[0])  # the input the runs trained at
cost = pd.DataFrame([
    {"backbone": b, "head": h, **{k: c[k] for k in ("params_m", "gmacs")}}
    for b in study.backbones for h in study.heads
    for c in [detector_complexity(b, h, num_classes=spec.num_classes, img_size=size,
                                  in_chans=spec.in_chans, sizes=head_cfg)]
]).set_index(["backbone", "head"]).rename(columns={"params_m": "params (M)", "gmacs": "GMACs"})
table = report.mean_ci(runs, keys, metrics).reindex(summary_stats.index).join(cost.round(3), on=["backbone", "head"])
table

# %% [markdown]
# How to read it: *agnostic mAP@0.5* scores the same detections with every class label
# made one, so it measures whether the detector finds the objects at all; mAP@0.5 also
# needs the class right. Where the first is well above zero and the second is not, the
# detector localises items but cannot yet tell the ten Fashion-MNIST classes apart at
# this resolution and training length.

# %% [markdown]
# ### Learning curves
#
# Each run's `metrics.csv` holds, per epoch, the training loss and its terms (the final
# decoder layer's class, L1 and GIoU losses, unweighted) and, at the profile's
# evaluation points, mAP@0.5 on the test canvases. Lines are means over seeds; the band
# is one standard deviation.

# %% mystnb={"figure": {"caption": "Loss terms and test mAP@0.5 by epoch for every head and initialisation, mean ± sd over seeds.", "name": "fig-05-1"}}
curves = []
for _, r in runs.iterrows():
    csv = pd.read_csv(Path(r["path"]).parent / "metrics.csv")
    csv = csv.assign(init=r["init"], backbone=r["backbone"], head=r["head"], seed=r["seed"])
    curves.append(csv)
curves = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
terms = [c for c in ("train_loss", "loss_ce", "loss_l1", "loss_giou", "map_50", "map_50_agnostic") if c in curves]
fig, axes = plt.subplots(1, len(terms), figsize=(3.2 * len(terms), 3.2), constrained_layout=True, squeeze=False)
for ax, term in zip(axes[0], terms):
    data = curves.dropna(subset=[term])
    sns.lineplot(data=data, x="epoch", y=term, hue="head", style="init", errorbar="sd", ax=ax,
                 legend=term == terms[-1])
    ax.set_title({"map_50": "test mAP@0.5 (%)", "map_50_agnostic": "class-agnostic (%)"}.get(term, term))
    ax.set_ylabel("")
fig.suptitle(chap.caption(f"Detection on {study.dataset}: loss terms and mAP@0.5 by epoch "
                          "(line style: the backbone's initialisation)"))
plt.show()

# %% mystnb={"figure": {"caption": "Final mAP@0.5 and F1 of every head, backbone and initialisation, mean ± sd over seeds.", "name": "fig-05-2"}}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
for ax, metric in zip(axes, ["mAP@0.5 (%)", "F1 (%)"]):
    sns.pointplot(data=runs.assign(config=runs["init"] + " / " + runs["backbone"]), x="head", y=metric,
                  hue="config", errorbar="sd", dodge=0.3, capsize=0.1, ax=ax, order=list(study.heads))
    ax.set_xlabel("detection head")
    ax.set_ylabel(metric.replace("(%)", "(percent)"))
fig.suptitle(chap.caption(f"Detection on {study.dataset}, mean ± sd"))
plt.show()

# %% [markdown]
# ### Paired differences over seeds
#
# Runs with the same seed share their canvases, data order and augmentation, so the
# comparisons are paired by seed: the mean difference in mAP@0.5 (points) with its 95 %
# t-interval over seeds (`lifestudy.stats`). A direction is stated only where the interval
# excludes 0. A comparison counts for the paper's claim (the scorecard of chapter 9) only
# where every detector behind it has learned at least to name some items: F1 > 0, i.e. some
# detection with a class score of 0.5 matches an item. A difference between detectors
# that name none says nothing of LIFE.

# %%
runs["LIFE backbone"] = ["LIFE" if b.endswith("_life") else "baseline" for b in runs["backbone"]]
diffs = []
if runs["LIFE backbone"].nunique() == 2:
    d = stats.paired_differences(runs, ["init", "head"], "LIFE backbone", "mAP@0.5 (%)", "baseline", "LIFE")
    diffs.append(d.reset_index().rename(columns={"head": "within"}).assign(comparison="LIFE - baseline backbone"))
for first, second in (("encdec", "encdec-life"), ("encdec", "encdec-linear"), ("encdec-linear", "encdec-life")):
    sub = runs[runs["head"].isin([first, second])]
    d = stats.paired_differences(sub, ["init", "backbone"], "head", "mAP@0.5 (%)", first, second)
    diffs.append(d.reset_index().rename(columns={"backbone": "within"}).assign(comparison=f"{second} - {first}"))
diffs = [d[d["n"] > 0] for d in diffs]  # pairs the plan has (a head at seed 0 only has no random-init twin)
diffs = [d for d in diffs if len(d)]
diffs = pd.concat(diffs, ignore_index=True) if diffs else pd.DataFrame(
    columns=["comparison", "init", "within", "mean", "low", "high", "n", "verdict", "text"])
diffs.set_index(["comparison", "init", "within"])[["mean", "low", "high", "n", "verdict"]].round(2)

# %% [markdown]
# ## Beside the paper
#
# The paper's table (Pascal VOC) has a random-initialisation group and an ImageNet-1k
# group; the ImageNet-1k rows need pretrained weights this machine cannot download, so
# our pretrained groups start from our own Fashion-MNIST classifier or our own scenes
# segmenter instead. Its numbers sit beside ours in columns labelled **paper**: random
# beside random, each of our pretrained inits beside their ImageNet-1k init (DeiT-T rows).
# The data, input size and head sizes differ, so the comparison is of the ordering of the
# heads, not of the values.

# %%
paper_rows = {
    ("random", b): paper.detection_rows("random", "DeiT-T-LIFE" if b.endswith("_life") else "DeiT-T")
    for b in study.backbones
} | {
    (init, b): paper.detection_rows("imagenet-1k", "DeiT-T-LIFE" if b.endswith("_life") else "DeiT-T")
    for init in inits for b in study.backbones  # the pretrained ones
}
side = table[["mAP@0.5 (%)", "F1 (%)", "seeds"]].copy()
side["mAP (paper)"] = [paper_rows[(i, b)][h]["map"] for i, b, h in side.index]
side["F1 (paper)"] = [paper_rows[(i, b)][h]["f1"] for i, b, h in side.index]
side["paper init"] = [paper_rows[(i, b)][h]["init"] + (" (needs pretrained weights)"
                                                      if paper_rows[(i, b)][h]["needs_pretrained"] else "")
                      for i, b, h in side.index]
side

# %% [markdown]
# The paper's full table, every row (labelled **paper**; Swin-V2 rows for reference only):

# %%
pd.DataFrame(paper.DETECTION).rename(columns={"map": "mAP (paper)", "f1": "F1 (paper)",
                                               "params_m": "params M (paper)", "gmacs": "GMACs (paper)"})

# %% tags=["key-results", "remove-input"]
def paper_change(init, within, comparison):
    """The paper's mAP change for the same comparison (random init; ImageNet-1k beside our pretrained inits)."""
    group = "random" if init == "random" else "imagenet-1k"
    if comparison.startswith("LIFE"):
        a, b = paper.detection_rows(group, "DeiT-T")[within], paper.detection_rows(group, "DeiT-T-LIFE")[within]
    else:
        second, first = comparison.split(" - ")
        rows = paper.detection_rows(group, "DeiT-T-LIFE" if within.endswith("_life") else "DeiT-T")
        a, b = rows[first], rows[second]
    return f"{b['map'] - a['map']:+.2f} mAP"


def learned(d):
    """Every run behind a comparison has F1 > 0. A detector with F1 = 0 names no item with a
    class score of 0.5 (issue 14's minimum for a detector that learns): its difference says
    nothing of the claim, so the scorecard does not count it."""
    if d["comparison"] == "LIFE - baseline backbone":
        sel = (runs["init"] == d["init"]) & (runs["head"] == d["within"])
    else:
        sel = ((runs["init"] == d["init"]) & (runs["backbone"] == d["within"])
               & runs["head"].isin(d["comparison"].split(" - ")))
    return bool((runs.loc[sel, "F1 (%)"] > 0).all())


diffs["learned"] = [learned(d) for _, d in diffs.iterrows()]
chap.key_results([
    report.Finding.from_row(d, claim="dense_gain" if d["comparison"] in ("LIFE - baseline backbone", "encdec-life - encdec")
                            and d["learned"] else "",
                            what=f"{d['comparison'].replace(' - ', ' − ')} ({d['init']} init, {d['within']}), mAP@0.5 (points)"
                            + ("" if d["learned"] else ", not counted for the claim: a detector behind it has F1 = 0"),
                            chapter=chap.name, section="Paired differences over seeds",
                            paper=paper_change(d["init"], d["within"], d["comparison"]),
                            box=d["comparison"] == "LIFE - baseline backbone")
    for _, d in diffs.iterrows()
])

# %% [markdown]
# ## Summary

# %%
lines = []
for (init, backbone, head), group in runs.groupby(keys, sort=False):
    m, f1 = (report.mean_pm(group[c]) for c in ("mAP@0.5 (%)", "F1 (%)"))
    lines.append(f"{init} init, {backbone} + {head}: mAP@0.5 {m}, F1 {f1}.")
for _, d in diffs.iterrows():
    lines.append(f"{d['comparison']} ({d['init']} init, {d['within']}): {d['text']} points of mAP@0.5 — "
                 f"{d['verdict']}.")
seconds = runs["provenance.wall_time_s"].sum()
lines.append(f"Training and evaluation: {seconds / 60:.1f} minutes of run time over {len(runs)} runs "
             f"({seconds / max(len(runs), 1):.0f} s a run, {chap.profile.jobs} at a time) on "
             f"{', '.join(runs['provenance.device_name'].unique())}; chapter time {chap.minutes():.1f} min.")
lines.append(f"Profile {profile}; dataset {study.dataset}; records under {chap.show()}.")
report.summary(lines)
