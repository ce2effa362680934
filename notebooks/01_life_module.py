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
# # 1. The LIFE module
#
# **What you will do.** Build a LIFE module, perturb one patch token and watch which
# outputs change; find out which attention heads of DeiT-Tiny and DeiT-Small see which
# scale; count parameters and multiply-accumulates of the paper's models beside the
# paper's own table.
#
# **What you will learn.** What LIFE computes, measured rather than asserted: the
# receptive field of each of its three scales, how its channels reach the attention
# heads, what it costs, and where this implementation differs from the official code.
#
# **What you need.** The `lifestudy` package; no dataset, no training. About a minute on
# a CPU.

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
import torch

from lifestudy import chapters, complexity, paper, report, scorecard
from lifestudy.life import LIFE
from lifestudy.perturbation import head_fields, scale_fields
from lifestudy.records import read_json, write_json_atomic

# %% tags=["parameters", "hide-input"]
# This chapter trains nothing and needs no dataset; it computes on the CPU.
profile = "cpu"  # smoke | cpu | paper: the plan of lifestudy/profiles.py
device = "cpu"  # cpu | cuda | auto
seeds = None  # None: the seeds the profile gives this chapter
data_root = None  # None: $LIFESTUDY_DATA or <repo>/data
out_dir = None  # None: runs/<profile>/<this chapter>
reuse_runs = False  # True: keep runs that already have a record instead of training again

# %% tags=["hide-input"]
chap = chapters.setup("01_life_module", profile, seeds, device, out_dir, data_root, reuse_runs)
study = chap.study
chap.banner()

# %% [markdown]
# ## What LIFE computes
#
# LIFE replaces the linear `qkv` projection of an attention block: tokens
# $(B, N, C)$ in, queries, keys and values $(B, N, 3C)$ out, in timm's `q | k | v`
# layout, so the rest of timm's attention block runs unchanged. Its three scales are a
# pointwise projection, then a $3\times3$ depthwise convolution over the patch grid
# followed by a pointwise projection, then a $5\times5$ depthwise convolution (cascaded
# on the previous scale) followed by a pointwise projection. Here is one, as wide as
# DeiT-Tiny (C = 192) with one class token, on a $14\times14$ grid:

# %%
torch.manual_seed(chap.seeds[0])  # the random input of the perturbations and LIFE's initial weights
C, gh, gw, num_prefix_tokens = 192, 14, 14, 1
life = LIFE(C, num_prefix_tokens=num_prefix_tokens).eval()
x = torch.randn(1, num_prefix_tokens + gh * gw, C)
with torch.no_grad():
    qkv = life(x, grid_size=(gh, gw))
print(life)
print(f"tokens {tuple(x.shape)} -> q|k|v {tuple(qkv.shape)}; channels per scale {life.scale_dims}")

# %% [markdown]
# ## The receptive field of each scale, by perturbation
#
# Perturb the patch token in the middle of the grid and record, for every output channel
# and every patch position, how much the output changes. A channel of scale 1 should
# change only at the perturbed position, scale 2 over a $3\times3$ neighbourhood and
# scale 3 (a $5\times5$ convolution applied to scale 2) over $7\times7$.


# %%
rows, maps, prefix_change = scale_fields(life, (gh, gw))
rf = pd.DataFrame(rows)
rf_expected = {1: "1x1", 2: "3x3", 3: "7x7"}
rf["expected"] = rf["scale"].map(rf_expected)
rf

# %% mystnb={"figure": {"caption": "How much each output channel of LIFE's three scales changes when the centre patch token is perturbed, over the patch grid.", "name": "fig-01-1"}}
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), constrained_layout=True)
for s, (ax, m) in enumerate(zip(axes, maps), start=1):
    im = ax.imshow(m.numpy(), cmap="magma")
    ax.set_title(f"scale {s} queries (expected {rf_expected[s]})", fontsize=10)
    ax.set_xlabel("patch column (patches)")
    ax.set_ylabel("patch row (patches)")
    fig.colorbar(im, ax=ax, shrink=0.8, label="|change| of output")
fig.suptitle(chap.caption("Response of each scale to perturbing the centre patch token"))
plt.show()

# %% [markdown]
# The class token has no position on the grid, so LIFE sends it through the pointwise
# parts only: perturbing a patch token must leave the class token's queries, keys and
# values untouched.

# %%
print(f"largest change of the class token's q|k|v: {prefix_change:.3g}")
assert prefix_change == 0.0

# %% [markdown]
# ## Which heads see which scale
#
# Attention heads take the channels of Q, K and V in order, and LIFE lays out a third of
# the channels of each from each scale. So in DeiT-Tiny (3 heads of 64 channels) each
# head attends with exactly one scale; in DeiT-Small (6 heads) two heads share each
# scale. We measure it: the receptive field of each head's query channels in the first
# block of the real models.


# %%
heads = pd.DataFrame([row for name in study.head_models for row in head_fields(name)])
heads

# %% [markdown]
# ## What it costs, beside the paper
#
# Parameters and multiply-accumulates (GMACs) at $224\times224$ with 100 classes, counted
# the way the paper counts them (fvcore, with the attention matrix products), for each
# model with and without LIFE. The paper's numbers sit beside ours, labelled.

# %%
counted = [complexity.complexity(name, num_classes=100, img_size=complexity.default_img_size(name))
           for pair in study.complexity_pairs for name in pair]
record_path = write_json_atomic(chap.path("complexity", "record.json"),
                                complexity.complexity_record(counted, profile=profile, device="cpu", chapter=chap.name))
