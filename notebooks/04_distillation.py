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
chap = chapters.setup("04_distillation", profile, seeds, device, out_dir, data_root, reuse_runs)
study = chap.study
chap.banner()

# %% [markdown]
# ## The teacher
#
# DeiT distils from a CNN's hard labels: the distillation token's head is trained to
# predict the teacher's argmax, the class token's head the true label, and inference
# averages both heads. The teacher is trained first, by the same engine and recipe, with
# the first seed.

# %%
seed0 = chap.seeds[0]
teacher = chap.config("classification", study.dataset, study.teacher, seed0, out=("teacher", study.teacher, f"seed{seed0}"))
_ = chap.train([teacher])

# %% [markdown]
# ## The students

# %%
base_model, life_model = study.students
_ = chap.train(
    chap.config("classification", study.dataset, m, s, teacher=teacher.out, out=("students", m, f"seed{s}"))
    for m in study.students
    for s in chap.seeds
)

# %% [markdown]
# ## Results

# %%
runs = chap.records("train")
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
ax.set_title(chap.caption(f"Distilled students on {study.dataset}"), fontsize=9)
plt.show()

# %% [markdown]
# ## Summary

# %%
s_base, s_life = stats.loc["student"].iloc[0], stats.loc["student with LIFE"].iloc[0]
report.summary([
    f"Teacher {study.teacher}: {teacher_acc:.2f} % top-1 on {study.dataset} (seed {seed0}).",
    f"Distilled {base_model}: {s_base[('top-1 (%)', 'mean')]:.2f} ± {s_base[('top-1 (%)', 'std')]:.2f} %; "
    f"{life_model}: {s_life[('top-1 (%)', 'mean')]:.2f} ± {s_life[('top-1 (%)', 'std')]:.2f} %.",
    f"Paired gain of LIFE with distillation: {paired['gain (points)'].mean():+.2f} ± "
    f"{paired['gain (points)'].std(ddof=1) if len(paired) > 1 else 0.0:.2f} points over {len(paired)} seeds "
    f"(profile {profile}).",
])
