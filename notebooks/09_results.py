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
import platform
from pathlib import Path

import pandas as pd
import timm
import torch
import torchvision

import lifestudy
from lifestudy import report
from lifestudy.profiles import PROFILES, get_profile
from lifestudy.records import git_state, load_records

# %% tags=["parameters"]
profile = "cpu"  # smoke | cpu | paper
device = "cpu"  # the device the other chapters ran on (shown, not used)
seeds = None  # None: the profile's seeds
data_root = None  # unused here
out_dir = None  # None: runs/<profile>/09_results; the records are read from its parent

# %%
prof = get_profile(profile)
seeds = list(seeds) if seeds is not None else list(prof.seeds)
out_dir = Path(out_dir) if out_dir is not None else Path("runs") / profile / "09_results"
runs_root = out_dir.parent
report.run_banner(profile, seeds, device)

# %% [markdown]
# ## Every record
#
# Each row is one record file under the profile's runs folder: a training run (with its
# headline metric), a complexity count, a benchmark or a localisation score. The
# provenance columns say where it came from.

# %%
records = load_records(runs_root)
print(f"{len(records)} records under {runs_root}")


def column(df, name, default=None):
    return df[name] if name in df else pd.Series([default] * len(df), index=df.index)


headline_keys = {"classification": "metrics.top1", "detection": "metrics.map_50", "segmentation": "metrics.miou"}


def headline(row):
    """The run's headline metric, e.g. 'top1 91.20' (empty for records that are not runs)."""
    key = headline_keys.get(row.get("task"))
    if key and pd.notna(row.get(key)):
        return f"{key.split('.')[-1]} {float(row[key]):.2f}"
    return ""


table = pd.DataFrame({
    "chapter": [Path(p).relative_to(runs_root).parts[0] for p in column(records, "path", "")],
    "kind": column(records, "kind"),
    "task": column(records, "task"),
    "dataset": column(records, "provenance.dataset"),
    "model": column(records, "provenance.model"),
    "seed": column(records, "provenance.seed"),
    "epochs": column(records, "provenance.epochs"),
    "headline": [headline(row) for _, row in records.iterrows()],
    "wall time (s)": column(records, "provenance.wall_time_s"),
    "device": column(records, "provenance.device_name"),
    "git commit": column(records, "provenance.git_commit").map(lambda c: c[:10] if isinstance(c, str) else c),
    "dirty": column(records, "provenance.git_dirty"),
    "torch": column(records, "provenance.torch"),
    "timm": column(records, "provenance.timm"),
    "created": column(records, "provenance.created"),
})
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

# %% [markdown]
# ## Summary

# %%
commits = sorted({c for c in table["git commit"].dropna() if c})
report.summary([
    f"{len(table)} records under {runs_root} (profile {profile}), from {table['chapter'].nunique()} chapters.",
    f"Recorded wall time of the runs in total: {table['wall time (s)'].fillna(0).sum() / 60:.1f} minutes.",
    f"Code versions: {', '.join(commits) if commits else 'not a git checkout'}; "
    f"{int(table['dirty'].fillna(False).astype(bool).sum())} records from a tree with uncommitted changes.",
])
