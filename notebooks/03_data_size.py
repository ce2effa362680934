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
# # 3. How much data?
#
# **What you will do.** Train the baseline and its LIFE twin on growing subsets of one
# dataset (a fixed number of training images per class), three seeds each, check that
# every schedule has converged, and plot accuracy and LIFE's paired gain (with its 95 %
# interval) against the number of images.
#
# **What you will learn.** Where LIFE's gain is largest and where it shrinks: an
# inductive bias should matter most when data is scarcest.
#
# **What you need.** In the `cpu` profile: Fashion-MNIST (`make data`) and 2 CPU cores
# (the chapter prints its running time; chapter 2's 50-per-class runs are reused). In the `paper` profile: CIFAR-10 and a GPU.

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

from lifestudy import chapters, report, stats
from lifestudy.engine.runs import check_summary, learning_curves

# %% tags=["parameters", "hide-input"]
profile = "cpu"  # smoke | cpu | paper: the plan of lifestudy/profiles.py
device = "cpu"  # cpu | cuda | auto
seeds = None  # None: the seeds the profile gives this chapter
data_root = None  # None: $LIFESTUDY_DATA or <repo>/data
out_dir = None  # None: runs/<profile>/<this chapter>
reuse_runs = False  # True: keep runs that already have a record instead of training again

# %% tags=["hide-input"]
chap = chapters.setup("03_data_size", profile, seeds, device, out_dir, data_root, reuse_runs)
study = chap.study
chap.banner()

# %% [markdown]
# ## The plan
#
# Each subset keeps $n$ images of every class of the training split (chosen by
# `lifestudy.data` with a fixed seed; for one seed the subsets are nested). The test split
# is the same for every run. Every run gets at least the recipe's `min_steps` optimizer
# steps, so the smallest subsets are not starved of updates; the seed-0 run of every
# (size, model) is checked at twice the schedule. A run with the same resolved config as
# one of another chapter (chapter 2's 50-per-class runs) is reused, not repeated.

# %%
base_model, life_model = study.models
arm = {base_model: "baseline", life_model: "with LIFE"}
chapters.ensure_data([study.dataset], chap.data_root)
configs = [
    chap.config("classification", study.dataset, m, s, subset=n, out=(f"n{n}", m, f"seed{s}"))
    for n in study.subsets for m in study.models for s in chap.seeds
]
pd.DataFrame({"dataset": [study.dataset], "images per class": [list(study.subsets)],
              "baseline": [base_model], "with LIFE": [life_model], "seeds": [chap.seeds],
              "min steps": [chap.profile.recipe_for(study.dataset).min_steps], "schedule checks": [len(study.models) * len(study.subsets) if chap.profile.schedule_check else 0]})

# %% [markdown]
# ## Has every schedule converged?

# %%
trained = chap.run_checked(configs)
main_recs, check_recs = trained.records, trained.twice
converged = {(int(n), m): c for (n, m), c in trained.converged("subset", "model").items()}
runs = trained.frame().rename(columns={"subset": "images per class"})
runs["LIFE"] = runs["model"].map(arm)
print(f"{trained.counts()} "
      f"({', '.join(sorted(set(runs.loc[runs['how'] == 'reused', 'folder'].map(lambda f: Path(f).parts[-4]))))})")
runs["converged"] = [converged.get((int(n), m)) for n, m in zip(runs["images per class"], runs["model"])]

# %% [markdown]
# ## Learning curves
#
# Test accuracy during training for every (size, model), mean ± sd over seeds.

# %% mystnb={"figure": {"caption": "Test top-1 during training at each subset size, mean ± sd over seeds.", "name": "fig-03-1"}}
curves = learning_curves(main_recs)
g = sns.relplot(data=curves, x="step", y="eval_top1", hue="model", col="subset", kind="line",
                errorbar="sd", marker="o", height=2.8, aspect=1.0, facet_kws={"sharey": False})
g.set_axis_labels("optimizer steps", "test top-1 (%)")
g.set_titles("{col_name} images per class")
g.figure.suptitle(chap.caption(f"{study.dataset}: test accuracy during training"), y=1.05)
plt.show()

# %% [markdown]
# ## Accuracy against images per class

# %%
acc = report.mean_ci(runs, ["images per class", "LIFE"], "top1").sort_index()
acc["converged"] = [converged.get((int(n), {v: k for k, v in arm.items()}[a])) for n, a in acc.index]
acc

# %% [markdown]
# The paired gain (same seed, same subset) with its 95 % t-interval over seeds; a
# direction is stated only where the interval excludes 0.