counted = pd.DataFrame(read_json(record_path)["results"]).set_index("model")
table = report.beside_paper(
    counted[["params_m", "gmacs"]].rename(columns={"params_m": "params (M)", "gmacs": "GMACs"}),
    paper.COMPLEXITY, {"params_m": "params (M)", "gmacs": "GMACs"},
)
table.round(2)

# %% [markdown]
# The DeiT rows are the paper's check on the implementation: parameters and GMACs must
# match to the second decimal, with and without LIFE. Where another row differs from the
# paper (the `cpu` and `paper` profiles add Swinv2-T and T2T-ViT-12), the difference is
# shown as counted, not adjusted; `lifestudy.complexity` documents the counting rules.
# What we found behind those differences:
#
# - **Swinv2-T.** Our baseline is timm's model as counted by the same rules. LIFE adds a
#   little less here than in the paper: timm's SwinV2 attention carries separate q and v
#   biases, which LIFE's scale-1 projection takes over (one bias); the paper's step is
#   what one gets by keeping both. Inside a shifted window, LIFE's convolutions see
#   tokens across the cyclic-shift seam as neighbours (the attention mask hides them from
#   attention, not from a convolution), as any conv-in-window design does.
# - **T2T-ViT-12.** The paper's baseline GMACs equal our count *without* the products
#   inside the tokens-to-token Performer layers; we count them. The paper's T2T-ViT-12
#   with LIFE is *smaller* than its baseline, which putting LIFE in place of each block's
#   `qkv` cannot give (it only adds parameters), so the paper's T2T variant must be built
#   differently from what its text describes; we do not reproduce that row.

# %% [markdown]
# ## Where and why we differ from the official code
#
# The official implementation (`MultiscaleQKV` in the authors' repository) and the paper
# agree on the three scales, but the code departs from the paper in three places. We
# follow the paper in each, because the paper states the method and the departures are
# either restrictions or a slip:
#
# - **Any number of auxiliary tokens.** The official code assumes exactly one auxiliary
#   token (the class token) when it separates the tokens from the grid, so a distilled
#   DeiT (class and distillation tokens) or a model with register tokens
#   {cite:p}`darcet2024registers` would put an auxiliary token on the grid. We take
#   timm's `num_prefix_tokens`, whatever it is; the paper says LIFE handles the class and
#   the distillation tokens.
# - **Any grid.** The official code recovers the grid as $\sqrt{N-1}$, so only square
#   inputs work. Detection and segmentation use rectangular inputs (chapter 6 trains at a
#   2:1 input size), so the grid is passed to LIFE, recorded by a hook on the patch
#   embedding of every forward pass.
# - **The auxiliary token's keys.** For the auxiliary token the official code builds K
#   from the scale-1 key three times, while Q and V take scales 1, 2 and 3. The paper
#   treats all of Q, K and V alike, so every token's K is $[k_1 \,\|\, k_2 \,\|\, k_3]$
#   here.
#
# The arithmetic is also laid out differently for speed (prefix and patch tokens split
# once into two streams, one matrix product per scale and stream, channels-last depthwise
# convolutions read straight from the tokens, and on CPU a backward pass for the 5x5
# convolution that avoids a slow oneDNN path); the function computed is the paper's.

# %% tags=["key-results", "remove-input"]
tiny, tiny_life = study.complexity_pairs[0]  # DeiT-T, read back from the record above
ours, theirs = counted.loc, paper.COMPLEXITY
extra = {k: 100 * (ours[tiny_life, k] / ours[tiny, k] - 1) for k in ("params_m", "gmacs")}
paper_extra = {k: 100 * (theirs[tiny_life][k] / theirs[tiny][k] - 1) for k in ("params_m", "gmacs")}
chap.key_results([
    *[report.Finding(claim="life_efficient", what=f"{tiny_life} − {tiny}, extra {label} at 224x224 (%)",
                     chapter=chap.name, section="What it costs, beside the paper", mean=extra[k], unit=" %",
                     holds=extra[k] <= scorecard.EFFICIENT_OVERHEAD_PCT, paper=f"{paper_extra[k]:+.2f} %")
      for k, label in (("params_m", "parameters"), ("gmacs", "MACs"))],
    report.Finding(claim="aux_tokens", what="largest change of the class token's q|k|v when a patch token moves",
                   chapter=chap.name, section="The receptive field of each scale, by perturbation", mean=prefix_change,
                   holds=prefix_change == 0.0, signed=False, shown=f"{prefix_change:.3g}"),
])

# %% [markdown]
# ## Summary

# %%
report.summary([
    "Perturbing one patch token changes the queries of "
    + ", ".join(f"scale {s} over {e}" for s, e in rf[rf.part == "q"][["scale", "extent (patches)"]].itertuples(index=False))
    + " patches (intended: 1x1, 3x3, 7x7); the class token's q|k|v do not change.",
    "Heads: " + "; ".join(f"{m} head {h} sees scale {s}" for m, h, s in heads[["model", "head", "scale"]].itertuples(index=False)) + ".",
    f"DeiT-T: {ours[tiny, 'params_m']:.2f} M parameters and {ours[tiny, 'gmacs']:.2f} GMACs; "
    f"with LIFE {ours[tiny_life, 'params_m']:.2f} M and {ours[tiny_life, 'gmacs']:.2f} GMACs "
    f"(paper: {theirs[tiny]['params_m']:.2f} / {theirs[tiny]['gmacs']:.2f} and "
    f"{theirs[tiny_life]['params_m']:.2f} / {theirs[tiny_life]['gmacs']:.2f}).",
])
