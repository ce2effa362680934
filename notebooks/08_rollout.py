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
# # 8. Dense Attention Roll-Out
#
# **What you will do.** Draw class-specific attention maps of segmentation models with
# and without LIFE using Dense Attention Roll-Out, and *score* them against the scenes'
# ground-truth masks, beside simpler alternatives.
#
# **What you will learn.** How the paper's visualisation is defined (we write the
# definition out, with our reasoning where the paper leaves room), and whether its maps
# point at the right objects more often than cheaper maps do.
#
# **What you need.** The segmentation runs of chapter 6 (trained here if they are
# missing); in the `cpu` profile about 2 minutes on 2 CPU cores.

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
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from lifestudy import chapters, report
from lifestudy.engine import load_run, resolve
from lifestudy.records import read_json
from lifestudy.rollout import figures, localisation
from lifestudy.rollout.runs import run_dataset, score_run

# %% tags=["parameters"]
# The maps use the first seed's models: chapter 6's (next to `out_dir`) where they exist.
# The number of test images scored is the profile's (`RolloutStudy.n_images`).
profile = "cpu"  # smoke | cpu | paper: the plan of lifestudy/profiles.py
device = "cpu"  # cpu | cuda | auto
seeds = None  # None: the seeds the profile gives this chapter
data_root = None  # None: $LIFESTUDY_DATA or <repo>/data
out_dir = None  # None: runs/<profile>/<this chapter>
reuse_runs = False  # True: keep runs that already have a record instead of training again

# %%
chap = chapters.setup("08_rollout", profile, seeds, device, out_dir, data_root, reuse_runs)
study = chap.study
chap.banner()

# %% [markdown]
# ## The definitions
#
# **Attention roll-out** {cite:p}`abnar2020rollout` follows information through the
# layers. Take each block's softmax attention, fuse its heads (the mean), add the
# identity for the residual connection and renormalise each row to sum to one,
# $\hat A_l = (A_l + I) / \mathrm{rowsum}(A_l + I)$, and multiply the layers in order,
# $R = \hat A_L \cdots \hat A_1$. Row $i$ of $R$ says how much of token $i$'s final
# representation flows from each input token; a classifier's map is the class token's
# row over the patch tokens.
#
# **Dense Attention Roll-Out** {cite:p}`akkaya2023life` is for dense models, which have no
# class token: every patch token makes its own prediction. With $R_{pp}$ the roll-out
# restricted to patch tokens (rows and columns) and $w_{ik} \ge 0$ token $i$'s weight for
# class $k$, the map of class $k$ is
#
# $$
# M_k = \frac{\sum_i w_{ik}\, R_{pp}[i, :]}{\sum_i w_{ik}},
# $$
#
# the answer to "where, on average, do the tokens that predict class $k$ take their
# information from?". The weights are the model's own predicted probabilities of class
# $k$, averaged over each patch, so the tokens that predict $k$ weigh most; one-hot
# weights on one token give exactly that token's roll-out row. The paper describes the
# weighting in words; the exact normalisation above is ours (`lifestudy.rollout.maps`).
#
# **Measured, not just drawn.** On the scenes every item's mask is known. For every test
# image and every item class present in it, the map is upsampled to the image and
# scored by the *pointing game* (is the map's maximum inside the class's mask?) and by
# the IoU of the map's top region with the mask, where the region is the mask's own
# number of highest-valued pixels (so every method gets the same pixel budget). The
# alternatives: the same weighting of the last layer's attention alone (`last-layer`),
# the class-token roll-out where the backbone has a class token (`cls-rollout`,
# class-agnostic), and the token weights themselves (`prediction`), the baseline an
# attention map must beat to say something the prediction does not. Chance levels are
# reported beside them.

# %% [markdown]
# ## The models
#
# The first seed's segmentation models of chapter 6, at the profile's input size; any
# that are missing are trained here with the same settings.

# %%
seg, seed0 = chap.profile.segmentation, chap.seeds[0]  # chapter 6's study, and the seed whose models are read
segmentation_runs = chap.out_dir.parent / "06_segmentation"
run_dirs = {}
for b in seg.backbones:
    cfg = resolve(chap.config("segmentation", seg.dataset, b, seed0, out=("models", b, f"seed{seed0}")))
    run_dirs[b] = segmentation_runs / "x".join(map(str, cfg.img_size)) / b / f"seed{seed0}"  # chapter 6's folder
    if not (run_dirs[b] / "record.json").exists():  # not trained by chapter 6: train it here
        chap.train([cfg])
        run_dirs[b] = Path(cfg.out)
pd.Series({b: chap.show(d) for b, d in run_dirs.items()}, name="run folder").to_frame()

# %% [markdown]
# ## Localisation scores

# %%
for b, run_dir in run_dirs.items():
    score_run(run_dir, n=study.n_images, device=chap.torch_device, out=chap.path("localisation", b, "record.json"))

# %%
records = chap.records("localisation")
scores = {row["provenance.model"]: read_json(row["path"]) for _, row in records.iterrows()}
table = localisation.localisation_table(scores)
columns = ["model", "method", "pointing_game", "iou_area", "iou_half_max", "n_pairs"]
table[[c for c in columns if c in table]].round(3)

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
for ax, metric, label in zip(axes, ["pointing_game", "iou_area"],
                             ["pointing game (fraction of hits)", "top-region IoU (area-matched)"]):
    pivot = table.pivot(index="method", columns="model", values=metric)
    err = table.pivot(index="method", columns="model", values=f"{metric}_sem")
    pivot.plot.barh(xerr=err, ax=ax, capsize=2)
    ax.set_xlabel(label)
    ax.set_ylabel("map")
fig.suptitle(chap.caption(f"Localisation on {study.n_images} {seg.dataset} test images (± s.e.m.)"))
plt.show()

# %% [markdown]
# ## Maps
#
# One test image, its ground truth and the class maps of each method, for each model.

# %%
for b, run_dir in run_dirs.items():
    model, cfg, _ = load_run(run_dir, device=chap.torch_device)
    test_set, spec = run_dataset(cfg)
    image, target = test_set[0]
    maps = localisation.method_maps(model, image[None].to(chap.torch_device), ("dense-rollout", "last-layer", "prediction"))
    fig = figures.plot_class_maps(
        image, {m: v[0].cpu() for m, v in maps.items()}, target["semantic"],
        class_names=list(spec.class_names), mean=spec.mean, std=spec.std,
        title=chap.caption(f"{b}: class maps of test image 0"),
    )
    plt.show()

# %% [markdown]
# ## Summary

# %%
lines = []
for b in seg.backbones:
    s, chance = scores[b]["metrics"], scores[b]["chance"]
    lines.append(
        f"{b}: Dense Attention Roll-Out pointing game {s['dense-rollout']['pointing_game']:.3f}, "
        f"area-matched IoU {s['dense-rollout']['iou_area']:.3f}; last layer "
        f"{s['last-layer']['pointing_game']:.3f} / {s['last-layer']['iou_area']:.3f}; "
        f"the prediction itself {s['prediction']['pointing_game']:.3f} / {s['prediction']['iou_area']:.3f} "
        f"(chance {chance['pointing_game']:.3f} / {chance['iou_area']:.3f}; "
        f"{scores[b]['n_pairs']} image-class pairs)."
    )
lines.append(f"Profile {profile}; models of seed {seed0}; records under {chap.show(chap.path('localisation'))}.")
report.summary(lines)
