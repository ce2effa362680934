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
# # 10. LIFE among other local Vision Transformers
#
# **What you will do.** Train four earlier ways of giving a ViT locality — SPT + LSA, LocalViT,
# CvT's convolutional projection and ConViT — as variants of the same small DeiT, on chapter
# 2's data with chapter 2's recipe and seeds, beside the baseline, LIFE and the CNN; measure
# what each costs; and let code decide to which kinds of ViT each one applies unchanged.
#
# **What you will learn.** Whether the abstract's claim about the methods before LIFE — that
# they "are architecture-specific or have higher computational and memory costs" — holds up
# when they are measured on one footing.
#
# **What you need.** What chapter 2 needs (its runs of the baseline, LIFE and the CNN are
# reused when they exist); in the `cpu` profile 2 CPU cores (the chapter prints its time).

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
import pandas as pd

from lifestudy import chapters, peers, records, report, stats
from lifestudy.engine.runs import check_summary

# %% tags=["parameters", "hide-input"]
profile = "cpu"  # smoke | cpu | paper: the plan of lifestudy/profiles.py
device = "cpu"  # cpu | cuda | auto
seeds = None  # None: the seeds the profile gives this chapter
data_root = None  # None: $LIFESTUDY_DATA or <repo>/data
out_dir = None  # None: runs/<profile>/<this chapter>
reuse_runs = False  # True: keep runs that already have a record instead of training again

# %% tags=["hide-input"]
chap = chapters.setup("10_locality", profile, seeds, device, out_dir, data_root, reuse_runs)
study = chap.study
chap.banner()

# %% [markdown]
# ## The methods
#
# Each peer is a timm `VisionTransformer` of the baseline's size (same width, depth, heads,
# patch) with the method's layers passed in as timm's `embed_layer`, `attn_layer` or
# `mlp_layer` (ConViT is timm's own `ConVit` at that size); the model files in
# `lifestudy/models/` name the paper and reference code of each, and where we differ.
#
# | method | what it adds | where |
# | --- | --- | --- |
# | LIFE {cite:p}`akkaya2023life` | cascaded 1x1, 3x3, 5x5 depthwise convs in the q/k/v projection | `attn.qkv` |
# | SPT + LSA (Lee, Lee, Song 2021) | patches of the image and 4 half-patch diagonal shifts; learnable softmax temperature, no self-attention to itself | patch embedding, attention |
# | LocalViT (Li et al. 2021) | a 3x3 depthwise conv between the feed-forward network's two layers | feed-forward |
# | CvT projection (Wu et al. 2021) | a 3x3 depthwise conv + BatchNorm before each of the q, k, v projections (stride 1) | `attn.qkv` |
# | ConViT (d'Ascoli et al. 2021) | gated positional self-attention in the first 5 of 6 blocks; class token added after them | attention |

# %%
models = [study.baseline, study.life, *study.peers, *study.references]
arm = {study.baseline: "baseline", study.life: "LIFE", **{m: "CNN" for m in study.references}}
arm.update({m: name for name, method in peers.METHODS.items() for m in (method.model, method.test_model)
            if m in study.peers})
chapters.ensure_data([study.dataset], chap.data_root)
configs = [chap.config("classification", study.dataset, m, s, out=(study.dataset, m, f"seed{s}"))
           for m in models for s in chap.seeds]
pd.DataFrame([{"model": m, "method": arm[m], "seeds": len(chap.seeds), "dataset": study.dataset,
               "images per class": chap.profile.settings_for(study.dataset).subset or "all"} for m in models])

# %% [markdown]
# ## Training, shared with chapter 2
#
# A run whose resolved config (model, data, recipe, seed) equals one of chapter 2's is not
# trained again: its record is read from there (`how` says which).

# %%
trained = chap.run_checked(configs)
converged = trained.converged("model")
runs = trained.frame()
runs["method"] = runs["model"].map(arm)
runs["converged"] = runs["model"].map(converged)
runs.groupby("method", sort=False)["how"].value_counts().unstack(fill_value=0)

# %% [markdown]
# ## Accuracy
#
# Top-1 on the test set, and each method's gain over the baseline paired by seed (same
# subset, data order and augmentation), with its 95 % t-interval; a direction is stated only
# where the interval excludes 0.

