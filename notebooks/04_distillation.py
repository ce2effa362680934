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
# **What you will do.** Train a CNN teacher until it has converged, then distilled DeiT
# students with and without LIFE that learn from it through DeiT's distillation token
# {cite:p}`touvron2021deit`, three seeds each, and compare them with their non-distilled
# twins of chapter 2.
#
# **What you will learn.** Whether LIFE still helps when a CNN already hands the student
# a convolutional inductive bias through distillation, and that LIFE treats the
# distillation token as it treats the class token (pointwise only).
#
# **What you need.** In the `cpu` profile: Fashion-MNIST (`make data`) and 2 CPU cores
# (the chapter prints its running time; the teacher and the twins are chapter 2's runs). In the `paper` profile: CIFAR-100 and a GPU.

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

from lifestudy import chapters, report, stats
from lifestudy.data import get_spec
from lifestudy.engine.runs import check_summary, doubled, learning_curves, records_frame, run_all, schedule_check

# %% tags=["parameters", "hide-input"]
profile = "cpu"  # smoke | cpu | paper: the plan of lifestudy/profiles.py
device = "cpu"  # cpu | cuda | auto
seeds = None  # None: the seeds the profile gives this chapter
data_root = None  # None: $LIFESTUDY_DATA or <repo>/data
out_dir = None  # None: runs/<profile>/<this chapter>
reuse_runs = False  # True: keep runs that already have a record instead of training again

# %% tags=["hide-input"]
chap = chapters.setup("04_distillation", profile, seeds, device, out_dir, data_root, reuse_runs)
study = chap.study
chap.banner()

# %% [markdown]
# ## The teacher
#
# DeiT distils from a CNN's hard labels: the distillation token's head is trained to
# predict the teacher's argmax, the class token's head the true label, and inference
# averages both heads. The teacher is trained first, by the same engine and recipe, with
# the first seed, and checked at twice its schedule like every other model; when chapter 2
# trained the same CNN on the same data (its CNN reference), that run is the teacher.
#
# In the `cpu` profile the runs train without augmentation (so that their schedules
# converge; see `lifestudy/profiles.py`), and a teacher that has fitted its training images
# labels them as they are labelled: the distillation token then learns little the class
# token does not. DeiT's gain from distillation comes with its augmentation, where the
# teacher labels views it has not seen; the `paper` profile keeps that recipe.

# %%
share = [chap.out_dir.parent]  # every chapter's runs of this profile: finished ones are reused
chapters.ensure_data([study.dataset], chap.data_root)
teacher_cfg = chap.config("classification", study.dataset, study.teacher, chap.seeds[0],
                          out=("teacher", study.teacher, f"seed{chap.seeds[0]}"))
teacher_checks = [doubled(teacher_cfg)] if chap.profile.schedule_check else []
teacher_rec, *teacher_check = run_all([teacher_cfg, *teacher_checks], share=share, jobs=chap.profile.jobs,
                                      threads=chap.profile.threads)
teacher_dir = teacher_rec["config"]["out"]  # where the teacher's checkpoint lies (maybe chapter 2's)

# %% [markdown]
# ## The students and their non-distilled twins
#
# Each student is paired with its twin: the same model without the distillation token,
# trained without a teacher on the same data with the same seed (chapter 2's run when it
# exists).

# %%
base_model, life_model = study.students
twin_of = {m: m.replace("_distilled", "") for m in study.students}
students = [
    chap.config("classification", study.dataset, m, s, teacher=teacher_dir, out=("students", m, f"seed{s}"))
    for m in study.students for s in chap.seeds
]
twins = [
    chap.config("classification", study.dataset, twin_of[m], s, out=("twins", twin_of[m], f"seed{s}"))
    for m in study.students for s in chap.seeds
]
# the first seed's students and twins again at twice the schedule (the twins' checks are chapter 2's when it ran)
first = [c for c in students + twins if c.seed == chap.seeds[0]] if chap.profile.schedule_check else []
checks = [doubled(c) for c in first]
recs = run_all(students + twins + checks, share=share, jobs=chap.profile.jobs, threads=chap.profile.threads)
n = len(students)
runs = records_frame(recs[:2 * n])
runs["distilled"] = runs["teacher"].notna()
runs["LIFE"] = runs["model"].str.endswith("_life").map({False: "baseline", True: "with LIFE"})
runs["role"] = [("distilled " if d else "") + a for d, a in zip(runs["distilled"], runs["LIFE"])]
print(f"{(runs['how'] == 'trained').sum()} runs trained, {(runs['how'] != 'trained').sum()} reused")

# %% [markdown]
# ## Has every schedule converged?

# %%
if chap.profile.schedule_check:
    check = schedule_check([(teacher_rec, teacher_check[0]),
                            *zip([r for c, r in zip(students + twins, recs) if c.seed == chap.seeds[0]], recs[2 * n:])],
                           seeds=recs[:2 * n])
    converged = {r.model: bool(r.converged) for r in check.itertuples()}
    display(check.drop(columns=["subset"]).round(2))
