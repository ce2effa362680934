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
# **What you will do.** Train DETR-style detectors on a ViT backbone (the profile lists
# the backbones: the `cpu` profile uses the baseline only, as the paper's table does),
# with the paper's three head variants — the plain encoder-decoder (`encdec`); a
# parameter-matched control whose encoder attention projections get an extra linear
# stage, capacity without locality (`encdec-linear`: LIFE's cascade with 1x1 kernels);
# and one whose encoder self-attention uses LIFE over the feature grid (`encdec-life`) —
# several seeds each, and score them with mAP and F1.
#
# **What you will learn.** Whether local information helps a detector's backbone and its
# head, and how our small-scale results sit beside the paper's Pascal VOC table.
#
# **What you need.** In the `cpu` profile: nothing to download (the scenes are generated
# from Fashion-MNIST items), about 6 minutes on 2 CPU cores. In the `paper` profile:
# Pascal VOC and a GPU.

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

from lifestudy import paper, report
from lifestudy.data import get_spec
from lifestudy.dense.complexity import detector_complexity
from lifestudy.engine import TrainConfig
from lifestudy.profiles import get_profile
from lifestudy.tasks.detection import HEAD_SIZES

# %% tags=["parameters"]
profile = "cpu"  # smoke | cpu | paper
device = "cpu"  # cpu | cuda | auto
seeds = None  # None: the profile's seeds
data_root = None  # None: $LIFESTUDY_DATA or <repo>/data
out_dir = None  # None: runs/<profile>/05_detection
scene_canvases = None  # (train, test) generated scenes; None: the chapter's choice for the profile
reuse_runs = False  # True: keep runs that already have a record instead of training again

# %%
prof = get_profile(profile)
study = prof.detection
seeds = list(seeds) if seeds is not None else prof.seeds_for(study)  # the study's own, else the profile's
# Unless the profile sets the number of generated scenes, the smoke profile draws few
# (seconds, not minutes); other profiles use the dataset's default.
if scene_canvases is None and "train_length" not in prof.settings_for(study.dataset).options:
    scene_canvases = {"smoke": (32, 16)}.get(profile)
scene_options = (
    {"train_length": scene_canvases[0], "test_length": scene_canvases[1]} if scene_canvases else {}
)
out_dir = Path(out_dir) if out_dir is not None else Path("runs") / profile / "05_detection"
report.run_banner(profile, seeds, device)

# %% [markdown]
# ## The plan
#
# Every backbone is trained with every head and every seed, from random initialisation
# (as in the paper's table). Scores: COCO-style mAP (IoU 0.50:0.95), VOC-style mAP at
# IoU 0.5, and F1 at IoU 0.5 counting a detection when its class score is at least 0.5
# (the rule is stated in full in `lifestudy.dense.metrics`).

# %%
pd.DataFrame({"dataset": [study.dataset], "backbones": [list(study.backbones)],
              "heads": [list(study.heads)], "seeds": [seeds]})

# %%
report.ensure_data([study.dataset], data_root)
configs = [
    TrainConfig(
        task="detection", data=study.dataset, model=b, head=h, profile=profile, seed=s,
        root=data_root, device=device, quiet=True, options=scene_options, out=str(out_dir / h / b / f"seed{s}"),
    )
    for b in study.backbones
    for h in study.heads
    for s in seeds
]
_ = report.train_all(configs, reuse=reuse_runs)

# %% [markdown]
# ## Results

# %%
runs = report.chapter_records(out_dir, kind="train")
runs = runs.rename(columns={"provenance.model": "backbone", "provenance.seed": "seed",
                            "metrics.map": "mAP (%)", "metrics.map_50": "mAP@0.5 (%)",
                            "metrics.f1": "F1 (%)"})
runs["head"] = runs["config.head"] if "config.head" in runs else runs["path"].map(lambda p: Path(p).parts[-4])
metrics = ["mAP (%)", "mAP@0.5 (%)", "F1 (%)"]
stats = report.mean_std(runs, ["backbone", "head"], metrics)
stats = stats.reindex(pd.MultiIndex.from_product([study.backbones, study.heads], names=stats.index.names))
spec = get_spec(study.dataset)
size = prof.settings_for(study.dataset).img_size or tuple(spec.input_size)
cost = pd.DataFrame([
    {"backbone": b, "head": h, **{k: c[k] for k in ("params_m", "gmacs")}}
    for b, h in stats.index
    for c in [detector_complexity(b, h, num_classes=spec.num_classes, img_size=size,
                                  in_chans=spec.in_chans, sizes=HEAD_SIZES.get(profile))]
]).set_index(["backbone", "head"]).rename(columns={"params_m": "params (M)", "gmacs": "GMACs"})
table = report.format_mean_std(stats).join(cost.round(3))
table

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
for ax, metric in zip(axes, ["mAP@0.5 (%)", "F1 (%)"]):
    sns.pointplot(data=runs, x="head", y=metric, hue="backbone", errorbar="sd",
                  dodge=0.3 if len(study.backbones) > 1 else False,  # seaborn divides by (hues - 1)
                  capsize=0.1, ax=ax, order=list(study.heads))
    ax.set_xlabel("detection head")
    ax.set_ylabel(metric.replace("(%)", "(percent)"))
fig.suptitle(report.caption(f"Detection on {study.dataset}, mean ± sd", profile, seeds))
plt.show()

# %% [markdown]
# ## Beside the paper
#
# A caveat first: a DETR-style detector learns slowly (its set loss must first sort out
# which query predicts which object), and the `cpu` profile gives it a few minutes of CPU.
# At that scale the detectors may not leave chance level — the summary says whether this
# run did. When they do not, this chapter shows that the pipeline runs end to end and
# how the heads' sizes compare; ranking the heads needs the `paper` profile on a GPU.
#
# The paper's table (Pascal VOC, DeiT-T backbone, random initialisation) varies the head
# on the baseline backbone. Our rows are the profile's baseline backbone with each head;
# the paper's numbers sit beside them in columns labelled **paper**. The data and the
# head sizes differ (ours are chosen per profile), so the comparison is of the ordering
# of the heads, not of the values.

# %%
ours = table.loc[study.backbones[0]][["mAP (%)", "F1 (%)", "params (M)", "GMACs", "seeds"]]
report.beside_paper(ours, paper.detection_rows("random", "DeiT-T"), {"map": "mAP", "f1": "F1", "params_m": "params (M)",
                                            "gmacs": "GMACs"})

# %% [markdown]
# ## Summary

# %%
lines = []
for (backbone, head), row in stats.iterrows():
    lines.append(
        f"{backbone} + {head}: mAP@0.5 {row[('mAP@0.5 (%)', 'mean')]:.2f} ± {row[('mAP@0.5 (%)', 'std')]:.2f} %, "
        f"F1 {row[('F1 (%)', 'mean')]:.2f} ± {row[('F1 (%)', 'std')]:.2f} % "
        f"({int(row[('F1 (%)', 'count')])} seeds)."
    )
if (stats[("F1 (%)", "mean")] == 0).all():
    lines.append("No detector scored any object at >= 0.5 confidence (F1 0 for every head): at this "
                 "scale the runs stay near chance, and the heads cannot be ranked from them.")
lines.append(f"Profile {profile}; dataset {study.dataset}; records under {out_dir}.")
report.summary(lines)
