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
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from lifestudy import chapters, report
from lifestudy.engine import load_run, resolve
from lifestudy.records import read_json
from lifestudy.rollout import figures, localisation
from lifestudy.rollout.runs import run_dataset, score_run

# %% tags=["parameters", "hide-input"]
# The maps use the first seed's models: chapter 6's (next to `out_dir`) where they exist.
# The number of test images scored is the profile's (`RolloutStudy.n_images`).
profile = "cpu"  # smoke | cpu | paper: the plan of lifestudy/profiles.py
device = "cpu"  # cpu | cuda | auto
seeds = None  # None: the seeds the profile gives this chapter
data_root = None  # None: $LIFESTUDY_DATA or <repo>/data
out_dir = None  # None: runs/<profile>/<this chapter>
reuse_runs = False  # True: keep runs that already have a record instead of training again

# %% tags=["hide-input"]
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
# scored by the *pointing game* (is the map's maximum inside the class's mask?), by the
# *energy inside the mask* (the share of the map's mass that lies on the object), and by
# the IoU of the map's top region with the mask, where the region is the mask's own
# number of highest-valued pixels (so every method gets the same pixel budget). The
# alternatives: the same weighting of the last layer's attention alone (`last-layer`),
# the class-token roll-out where the backbone has a class token (`cls-rollout`,
# class-agnostic), a centre prior (a Gaussian in the middle of the image, `centre`), and
# the token weights themselves (`prediction`), the baseline an attention map must beat
# to say something the prediction does not. Chance levels are reported beside them.
# Every score comes with a 95 % bootstrap interval over images (an image's classes are
# resampled together), and the comparisons that matter -- dense roll-out against the
# prediction, the centre prior and chance -- are paired differences on the same images
# with their own intervals (`lifestudy.rollout.localisation`).

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
metrics = ["pointing_game", "energy", "iou_area"]


def with_interval(df, metric):
    return df.apply(lambda r: f"{r[metric]:.3f} [{r[metric + '_low']:.3f}, {r[metric + '_high']:.3f}]", axis=1)


shown = table[["model", "method", "n_pairs"]].copy()
for metric in metrics:
    shown[metric] = with_interval(table, metric)
shown

# %% [markdown]
# The paired differences (the first map minus the second, on the same images) with their
# 95 % bootstrap intervals; "better" or "worse" is said only where the interval excludes 0.

# %%
diff = localisation.localisation_table(scores, differences=True)


def verdict(r, metric):
    return "better" if r[metric + "_low"] > 0 else "worse" if r[metric + "_high"] < 0 else "not resolved"


shown_diff = diff[["model", "difference"]].copy()
for metric in metrics:
    shown_diff[metric] = with_interval(diff, metric)
    shown_diff[metric + " verdict"] = diff.apply(verdict, axis=1, metric=metric)
shown_diff

# %% mystnb={"figure": {"caption": "Localisation scores of every map against the ground-truth masks, with 95 % bootstrap intervals over images.", "name": "fig-08-1"}}
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
for ax, metric, label in zip(axes, metrics, ["pointing game (fraction of hits)", "energy inside the mask",
                                              "top-region IoU (area-matched)"]):
    pivot = table.pivot(index="method", columns="model", values=metric)
    low = pivot - table.pivot(index="method", columns="model", values=f"{metric}_low")
    high = table.pivot(index="method", columns="model", values=f"{metric}_high") - pivot
    pivot.plot.barh(xerr=[[low[c].values, high[c].values] for c in pivot.columns], ax=ax, capsize=2)
    ax.set_xlabel(label)
    ax.set_ylabel("map")
fig.suptitle(chap.caption(f"Localisation on {study.n_images} {seg.dataset} test images (95 % bootstrap intervals)"))
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

# %% tags=["key-results", "remove-input"]
chap.key_results([
    report.Finding(claim="rollout_maps" if against == "chance" else "",
                   what=f"{b}: dense roll-out − {against}, {label}", chapter=chap.name, section="Localisation scores",
                   mean=v["mean"], low=v["low"], high=v["high"], n=scores[b]["scores"]["n_images"], count="image",
                   box=metric == "pointing_game")
    for b in seg.backbones
    for against in ("chance", "prediction")
    for metric, label in (("pointing_game", "pointing game"), ("iou_area", "area-matched IoU"))
    for v in [scores[b]["scores"]["differences"][f"dense-rollout - {against}"][metric]]
], note="Intervals: 95 % bootstrap over test images (an image's classes resampled together).")

# %% [markdown]
# ## Summary

# %%
def ci(v):
    return f"{v['mean']:.3f} [{v['low']:.3f}, {v['high']:.3f}]"


def says(d, key, metric):
    v = d[key][metric]
    return "better than" if v["low"] > 0 else "worse than" if v["high"] < 0 else "not resolved against"


lines = []
for b in seg.backbones:
    full = scores[b]["scores"]
    s, d, chance = full["methods"], full["differences"], full["chance"]
    miou = read_json(Path(run_dirs[b]) / "record.json")["metrics"]["miou"]
    lines.append(
        f"{b} (segmentation mIoU {miou:.1f} %): Dense Attention Roll-Out pointing game "
        f"{ci(s['dense-rollout']['pointing_game'])}, energy inside the mask {ci(s['dense-rollout']['energy'])}, "
        f"area-matched IoU {ci(s['dense-rollout']['iou_area'])}; the prediction it is weighted by "
        f"{ci(s['prediction']['pointing_game'])} / {ci(s['prediction']['energy'])} / "
        f"{ci(s['prediction']['iou_area'])}; "
        f"chance {chance['pointing_game']['mean']:.3f} / {chance['energy']['mean']:.3f} / "
        f"{chance['iou_area']['mean']:.3f} ({full['n_pairs']} image-class pairs, {full['n_images']} images)."
    )
    lines.append(
        f"{b}: on area-matched IoU dense roll-out is {says(d, 'dense-rollout - chance', 'iou_area')} chance and "
        f"{says(d, 'dense-rollout - prediction', 'iou_area')} the prediction; on the pointing game it is "
        f"{says(d, 'dense-rollout - chance', 'pointing_game')} chance and "
        f"{says(d, 'dense-rollout - prediction', 'pointing_game')} the prediction (95 % bootstrap intervals "
        "of the paired differences)."
    )
lines.append(f"Profile {profile}; models of seed {seed0}; records under {chap.show(chap.path('localisation'))}.")
report.summary(lines)
