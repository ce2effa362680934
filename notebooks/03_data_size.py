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
# dataset (a fixed number of training images per class), several seeds each, and plot
# accuracy against the number of images.
#
# **What you will learn.** Where LIFE's gain is largest and where it shrinks: an
# inductive bias should matter most when data is scarcest.
#
# **What you need.** In the `cpu` profile: Fashion-MNIST (`make data`), about 7 minutes
# on 2 CPU cores. In the `paper` profile: CIFAR-10 and a GPU.

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

from lifestudy import chapters, report

# %% tags=["parameters"]
profile = "cpu"  # smoke | cpu | paper: the plan of lifestudy/profiles.py
device = "cpu"  # cpu | cuda | auto
seeds = None  # None: the seeds the profile gives this chapter
data_root = None  # None: $LIFESTUDY_DATA or <repo>/data
out_dir = None  # None: runs/<profile>/<this chapter>
reuse_runs = False  # True: keep runs that already have a record instead of training again

# %%
chap = chapters.setup("03_data_size", profile, seeds, device, out_dir, data_root, reuse_runs)
study = chap.study
chap.banner()

# %% [markdown]
# ## The plan
#
# Each subset keeps $n$ images of every class of the training split (chosen by
# `lifestudy.data` with a fixed seed). The test split is the
# same for every run.

# %%
base_model, life_model = study.models
pd.DataFrame({"dataset": [study.dataset], "images per class": [list(study.subsets)],
              "baseline": [base_model], "with LIFE": [life_model], "seeds": [chap.seeds]})

# %%
_ = chap.train(
    chap.config("classification", study.dataset, m, s, subset=n, out=(f"n{n}", m, f"seed{s}"))
    for n in study.subsets
    for m in study.models
    for s in chap.seeds
)

# %% [markdown]
# ## Accuracy against images per class

# %%
runs = chap.records("train")
runs = runs.rename(columns={"provenance.model": "model", "provenance.seed": "seed",
                            "provenance.subset": "images per class", "metrics.top1": "top-1 (%)"})
runs["LIFE"] = runs["model"].map({base_model: "baseline", life_model: "with LIFE"})
stats = report.mean_std(runs, ["images per class", "LIFE"], "top-1 (%)").sort_index()
report.format_mean_std(stats)

# %%
paired = runs.pivot_table(index=["images per class", "seed"], columns="LIFE", values="top-1 (%)")
paired["gain (points)"] = paired["with LIFE"] - paired["baseline"]
gain = report.mean_std(paired.reset_index(), "images per class", "gain (points)").sort_index()

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
sns.lineplot(data=runs, x="images per class", y="top-1 (%)", hue="LIFE", marker="o",
             errorbar="sd", ax=ax1)
ax1.set_xscale("log")
ax1.set_xlabel("training images per class (log scale)")
ax1.set_ylabel("top-1 accuracy (%)")
ax1.set_title("accuracy, mean ± sd")
n = gain.index.to_numpy()
ax2.errorbar(n, gain[("gain (points)", "mean")], yerr=gain[("gain (points)", "std")],
             marker="o", capsize=3)
ax2.axhline(0, color="grey", lw=0.8)
ax2.set_xscale("log")
ax2.set_xlabel("training images per class (log scale)")
ax2.set_ylabel("LIFE - baseline (points of top-1)")
ax2.set_title("paired gain of LIFE, mean ± sd")
for ax in (ax1, ax2):  # label the subset sizes themselves, not powers of ten
    ax.set_xticks(list(study.subsets), [str(n) for n in study.subsets])
    ax.minorticks_off()
fig.suptitle(chap.caption(f"{study.dataset}: {base_model} vs {life_model}"))
plt.show()

# %% [markdown]
# ## Summary

# %%
lines = [
    f"{n} images per class: baseline {stats.loc[(n, 'baseline')][('top-1 (%)', 'mean')]:.2f} %, "
    f"with LIFE {stats.loc[(n, 'with LIFE')][('top-1 (%)', 'mean')]:.2f} %, paired gain "
    f"{gain.loc[n][('gain (points)', 'mean')]:+.2f} ± {gain.loc[n][('gain (points)', 'std')]:.2f} points."
    for n in gain.index
]
smallest, largest = gain.index.min(), gain.index.max()
lines.append(
    f"The gain goes from {gain.loc[smallest][('gain (points)', 'mean')]:+.2f} points at {smallest} "
    f"to {gain.loc[largest][('gain (points)', 'mean')]:+.2f} at {largest} images per class "
    f"(profile {profile}, seeds {report.seeds_text(chap.seeds)})."
)
report.summary(lines)