# %%
gain = stats.paired_differences(runs, "images per class", "LIFE", "top1", "baseline", "with LIFE",
                                positive="LIFE higher", negative="LIFE lower").sort_index()
gain.round(2)

# %% mystnb={"figure": {"caption": "Left: test top-1 against training images per class (mean ± sd over seeds). Right: LIFE's paired gain with its 95 % t-interval.", "name": "fig-03-2"}}
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
sns.lineplot(data=runs, x="images per class", y="top1", hue="LIFE", marker="o", errorbar="sd", ax=ax1,
             palette=report.COLOURS)
ax1.set_ylabel("test top-1 (%)")
ax1.set_title("accuracy, mean ± sd")
n = gain.index.to_numpy()
ax2.errorbar(n, gain["mean"], yerr=[gain["mean"] - gain["low"], gain["high"] - gain["mean"]],
             marker="o", capsize=3, color=report.COLOURS["with LIFE"])
ax2.axhline(0, color="grey", lw=0.8)
ax2.set_ylabel("LIFE - baseline (points of top-1)")
ax2.set_title("paired gain of LIFE, 95 % t-interval")
for ax in (ax1, ax2):  # label the subset sizes themselves, not powers of ten
    ax.set_xscale("log")
    ax.set_xlabel("training images per class (log scale)")
    ax.set_xticks(list(study.subsets), [str(n) for n in study.subsets])
    ax.minorticks_off()
fig.suptitle(chap.caption(f"{study.dataset}: {base_model} vs {life_model}"))
plt.show()

# %% [markdown]
# ### Across the sizes
#
# Each size's interval rests on three seeds. Averaged over the sizes seed by seed (the mean
# of one seed's paired gains at every size: one number per seed, so the seeds stay the
# independent units; the sizes are not, since they share a seed's initialisation), the
# gain gets one interval for the whole range of sizes. A run that failed its schedule check
# at any size is flagged here too.

# %%
per_seed = (runs.pivot_table(index=["seed", "images per class"], columns="LIFE", values="top1")
            .dropna().groupby("seed").mean())
pooled = stats.paired_difference(list(per_seed["baseline"]), list(per_seed["with LIFE"]))
pooled_converged = False if any(v is False for (n, m), v in converged.items() if m in study.models) else None
pooled_verdict = pooled.verdict("LIFE higher", "LIFE lower")
print(f"LIFE - baseline, mean over {len(study.subsets)} sizes per seed: {pooled.text()} points: {pooled_verdict}"
      + (" (a schedule at one of the sizes did not converge)" if pooled_converged is False else "") + ".")

# %% tags=["key-results", "remove-input"]
chap.key_results([
    *(report.Finding.from_row(row, claim="small_data_gain", what=f"{n} images per class: LIFE − baseline, top-1 (points)",
                              chapter=chap.name, section="Accuracy against images per class",
                              converged=False if any(converged.get((int(n), m)) is False for m in study.models) else None)
      for n, row in gain.iterrows()),
    report.Finding.from_interval(pooled, claim="small_data_gain", chapter=chap.name, section="Across the sizes",
                                 what=f"mean over {len(study.subsets)} sizes: LIFE − baseline, top-1 (points)",
                                 converged=pooled_converged),
])

# %% [markdown]
# ## Summary

# %%
minutes = chap.minutes()
lines = []
for n, row in gain.iterrows():
    means = {a: runs[(runs["images per class"] == n) & (runs["LIFE"] == a)]["top1"].mean() for a in arm.values()}
    flags = [m for m in study.models if converged.get((int(n), m)) is False]
    lines.append(f"{n} images per class: baseline {means['baseline']:.2f} %, with LIFE {means['with LIFE']:.2f} %; "
                 f"LIFE - baseline {row['text']} points: {row['verdict']}"
                 + (f" (not converged: {', '.join(flags)})" if flags else "") + ".")
lines.append(f"Mean over the sizes, seed by seed: LIFE - baseline {pooled.text()} points: {pooled_verdict}"
             + (" (not converged at every size)" if pooled_converged is False else "") + ".")
if trained.check is not None:
    lines.append(check_summary(trained.check))
lines.append(f"Chapter time: {minutes:.1f} min ({(runs['how'] == 'trained').sum()} runs trained, "
             f"{(runs['how'] != 'trained').sum()} reused, {len(check_recs)} schedule checks); profile {profile}; "
             f"seeds {report.seeds_text(chap.seeds)}.")
report.summary(lines)