# %%
rows = []
for method in [arm[m] for m in models if arm[m] != "baseline"]:
    g = stats.paired_differences(runs[runs["method"].isin(["baseline", method])].assign(k=study.dataset), "k",
                                 "method", "top1", "baseline", method, positive="higher", negative="lower")
    r = g.iloc[0]
    vals = runs[runs["method"] == method]["top1"]
    rows.append({"method": method, "top1": vals.mean(), "sd": vals.std(ddof=1) if len(vals) > 1 else float("nan"),
                 "gain": r["mean"], "low": r["low"], "high": r["high"], "n": r["n"], "verdict": r["verdict"], "text": r["text"],
                 "converged": converged.get(runs[runs["method"] == method]["model"].iloc[0])})
base = runs[runs["method"] == "baseline"]["top1"]
accuracy = pd.DataFrame([{"method": "baseline", "top1": base.mean(),
                          "sd": base.std(ddof=1) if len(base) > 1 else float("nan"),
                          "converged": converged.get(study.baseline)}, *rows]).set_index("method")
accuracy.drop(columns="text").round(2)

# %% [markdown]
# ## Cost, measured in one run
#
# Parameters and MACs (chapter 1's counter, at the training input), and training and
# inference images/s and activation memory, each as a ratio to the baseline timed in the
# same process, steps interleaved (`lifestudy.peers.costs`). ConViT and the CNN are timed
# the same way.

# %%
channels = 1 if study.dataset in ("fashion-mnist", "digits") else 3
cost = peers.costs([study.life, *study.peers], baseline=study.baseline, num_classes=10,
                   img_size=chap.settings.img_size or (32, 32), in_chans=channels,
                   batch_size=study.cost_batch_size, repeats=study.cost_repeats)
records.write_json_atomic(chap.path("costs.json"), peers.costs_record(cost, profile=profile, chapter="10_locality"))
costs = pd.DataFrame({arm[m]: {"params (M)": r["params"] / 1e6, "MMACs": r["macs"] / 1e6,
                               **{f"{k} ratio": v for k, v in r["ratios"].items()}}
                      for m, r in cost["rows"].items()}).T
costs.round(3)

# %% [markdown]
# ## To which ViTs does each apply unchanged?
#
# Each cell is decided by `lifestudy.peers.compatibility`: the method's own layers are put in
# a tiny host's slots (patch embedding, attention, its q/k/v projection, feed-forward) and
# the host is run forward and backward; in the ViT hosts the method's local operator must
# also read exactly the patches of its neighbourhood in the host's grid (and the prefix
# tokens none). A "no" is a refusal with its reason; `tests/test_peers.py` shows that the
# unchanged method does fail there.

# %%
table = peers.compatibility()
records.write_json_atomic(chap.path("compatibility.json"),
                          peers.compatibility_record(table, profile=profile, chapter="10_locality"))
compat = pd.DataFrame({m: {h: "yes" if c["applies"] else "no" for h, c in row.items()} for m, row in table.items()}).T
display(compat)
reasons = pd.DataFrame([{"method": m, "host": h, "reason": c["reason"]}
                        for m, row in table.items() for h, c in row.items() if not c["applies"]])
reasons.style.hide(axis="index") if len(reasons) else reasons

# %% [markdown]
# ## The abstract's claim, part by part
#
# The paper's own sentences {cite:p}`akkaya2023life` beside what our measurements say
# (computed below from this chapter's records; costs at the training input, the profile's
# (16x16 with patch 4 in the cpu profile: a 16-token grid, where every local operator's
# fixed cost per call weighs more beside attention and the MLP than at 64 tokens), and the
# timings are CPU ones: see chapter 7 for how LIFE's ratios move with the number of tokens
# and on a GPU).

# %%
peer_names = [arm[m] for m in study.peers]
specific = [m for m in peer_names if not all(c["applies"] for c in table[m].values())]
general = [m for m in peer_names if m not in specific]
ratio = {arm[m]: r["ratios"] for m, r in cost["rows"].items()}
dearer = {k: [m for m in peer_names if ratio[m][k] > ratio["LIFE"][k]] for k in ("macs", "activation_mb")}
slower = [m for m in peer_names if ratio[m]["train_img_s"] < ratio["LIFE"]["train_img_s"]]
life_row = table["LIFE"]
ABSTRACT = "Existing methods, however, are architecture-specific or have higher computational and memory costs."
OURS = ("Our proposed module is memory and computation efficient, as well as flexible enough to process "
        "auxiliary tokens such as the classification and distillation tokens.")