else:
    check, converged = None, {}
    print(f"The {profile} profile runs no schedule check (see lifestudy/profiles.py).")

# %% [markdown]
# ## Learning curves

# %% mystnb={"figure": {"caption": "Test top-1 during training of the teacher and the students, mean ± sd over seeds.", "name": "fig-04-1"}}
curves = learning_curves([teacher_rec, *recs[:2 * n]])
fig, ax = plt.subplots(figsize=(6.5, 3.8), constrained_layout=True)
sns.lineplot(data=curves, x="step", y="eval_top1", hue="model", errorbar="sd", marker="o", ax=ax)
ax.set_xlabel("optimizer steps")
ax.set_ylabel("test top-1 (%)")
ax.set_title(chap.caption(f"{study.dataset}: test accuracy during training"), fontsize=9)
plt.show()

# %% [markdown]
# ## Results

# %%
teacher_acc = float(teacher_rec["metrics"]["top1"])
table = report.mean_ci(runs, ["role", "model"], "top1")
table["converged"] = [converged.get(m) for _, m in table.index]
table

# %% [markdown]
# Paired differences (same seed, same data) with 95 % t-intervals: LIFE against its
# baseline among the distilled students, and each student against its non-distilled twin.

# %%
runs["pair"] = runs["model"].map(lambda m: twin_of.get(m, m))
life_gain = stats.paired_differences(runs[runs["distilled"]], "distilled", "LIFE", "top1", "baseline",
                                     "with LIFE", positive="LIFE higher", negative="LIFE lower")
distill_gain = stats.paired_differences(runs.assign(kind=runs["distilled"].map({True: "distilled", False: "twin"})),
                                        "pair", "kind", "top1", "twin", "distilled",
                                        positive="distillation higher", negative="distillation lower")
display(life_gain.round(2))
distill_gain.round(2)

# %% mystnb={"figure": {"caption": "Final test top-1 of the distilled students and their non-distilled twins (points: seeds; bars: mean ± sd); dashed: the teacher.", "name": "fig-04-2"}}
fig, ax = plt.subplots(figsize=(6.5, 3.8), constrained_layout=True)
sns.pointplot(data=runs, x="role", y="top1", errorbar="sd", capsize=0.1, linestyle="none", ax=ax)
sns.stripplot(data=runs, x="role", y="top1", color="grey", alpha=0.6, ax=ax)
ax.axhline(teacher_acc, ls="--", color="C3", label=f"teacher {study.teacher} (seed {chap.seeds[0]})")
ax.set_xlabel("")
ax.set_ylabel("test top-1 (%)")
ax.legend(loc="lower right")
ax.set_title(chap.caption(f"Distilled students and their twins on {study.dataset}"), fontsize=9)
plt.show()

# %% tags=["key-results", "remove-input"]
chance = 100 / get_spec(study.dataset).num_classes
life_student = runs[runs["distilled"] & (runs["LIFE"] == "with LIFE")]
flagged = lambda *ms: False if any(converged.get(m) is False for m in ms) else None  # noqa: E731
chap.key_results([
    report.Finding.from_interval(stats.t_interval(list(life_student["top1"] - chance)), claim="aux_tokens",
                                 what=f"{life_model} (class + distillation tokens) − chance, top-1 (points)",
                                 chapter=chap.name, section="Results", converged=flagged(life_model, study.teacher)),
    *[report.Finding.from_row(row, claim="small_data_gain", what=f"distilled: {life_model} − {base_model}, top-1 (points)",
                              chapter=chap.name, section="Results", converged=flagged(*study.students, study.teacher))
      for _, row in life_gain.iterrows()],
    *[report.Finding.from_row(row, claim="", what=f"{pair}: distilled − not distilled, top-1 (points)",
                              chapter=chap.name, section="Results")
      for pair, row in distill_gain.iterrows()],
])

# %% [markdown]
# ## Summary

# %%
minutes = chap.minutes()
flag = lambda m: " (not converged)" if converged.get(m) is False else ""  # noqa: E731
lines = [f"Teacher {study.teacher}: {teacher_acc:.2f} % top-1 on {study.dataset} (seed {chap.seeds[0]}){flag(study.teacher)}."]
for role, group in runs.groupby("role", sort=False):
    model = group["model"].iloc[0]
    top1 = report.mean_pm(group["top1"])
    lines.append(f"{role} ({model}): {top1}{flag(model)}.")
for _, row in life_gain.iterrows():
    lines.append(f"LIFE - baseline, distilled: {row['text']} points: {row['verdict']}.")
for pair, row in distill_gain.iterrows():
    lines.append(f"Distilled - twin, {pair}: {row['text']} points: {row['verdict']}.")
if check is not None:
    lines.append(check_summary(check))
lines.append(f"Chapter time: {minutes:.1f} min ({(runs['how'] == 'trained').sum()} runs trained, "
             f"{(runs['how'] != 'trained').sum()} reused); profile {profile}; seeds {report.seeds_text(chap.seeds)}.")
report.summary(lines)
