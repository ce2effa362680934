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
# # 2. Small-data classification
#
# **What you will do.** Train each baseline Vision Transformer, its LIFE twin and a CNN
# of similar cost from scratch on small classification datasets, three seeds each, check
# that every schedule has converged, and compare LIFE with its baseline seed by seed.
#
# **What you will learn.** Whether LIFE's local inductive bias helps a ViT that has only
# a little data, by how much, and whether three seeds can tell.
#
# **What you need.** In the `cpu` profile: Fashion-MNIST at 16×16 (`make data` fetches
# it; the smoke profile uses scikit-learn's digits) and 2 CPU cores (the chapter prints its running time). In the `paper` profile:
# CIFAR-10/100, Tiny-ImageNet and ImageNet-100 on disk and a GPU.

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
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from lifestudy import chapters, paper, report, stats
from lifestudy.engine.runs import check_summary, learning_curves

# %% tags=["parameters", "hide-input"]
profile = "cpu"  # smoke | cpu | paper: the plan of lifestudy/profiles.py
device = "cpu"  # cpu | cuda | auto
seeds = None  # None: the seeds the profile gives this chapter
data_root = None  # None: $LIFESTUDY_DATA or <repo>/data
out_dir = None  # None: runs/<profile>/<this chapter>
reuse_runs = False  # True: keep runs that already have a record instead of training again

# %% tags=["hide-input"]
chap = chapters.setup("02_classification", profile, seeds, device, out_dir, data_root, reuse_runs)
study = chap.study
chap.banner()

# %% [markdown]
# ## The plan
#
# The profile names the datasets, the (baseline, LIFE) model pairs and the CNN references;
# every model is trained with every seed by the same engine and recipe (DeiT's
# {cite:p}`touvron2021deit`, scaled down by the profile and recorded in full with each
# run; in the `cpu` profile without augmentation or drop path, with which the models stop
# moving within the budget, where with DeiT's augmentation they kept improving for
# thousands of steps). Schedules are set in optimizer steps with a floor (`min_steps`), so
# a small subset still gets enough updates. The CNN of similar cost (a small ResNet {cite:p}`he2016resnet`
# from timm) shows what a convolutional inductive bias reaches on the same subsets, as the
# ResNet rows of the paper's table do.
#
# **Schedule check.** The seed-0 run of every (dataset, model) is trained again at twice
# the schedule; the schedule counts as converged when that moves top-1 by less than 2
# points. A run that has not converged is labelled so wherever it appears. One seed's
# change also carries that seed's noise, so the table gives beside it the sd of the
# schedule's seeds (`seed sd`) and whether the change lies within what two seeds differ by
# in 95 % of pairs (1.96 × √2 × sd, `within seed noise`): a schedule flagged but within
# the noise is one the check cannot judge at this scale, not one shown to be still moving.

# %%
pairs = list(study.models)
models = [m for pair in pairs for m in pair] + list(study.references)
arm = {m: arm for pair in pairs for m, arm in zip(pair, ("baseline", "with LIFE"))}
arm.update({m: "CNN reference" for m in study.references})
pair_of = {m: pair[0] for pair in pairs for m in pair}
chapters.ensure_data(study.datasets, chap.data_root)
configs = [
    chap.config("classification", d, m, s, out=(d, m, f"seed{s}"))
    for d in study.datasets for m in models for s in chap.seeds
]
plan = pd.DataFrame([{
    "dataset": d, "models": ", ".join(models), "seeds": len(chap.seeds),
    "images per class": chap.profile.settings_for(d).subset or "all",
    "batch": chap.profile.settings_for(d).batch_size or chap.profile.recipe_for(d).batch_size,
    "min steps": chap.profile.recipe_for(d).min_steps, "epochs (at least)": chap.profile.settings_for(d).epochs or chap.profile.recipe_for(d).epochs,
    "runs": len(models) * len(chap.seeds), "schedule checks": len(models) if chap.profile.schedule_check else 0,
} for d in study.datasets])
plan

# %% [markdown]
# ## Has every schedule converged?
#
# Runs finished before with the same resolved config (any chapter of this profile) are
# reused; the table compares each first-seed run with its run at twice the schedule.

# %%
trained = chap.run_checked(configs)
main_recs, check_recs, check = trained.records, trained.twice, trained.check
converged = trained.converged("dataset", "model")
runs = trained.frame()
runs["arm"] = runs["model"].map(arm)
print(trained.counts())
runs["converged"] = [converged.get((d, m)) for d, m in zip(runs["dataset"], runs["model"])]
runs["label"] = [m + ("" if c is not False else " (not converged)") for m, c in zip(runs["model"], runs["converged"])]

# %% [markdown]
# ## Learning curves
#
# Test accuracy during training, mean ± sd over seeds (evaluated at the points the recipe's
# `eval_points` sets), for every model; dashed: the seed-0 run at twice the schedule.

# %% mystnb={"figure": {"caption": "Test top-1 during training, mean ± sd over seeds; dashed: the first seed's run at twice the schedule.", "name": "fig-02-1"}}
curves = learning_curves(main_recs)
curves["run"] = "schedule"
if check_recs:
    twice = learning_curves(check_recs)
    twice["run"] = "twice the schedule"
    curves = pd.concat([curves, twice], ignore_index=True)
