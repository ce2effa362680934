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
from lifestudy.data import get_spec
from lifestudy.dense.complexity import detector_complexity
from lifestudy.tasks.detection import head_sizes

# %% tags=["parameters"]
profile = "cpu"  # smoke | cpu | paper: the plan of lifestudy/profiles.py
device = "cpu"  # cpu | cuda | auto
seeds = None  # None: the seeds the profile gives this chapter
data_root = None  # None: $LIFESTUDY_DATA or <repo>/data
out_dir = None  # None: runs/<profile>/<this chapter>
reuse_runs = False  # True: keep runs that already have a record instead of training again

# %%
chap = chapters.setup("05_detection", profile, seeds, device, out_dir, data_root, reuse_runs)
study = chap.study
chap.banner()

# %% [markdown]
# ## The plan
#
# Every backbone is trained with every head and every seed, from random initialisation
# (as in the paper's table). Scores: COCO-style mAP (IoU 0.50:0.95), VOC-style mAP at
# IoU 0.5, and F1 at IoU 0.5 counting a detection when its class score is at least 0.5
# (the rule is stated in full in `lifestudy.dense.metrics`). The head's sizes and the
# number of generated scenes are the profile's settings of the dataset.

# %%
pd.DataFrame({"dataset": [study.dataset], "backbones": [list(study.backbones)],
              "heads": [list(study.heads)], "seeds": [chap.seeds],
              "canvases (train, test)": [chap.settings.canvases or "the dataset's own"],
              "head sizes": [head_sizes(chap.settings.task_options())]})

# %%
_ = chap.train(
    chap.config("detection", study.dataset, b, s, head=h, out=(h, b, f"seed{s}"))
    for b in study.backbones
    for h in study.heads
    for s in chap.seeds
)

# %% [markdown]
# ## Results

# %%
runs = chap.records("train")
runs = runs.rename(columns={"provenance.model": "backbone", "provenance.seed": "seed", "provenance.head": "head",
                            "metrics.map": "mAP (%)", "metrics.map_50": "mAP@0.5 (%)",
                            "metrics.f1": "F1 (%)"})
metrics = ["mAP (%)", "mAP@0.5 (%)", "F1 (%)"]
stats = report.mean_std(runs, ["backbone", "head"], metrics)
stats = stats.reindex(pd.MultiIndex.from_product([study.backbones, study.heads], names=stats.index.names))
spec = get_spec(study.dataset)
size = tuple(runs["provenance.img_size"].iloc[0])  # the input the runs trained at
cost = pd.DataFrame([
    {"backbone": b, "head": h, **{k: c[k] for k in ("params_m", "gmacs")}}
    for b, h in stats.index
    for c in [detector_complexity(b, h, num_classes=spec.num_classes, img_size=size,
                                  in_chans=spec.in_chans, sizes=head_sizes(chap.settings.task_options()))]
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
fig.suptitle(chap.caption(f"Detection on {study.dataset}, mean ± sd"))
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
report.beside_paper(ours, paper.DETECTION, {"map": "mAP", "f1": "F1", "params_m": "params (M)",
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
lines.append(f"Profile {profile}; dataset {study.dataset}; records under {chap.show()}.")
report.summary(lines)
