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
# # 9. Results and reproducibility
#
# **What you will do.** Collect every record the chapters wrote into one table, with the
# provenance of each number; read how to run the `paper` profile on a GPU machine; see
# the environment this book was built in.
#
# **What you will learn.** Where each number of the book comes from — profile, dataset,
# model, seed, device, code version, wall time — and how to reproduce or extend it.
#
# **What you need.** The runs of the other chapters (`make book` runs them first). Seconds.

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
import platform

import pandas as pd
from IPython.display import HTML
import timm
import torch
import torchvision

import lifestudy
from lifestudy import chapters, report, scorecard
from lifestudy.profiles import PROFILES
from lifestudy.records import git_state, load_records

# %% tags=["parameters", "hide-input"]
# This chapter reads the records of the others (the parent of `out_dir`); `device` is only shown.
profile = "cpu"  # smoke | cpu | paper: the plan of lifestudy/profiles.py
device = "cpu"  # cpu | cuda | auto
seeds = None  # None: the seeds the profile gives this chapter
data_root = None  # None: $LIFESTUDY_DATA or <repo>/data
out_dir = None  # None: runs/<profile>/<this chapter>
reuse_runs = False  # True: keep runs that already have a record instead of training again

# %% tags=["hide-input"]
chap = chapters.setup("09_results", profile, seeds, device, out_dir, data_root, reuse_runs)
study = chap.study
chap.banner()

# %% [markdown]
# (claims-scorecard)=
# ## Claims scorecard
#
# One row per claim of the paper's abstract {cite:p}`akkaya2023life`: our verdict, the
# numbers behind it (each chapter's findings, read from its records, with the half-width of
# their 95 % interval and the seeds or images behind it), the paper's number and the
# chapters that show it. The rule (`lifestudy.scorecard`): a finding supports or contradicts
# a claim only where its interval excludes 0; a claim is *supported* when some finding
# supports it and none contradicts it (*contradicted* in the mirror case), and *not
# resolved at this scale* otherwise, and always when a run behind it did not converge.

# %%
runs_root = chap.out_dir.parent  # every chapter's runs
findings = report.read_findings(runs_root)
card = scorecard.scorecard_table(findings)
print(f"Profile {profile}: {chap.profile.claim}.")
HTML(scorecard.html_table(card))

# %% [markdown]
# ## Every record
#
# Each row is one record file under the profile's runs folder: a training run (with its
# headline metric), a complexity count, a benchmark or a localisation score. The
# provenance columns say where it came from.

# %%
records = load_records(runs_root)
print(f"{len(records)} records under {chap.show(runs_root)}")
table = report.provenance_table(records, runs_root)
pd.set_option("display.max_rows", 500)
table

# %% [markdown]
# ## Time spent
#
# Records per chapter and the wall time their runs recorded (training, benchmarks).

# %%
spent = table.groupby("chapter").agg(
    records=("kind", "size"), **{"recorded wall time (s)": ("wall time (s)", "sum")})
spent.round(1)

# %% [markdown]
# ## The profiles
#
# What each profile runs (`lifestudy/profiles.py` is the one place they are defined).

# %%
pd.DataFrame([
    {
        "profile": p.name,
        "seeds": report.seeds_text(p.seeds),
        "epochs (recipe)": p.recipe.epochs,
        "classification": ", ".join(p.classification.datasets),
        "data-size sweep": f"{p.sweep.dataset} {list(p.sweep.subsets)}",
        "distillation": f"{p.distillation.dataset}, teacher {p.distillation.teacher}",
        "detection": p.detection.dataset,
        "segmentation": p.segmentation.dataset,
        "what it claims": p.summary,
    }
    for p in PROFILES.values()
]).set_index("profile")

# %% [markdown]
# ## Running the paper profile
#
# The `paper` profile trains on the paper's datasets with the paper's recipe (DeiT's,
# 300 epochs). It needs the datasets on disk and a GPU.
#
# 1. **Data.** `lifestudy data fetch cifar10` (likewise `cifar100`, `voc-det`) downloads
#    through torchvision; Tiny-ImageNet, ImageNet-100 and Cityscapes must be placed by
#    hand in the layouts of `data/README.md`; `lifestudy data check NAME` says whether a
#    dataset is complete and, if not, what is missing. Point `LIFESTUDY_DATA` at the data
#    root if it is not `data/`.
# 2. **One GPU, the whole book.** `make book PROFILE=paper DEVICE=cuda` executes every
#    chapter in the `paper` profile (many GPU-days in total: run chapters selectively
#    with `make book/_executed/paper/02_classification.ipynb PROFILE=paper DEVICE=cuda`).
# 3. **Several GPUs, one run.** The engine runs under torchrun with
#    DistributedDataParallel; the batch in the profile is the global batch:
#
#    ```bash
#    torchrun --nproc_per_node=8 -m lifestudy train --task classification \
#        --profile paper --data cifar100 --model deit_tiny_patch4_32_life \
#        --seed 0 --out runs/paper/02_classification/cifar100/deit_tiny_patch4_32_life/seed0
#    ```
#
#    Runs written into a chapter's folder are picked up when the chapter is executed
#    with `reuse_runs=True` (`-p reuse_runs True` to papermill).
# 4. **A single notebook** can be run anywhere, including Colab (the rocket button on
#    each page), with its parameters changed in the `parameters` cell.

# %% [markdown]
# ## The environment

# %%
env = {
    "lifestudy": lifestudy.__version__,
    "python": platform.python_version(),
    "torch": torch.__version__,
    "torchvision": torchvision.__version__,
    "timm": timm.__version__,
    "platform": platform.platform(),
    "CUDA available": torch.cuda.is_available(),
    **git_state(),
}
pd.Series(env, name="value").to_frame()

# %% tags=["key-results", "remove-input"]
verdicts = card["verdict"].str.replace("<strong>", "").str.replace("</strong>", "")
chap.key_results([
    report.Finding(claim="", what=f"claims {v}", chapter=chap.name, section="Claims scorecard",
                   mean=float((verdicts == v).sum()), signed=False, shown=f"{(verdicts == v).sum()} of {len(card)}")
    for v in (scorecard.SUPPORTED, scorecard.CONTRADICTED, scorecard.NOT_RESOLVED)
], note=f"Profile {profile}: {chap.profile.claim}.")

# %% [markdown]
# ## Summary

# %%
commits = sorted({c for c in table["git commit"].dropna() if c})
report.summary([
    f"{len(table)} records under {chap.show(runs_root)} (profile {profile}), from {table['chapter'].nunique()} chapters.",
    f"Recorded wall time of the runs in total: {table['wall time (s)'].fillna(0).sum() / 60:.1f} minutes.",
    f"Code versions: {', '.join(commits) if commits else 'not a git checkout'}; "
    f"{int(table['dirty'].fillna(False).astype(bool).sum())} records from a tree with uncommitted changes.",
])