g = sns.relplot(data=curves, x="step", y="eval_top1", hue="model", style="run", col="dataset",
                kind="line", errorbar="sd", marker="o", height=3.4, aspect=1.2,
                facet_kws={"sharey": False, "sharex": False})
g.set_axis_labels("optimizer steps", "test top-1 (%)")
g.figure.suptitle(chap.caption("Test accuracy during training"), y=1.04)
plt.show()

# %% [markdown]
# ## Results
#
# Every number below is read back from the runs' records.

# %%
table = report.mean_ci(runs, ["dataset", "label"], "top1")
table

# %% [markdown]
# The gain of LIFE per seed: both models of a pair see the same subset, data order and
# augmentation stream, so the paired difference removes what the seed does to both. The
# 95 % t-interval is over seeds; a direction is stated only where it excludes 0.

# %%
runs["pair"] = runs["model"].map(pair_of)
gains = stats.paired_differences(runs[runs["arm"] != "CNN reference"], ["dataset", "pair"], "arm", "top1",
                                 "baseline", "with LIFE", positive="LIFE higher", negative="LIFE lower")
display(gains.round(2))
# The ViTs against each CNN reference, paired the same way (positive: the ViT is higher).
cnn_gaps = pd.concat({
    (m, ref): stats.paired_differences(runs, "dataset", "model", "top1", ref, m,
                                       positive=f"{m} higher", negative=f"{ref} higher")
    for ref in study.references for pair in pairs for m in pair
}, names=["model", "reference"]) if study.references else pd.DataFrame()
cnn_gaps.round(2)

# %% mystnb={"figure": {"caption": "Final test top-1 of every model on every dataset, mean ± sd over seeds.", "name": "fig-02-2"}}
fig, ax = plt.subplots(figsize=(7, 3.6), constrained_layout=True)
sns.pointplot(data=runs, x="dataset", y="top1", hue="model", dodge=0.4, errorbar="sd", capsize=0.1,
              linestyle="none", ax=ax)
ax.set_ylabel("test top-1 (%)")
ax.set_title(chap.caption("Top-1 accuracy, mean ± sd over seeds"), fontsize=9)
plt.show()

# %% [markdown]
# ## The paper's numbers
#
# The paper reports top-1 accuracy on CIFAR-10, CIFAR-100, Tiny-ImageNet and ImageNet-100
# {cite:p}`akkaya2023life` (its table, labelled "paper"). Only the `paper` profile trains
# on those datasets; the `smoke` and `cpu` profiles ask the same question of smaller models
# on offline stand-ins, and are never put in the paper's columns. Beside the paper's
# DeiT gains stand ours, on our own datasets.

# %%
display(paper.classification_table())
paper_gain = pd.DataFrame({
    f"{m}: LIFE - baseline ({paper.LABEL})": {
        d: paper.CLASSIFICATION[f"{m}-LIFE"][d] - paper.CLASSIFICATION[m][d]
        for d in ("cifar10", "cifar100", "tiny-imagenet", "imagenet100")}
    for m in ("DeiT-T", "DeiT-S", "T2T-ViT-12", "Swinv2-T")
}).T.round(2)
ours = gains[["mean", "low", "high", "verdict"]].round(2).add_prefix(f"ours ({profile}): ")
display(paper_gain)
ours

# %% tags=["key-results", "remove-input"]
both_converged = lambda d, *ms: False if any(converged.get((d, m)) is False for m in ms) else None  # noqa: E731
findings = [
    report.Finding.from_row(row, claim="small_data_gain", what=f"{d}: {dict(pairs)[p]} − {p}, top-1 (points)",
                            chapter=chap.name, section="Results", converged=both_converged(d, p, dict(pairs)[p]))
    for (d, p), row in gains.iterrows()
] + [
    report.Finding.from_row(row, claim="vit_trails_cnn", what=f"{d}: {m} − {ref}, top-1 (points)", direction=-1,
                            chapter=chap.name, section="Results", converged=both_converged(d, m, ref))
    for (m, ref), g in (cnn_gaps.groupby(level=[0, 1]) if len(cnn_gaps) else [])
    if m in dict(pairs) for (_, _, d), row in g.iterrows()
]
chap.key_results(findings)

# %% [markdown]
# ## Summary

# %%
minutes = chap.minutes()
lines = []
for (dataset, pair), row in gains.iterrows():
    parts = []
    for model in [pair, dict(pairs)[pair], *study.references]:
        vals = runs[(runs["dataset"] == dataset) & (runs["model"] == model)]["top1"]
        note = "" if converged.get((dataset, model)) is not False else " (not converged)"
        parts.append(f"{model} {report.mean_pm(vals)}{note}")
    lines.append(f"{dataset}: " + "; ".join(parts) + f". LIFE - baseline: {row['text']} points: {row['verdict']}.")
if check is not None:
    lines.append(check_summary(check))
lines.append(f"Chapter time: {minutes:.1f} min ({(runs['how'] == 'trained').sum()} runs trained, "
             f"{(runs['how'] != 'trained').sum()} reused, {len(check_recs)} schedule checks); profile {profile}; "
             f"seeds {report.seeds_text(chap.seeds)}; records under {chap.show()}.")
report.summary(lines)
