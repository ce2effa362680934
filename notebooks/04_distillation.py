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
# # 4. The distillation token
#
# **What you will do.** Train a CNN teacher, then distilled DeiT students with and
# without LIFE that learn from it through DeiT's distillation token
# {cite:p}`touvron2021deit`, several seeds each.
#
# **What you will learn.** Whether LIFE still helps when a CNN already hands the student
# a convolutional inductive bias through distillation, and that LIFE treats the
# distillation token as it treats the class token (pointwise only).
#
# **What you need.** In the `cpu` profile: Fashion-MNIST (`make data`), about 5 minutes
# on 2 CPU cores. In the `paper` profile: CIFAR-100 and a GPU.

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
import seaborn as sns

from lifestudy import report
from lifestudy.engine import TrainConfig
from lifestudy.profiles import get_profile

# %% tags=["parameters"]
profile = "cpu"  # smoke | cpu | paper
device = "cpu"  # cpu | cuda | auto
seeds = None  # None: the profile's seeds for this study
data_root = None  # None: $LIFESTUDY_DATA or <repo>/data
out_dir = None  # None: runs/<profile>/04_distillation
reuse_runs = False  # True: keep runs that already have a record instead of training again

# %%
prof = get_profile(profile)
study = prof.distillation
seeds = list(seeds) if seeds is not None else prof.seeds_for(study)  # the study's own, else the profile's
out_dir = Path(out_dir) if out_dir is not None else Path("runs") / profile / "04_distillation"
report.run_banner(profile, seeds, device)

# %% [markdown]
# ## The teacher
#
# DeiT distils from a CNN's hard labels: the distillation token's head is trained to
# predict the teacher's argmax, the class token's head the true label, and inference
# averages both heads. The teacher is trained first, by the same engine and recipe, with
# the first seed.

# %%
report.ensure_data([study.dataset], data_root)
teacher_dir = out_dir / "teacher" / study.teacher / f"seed{seeds[0]}"
teacher_cfg = TrainConfig(
    task="classification", data=study.dataset, model=study.teacher, profile=profile,
    seed=seeds[0], root=data_root, device=device, quiet=True, out=str(teacher_dir),
)
_ = report.train_all([teacher_cfg], reuse=reuse_runs)

# %% [markdown]
# ## The students

# %%
base_model, life_model = study.students
configs = [
    TrainConfig(
        task="classification", data=study.dataset, model=m, profile=profile, seed=s,
        teacher=str(teacher_dir), root=data_root, device=device, quiet=True,
        out=str(out_dir / "students" / m / f"seed{s}"),
    )
    for m in study.students
    for s in seeds
]
_ = report.train_all(configs, reuse=reuse_runs)

# %% [markdown]
# ## Results

# %%
runs = report.chapter_records(out_dir, kind="train")
runs = runs.rename(columns={"provenance.model": "model", "provenance.seed": "seed",
                            "metrics.top1": "top-1 (%)"})
role = {study.teacher: "teacher (CNN)", base_model: "student", life_model: "student with LIFE"}
runs["role"] = runs["model"].map(role)
stats = report.mean_std(runs, ["role", "model"], "top-1 (%)")
report.format_mean_std(stats)

# %%
students = runs[runs["model"] != study.teacher]
paired = students.pivot_table(index="seed", columns="role", values="top-1 (%)")
paired["gain (points)"] = paired["student with LIFE"] - paired["student"]
teacher_acc = float(runs.loc[runs["model"] == study.teacher, "top-1 (%)"].iloc[0])

fig, ax = plt.subplots(figsize=(5.5, 3.8), constrained_layout=True)
sns.pointplot(data=students, x="role", y="top-1 (%)", errorbar="sd", capsize=0.1, ax=ax)
sns.stripplot(data=students, x="role", y="top-1 (%)", color="grey", alpha=0.6, ax=ax)
ax.axhline(teacher_acc, ls="--", color="C3", label=f"teacher {study.teacher}")
ax.set_xlabel("")
ax.set_ylabel("top-1 accuracy (%)")
ax.legend(loc="lower right")
ax.set_title(report.caption(f"Distilled students on {study.dataset}", profile, seeds), fontsize=9)
plt.show()

# %% [markdown]
# ## Summary

# %%
s_base, s_life = stats.loc["student"].iloc[0], stats.loc["student with LIFE"].iloc[0]
report.summary([
    f"Teacher {study.teacher}: {teacher_acc:.2f} % top-1 on {study.dataset} (seed {seeds[0]}).",
    f"Distilled {base_model}: {s_base[('top-1 (%)', 'mean')]:.2f} ± {s_base[('top-1 (%)', 'std')]:.2f} %; "
    f"{life_model}: {s_life[('top-1 (%)', 'mean')]:.2f} ± {s_life[('top-1 (%)', 'std')]:.2f} %.",
    f"Paired gain of LIFE with distillation: {paired['gain (points)'].mean():+.2f} ± "
    f"{paired['gain (points)'].std(ddof=1) if len(paired) > 1 else 0.0:.2f} points over {len(paired)} seeds "
    f"(profile {profile}).",
])