lighter = {k: [m for m in peer_names if ratio[m][k] < ratio["LIFE"][k]] for k in ("macs", "activation_mb")}
claim = pd.DataFrame([
    {"part": "existing methods are architecture-specific", "paper (abstract)": ABSTRACT,
     "ours": (f"{', '.join(specific) or 'none'} fail(s) at least one of the {len(peers.HOSTS)} hosts; "
              f"{', '.join(general) or 'none'} apply to all of them, as LIFE does "
              f"({sum(c['applies'] for c in life_row.values())}/{len(life_row)})")},
    {"part": "... or have higher computational costs", "paper (abstract)": ABSTRACT,
     "ours": (f"MACs above LIFE's ({ratio['LIFE']['macs']:.3f}x the baseline): {', '.join(dearer['macs']) or 'none'}; "
              f"training slower than LIFE ({ratio['LIFE']['train_img_s']:.2f}x): {', '.join(slower) or 'none'}")},
    {"part": "... and memory costs", "paper (abstract)": ABSTRACT,
     "ours": (f"activation memory above LIFE's ({ratio['LIFE']['activation_mb']:.3f}x the baseline): "
              f"{', '.join(dearer['activation_mb']) or 'none'}; below it: {', '.join(lighter['activation_mb']) or 'none'}")},
    {"part": "LIFE is efficient and takes auxiliary tokens", "paper (abstract)": OURS,
     "ours": (f"LIFE: {ratio['LIFE']['macs']:.3f}x the baseline's MACs, {ratio['LIFE']['activation_mb']:.2f}x its "
              f"activations, {ratio['LIFE']['train_img_s']:.2f}x its training speed; class + distillation tokens: "
              f"{'yes' if life_row['class + distillation tokens']['applies'] else 'no'}, register tokens: "
              f"{'yes' if life_row['register tokens']['applies'] else 'no'}")},
])
claim.style.hide(axis="index")

# %% tags=["key-results", "remove-input"]
hosts = len(peers.HOSTS)
model_of = {a: m for m, a in arm.items()}
chap.key_results([
    *[report.Finding(claim="peers_specific_or_costly", what=f"{m} (MACs, activations × the baseline; hosts it applies to)",
                     chapter=chap.name, section="To which ViTs does each apply unchanged?", mean=ratio[m]["macs"],
                     holds=m in specific or m in dearer["macs"] or m in dearer["activation_mb"],
                     shown=f"{ratio[m]['macs']:.3f}× MACs, {ratio[m]['activation_mb']:.2f}× activations, "
                           f"{sum(c['applies'] for c in table[m].values())} of {hosts} hosts")
      for m in peer_names],
    report.Finding(claim="aux_tokens", what="LIFE in a ViT with class + distillation tokens (forward, backward, locality)",
                   chapter=chap.name, section="To which ViTs does each apply unchanged?", mean=1.0,
                   holds=bool(life_row["class + distillation tokens"]["applies"]),
                   shown="applies" if life_row["class + distillation tokens"]["applies"] else "refused"),
    *[report.Finding(claim="", what=f"{m} − baseline, top-1 (points)", chapter=chap.name, section="Accuracy",
                     mean=r["gain"], low=r["low"], high=r["high"], n=int(r["n"]),
                     converged=False if False in (converged.get(model_of[m]), converged.get(study.baseline)) else None)
      for m, r in accuracy.drop(index="baseline").iterrows() if pd.notna(r.get("gain"))],
])

# %% [markdown]
# ## Summary

# %%
minutes = chap.minutes()
lines = [f"{study.dataset}, seeds {report.seeds_text(chap.seeds)}: baseline {accuracy.loc['baseline', 'top1']:.2f} %; "
         + "; ".join(f"{m} {r['top1']:.2f} % (gain {r['text']} points: {r['verdict']})"
                     + ("" if r["converged"] is not False else " (not converged)")
                     for m, r in accuracy.drop(index="baseline").iterrows()) + "."]
lines.append("Applies unchanged to every host: " + (", ".join(m for m in table if all(
    c["applies"] for c in table[m].values())) or "none") + "; to some only: " + (", ".join(specific) or "none") + ".")
lines.append("Cost ratios to the baseline (MACs, train img/s, activations): " + "; ".join(
    f"{m} {r['macs']:.2f}, {r['train_img_s']:.2f}, {r['activation_mb']:.2f}" for m, r in ratio.items() if m != "baseline"))
if trained.check is not None:
    lines.append(check_summary(trained.check))
lines.append(f"Chapter time: {minutes:.1f} min ({(runs['how'] == 'trained').sum()} runs trained, "
             f"{(runs['how'] != 'trained').sum()} reused, {len(trained.twice)} schedule checks); profile {profile}; "
             f"records under {chap.show()}.")
report.summary(lines)
