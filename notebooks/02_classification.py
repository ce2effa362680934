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
# **What you will do.** Train each baseline Vision Transformer and its LIFE twin from
# scratch on small classification datasets, several seeds each, and compare their
# top-1 accuracy as mean ± standard deviation over seeds.
#
# **What you will learn.** Whether LIFE's local inductive bias helps a ViT that has only
# a little data, by how much, and how much of the difference is seed noise.
#
# **What you need.** In the `cpu` profile: scikit-learn's digits and Fashion-MNIST
# (`make data` fetches it), about 12 minutes on 2 CPU cores. In the `paper` profile:
# CIFAR-10/100, Tiny-ImageNet and ImageNet-100 on disk and a GPU.

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

# %% tags=["parameters"]
profile = "cpu"  # smoke | cpu | paper: the plan of lifestudy/profiles.py
device = "cpu"  # cpu | cuda | auto
seeds = None  # None: the seeds the profile gives this chapter
data_root = None  # None: $LIFESTUDY_DATA or <repo>/data
out_dir = None  # None: runs/<profile>/<this chapter>
reuse_runs = False  # True: keep runs that already have a record instead of training again

# %%
chap = chapters.setup("02_classification", profile, seeds, device, out_dir, data_root, reuse_runs)
study = chap.study
chap.banner()

# %% [markdown]
# ## The plan
#
# The profile names the datasets and the (baseline, LIFE) model pairs; every pair is
# trained with every seed, with the same recipe (DeiT's {cite:p}`touvron2021deit`, scaled
# down by the profile; it is recorded in full with each run). In the `paper` profile
# ResNet-18 and ResNet-50 {cite:p}`he2016resnet` are trained beside them as the CNN
# reference, as in the paper (the study's `references`, trained alone, not in pairs).

# %%
prof = chap.profile
plan = pd.DataFrame(
    [
        {
            "dataset": d,
            "baseline": base,
            "with LIFE": life,
            "epochs": prof.settings_for(d).epochs or prof.recipe_for(d).epochs,
            "images per class": prof.settings_for(d).subset or "all",
            "input (H, W)": prof.settings_for(d).img_size or "dataset's own",
        }
        for d in study.datasets
        for base, life in study.models
    ]
)
plan

# %%
_ = chap.train(
    chap.config("classification", d, m, s, out=(d, m, f"seed{s}"))
    for d in study.datasets
    for m in [*(m for pair in study.models for m in pair), *study.references]
    for s in chap.seeds
)

# %% [markdown]
# ## Results
#
# Every number below is read back from the runs' records.

# %%
runs = chap.records("train")
runs = runs.rename(columns={"provenance.dataset": "dataset", "provenance.model": "model",
                            "provenance.seed": "seed", "metrics.top1": "top-1 (%)"})
pair_of = {m: (base, i) for base, life in study.models for i, m in enumerate((base, life))}
pair_of.update({m: (m, 2) for m in study.references})
runs["pair"] = runs["model"].map(lambda m: pair_of[m][0])
runs["LIFE"] = runs["model"].map(lambda m: ("baseline", "with LIFE", "CNN reference")[pair_of[m][1]])
stats = report.mean_std(runs, ["dataset", "model"], "top-1 (%)")
report.format_mean_std(stats)

# %% [markdown]
# The gain of LIFE per seed: both models of a pair start from the same seed, so the
# paired difference removes the part of the noise that the seed shares.

# %%
paired = runs[runs["LIFE"] != "CNN reference"].pivot_table(
    index=["dataset", "pair", "seed"], columns="LIFE", values="top-1 (%)")
paired["gain (points)"] = paired["with LIFE"] - paired["baseline"]
gain = report.mean_std(paired.reset_index(), ["dataset", "pair"], "gain (points)")
report.format_mean_std(gain)

# %%
g = sns.catplot(
    data=runs, x="pair", y="top-1 (%)", hue="LIFE", col="dataset", kind="point",
    dodge=0.3, errorbar="sd", capsize=0.1, sharey=False, height=3.6, aspect=1.1,
)
g.set_axis_labels("model", "top-1 accuracy (%)")
g.figure.suptitle(chap.caption("Top-1 accuracy, mean ± sd over seeds"), y=1.04)
plt.show()

# %% [markdown]
# ## The paper's numbers
#
# The paper reports top-1 accuracy on CIFAR-10, CIFAR-100, Tiny-ImageNet and
# ImageNet-100 for DeiT-T, DeiT-S, Swinv2-T and T2T-ViT-12 with and without LIFE, and
# ResNet-18/50 {cite:p}`akkaya2023life`. Only the `paper` profile trains on those
# datasets; the `smoke` and `cpu` profiles answer the same question on offline stand-ins
# and are never put in the paper's columns.

# %%
paper_table = getattr(paper, "CLASSIFICATION", None)
if paper_table:
    display(pd.DataFrame(paper_table).rename_axis("model").add_suffix(f" ({report.PAPER})"))
else:
    print(
        "The paper's classification accuracies have not been transcribed into "
        "lifestudy/paper.py; see the classification tables of " + paper.SOURCE
    )

# %% [markdown]
# ## Summary

# %%
lines = []
for (dataset, pair), row in gain.iterrows():
    base = stats.loc[(dataset, pair)]
    life = stats.loc[(dataset, dict(study.models)[pair])]
    lines.append(
        f"{dataset}: {pair} {base[('top-1 (%)', 'mean')]:.2f} ± {base[('top-1 (%)', 'std')]:.2f} % "
        f"-> with LIFE {life[('top-1 (%)', 'mean')]:.2f} ± {life[('top-1 (%)', 'std')]:.2f} % "
        f"(paired gain {row[('gain (points)', 'mean')]:+.2f} ± {row[('gain (points)', 'std')]:.2f} points, "
        f"{int(row[('gain (points)', 'count')])} seeds)."
    )
lines.append(f"Profile {profile}; seeds {report.seeds_text(chap.seeds)}; records under {chap.show()}.")
report.summary(lines)
