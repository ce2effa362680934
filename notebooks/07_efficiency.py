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
# # 7. Efficiency
#
# **What you will do.** Count parameters and multiply-accumulates of ViTs with and
# without LIFE as the number of tokens grows, and measure their training and inference
# throughput and peak memory on this machine.
#
# **What you will learn.** What LIFE costs, and how that cost scales: its convolutions
# grow linearly with the number of tokens, while attention grows quadratically, so
# LIFE's relative overhead shrinks on larger inputs.
#
# **What you need.** The `lifestudy` package; no dataset. About 2 minutes on 2 CPU cores
# (the throughput numbers are for this machine only; the device is named below).

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
from IPython.display import display
import pandas as pd
import seaborn as sns

from lifestudy import chapters, complexity, report, scorecard
from lifestudy.bench import BenchConfig, bench
from lifestudy.records import read_json, write_json_atomic

# %% tags=["parameters", "hide-input"]
# This chapter trains nothing and needs no dataset; `device` is where speed and memory are measured.
profile = "cpu"  # smoke | cpu | paper: the plan of lifestudy/profiles.py
device = "cpu"  # cpu | cuda | auto
seeds = None  # None: the seeds the profile gives this chapter
data_root = None  # None: $LIFESTUDY_DATA or <repo>/data
out_dir = None  # None: runs/<profile>/<this chapter>
reuse_runs = False  # True: keep runs that already have a record instead of training again

# %% tags=["hide-input"]
chap = chapters.setup("07_efficiency", profile, seeds, device, out_dir, data_root, reuse_runs)
study = chap.study
chap.banner()

# %% [markdown]
# ## Cost against the number of tokens
#
# The profile's classification pair, at growing square inputs with patch size 4 (so the
# grid grows from $8\times8$ to $32\times32$ patches). MACs are counted as in the paper:
# fvcore's convention, with the attention matrix products.

# %%
base_model, life_model = study.models
counted = [complexity.complexity(name, num_classes=study.num_classes, img_size=side)
           for side in study.img_sides for name in study.models]
write_json_atomic(chap.path("complexity", "record.json"),
                  complexity.complexity_record(counted, profile=profile, device="cpu", chapter=chap.name))
cost = pd.DataFrame({"model": r["model"], "LIFE": r["model"] == life_model, "image side (px)": r["img_size"][0],
                     "tokens": (r["img_size"][0] // 4) ** 2, "params (M)": r["params_m"], "GMACs": r["gmacs"]}
                    for r in read_json(chap.path("complexity", "record.json"))["results"])
overhead = cost.pivot_table(index="tokens", columns="LIFE", values="GMACs")
overhead["LIFE overhead (%)"] = 100 * (overhead[True] / overhead[False] - 1)
overhead.rename(columns={False: f"GMACs {base_model}", True: f"GMACs {life_model}"}).round(4)

# %% mystnb={"figure": {"caption": "Left: GMACs per image against the number of patch tokens. Right: LIFE's extra MACs in per cent.", "name": "fig-07-1"}}
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
sns.lineplot(data=cost, x="tokens", y="GMACs", hue="model", marker="o", ax=ax1)
ax1.set_xlabel("patch tokens per image")
ax1.set_ylabel("GMACs per image")
ax2.plot(overhead.index, overhead["LIFE overhead (%)"], marker="o")
ax2.set_xlabel("patch tokens per image")
ax2.set_ylabel("extra MACs of LIFE (%)")
fig.suptitle(chap.caption("Multiply-accumulates against input size", seeds=False))
plt.show()

# %% [markdown]
# ## Throughput and memory
#
# Training and inference throughput (images per second) of each model, timed in one
# process with the repetitions of the baseline and the LIFE model interleaved, so that
# noise on a shared machine hits both alike; the ratios carry over to other machines,
# the absolute numbers are this device's. Memory is the size of the activations autograd
# keeps for the backward pass of one training step (exact and device-independent; the
# part of training memory LIFE changes). On a CPU it runs with as many threads as each of the
# book's training runs has (the profile's `threads`). `lifestudy bench` measures the same from
# the command line.
#
# How LIFE runs here: on the cpu profile's small patch grids (at most 16 cells), each depthwise
# conv is one matrix per channel over the tokens, and LIFE and the attention that reads its
# q, k and v run as one autograd function that takes them where LIFE writes them, instead of
# copying them into timm's q|k|v layout and back (`lifestudy.life.LIFEAttention`; the
# function is the same, `tests/test_life.py` holds the two to the same outputs and gradients).
# `benchmarks/README.md` has what each of these steps gained on CPU.

# %%
plan = study.bench  # input sides, batch size, timed repeats
rows = []
for side in plan.img_sides:
    record = bench(BenchConfig(models=[base_model], img_size=(side, side), batch_size=plan.batch_size,
                               num_classes=study.num_classes, device=device, repeats=plan.repeats,
                               threads=chap.profile.threads))  # as the chapters' training runs use the CPU
    write_json_atomic(chap.path("bench", f"{side}x{side}", "record.json"), record)
    for row in record["results"]:
        measures = {f"{mode} (img/s)": row[mode] for mode in ("train", "infer")}
        mem = row["memory"]["activation_mb"]
        for measure, r in measures.items():
            rows.append({"tokens": (side // 4) ** 2, "measure": measure, "baseline": r["baseline_img_s"],
                         "with LIFE": r["life_img_s"], "LIFE / baseline": r["ratio"]})
        rows.append({"tokens": (side // 4) ** 2, "measure": "activations (MB)", "baseline": mem["baseline"],
                     "with LIFE": mem["life"], "LIFE / baseline": mem["ratio"]})
speed = pd.DataFrame(rows)
bench_device = record["provenance"].get("device_name", device)
speed.set_index(["tokens", "measure"]).round(3)

# %% mystnb={"figure": {"caption": "LIFE's training and inference throughput and activation memory as ratios to the baseline, against the number of tokens.", "name": "fig-07-2"}}
fig, ax = plt.subplots(figsize=(6, 3.8), constrained_layout=True)
sns.lineplot(data=speed, x="tokens", y="LIFE / baseline", hue="measure", marker="o", ax=ax)
ax.axhline(1.0, color="grey", lw=0.8)
ax.set_xlabel("patch tokens per image")
ax.set_ylabel("LIFE / baseline (ratio)")
ax.set_title(chap.caption(f"Throughput and activation memory of {life_model}, on {bench_device}", seeds=False),
             fontsize=9)
plt.show()

# %% [markdown]
# ## On a GPU (recorded H100 runs)
#
# The numbers above are this machine's. The repository also keeps the records of one
# session on an NVIDIA H100 (bf16 autocast, eager PyTorch unless marked compiled),
# written by `benchmarks/gpu.sh` and `benchmarks/life_cuda.py` under
# `benchmarks/results/h100/`; this section reads them as they are (they are not re-run
# by `make book`). On the GPU the picture differs from the MAC count: a DeiT-T step at
# 32x32 is short, so LIFE's extra kernels (two depthwise convs, three chained matmuls and
# the q|k|v concatenation per block) cost far more than their arithmetic.

# %%
gpu_dir = Path("benchmarks/results/h100")
if gpu_dir.exists():
    gpu_rows = []
    for f in sorted(gpu_dir.glob("bench_cuda_*.json")):
        rec = read_json(f)
        for r in rec["results"]:
            for mode in ("train", "infer"):
                gpu_rows.append({"model": r["life"], "input": "x".join(map(str, rec["config"]["img_size"])),
                                 "batch": rec["config"]["batch_size"], "mode": mode,
                                 "baseline (img/s)": r[mode]["baseline_img_s"],
                                 "with LIFE (img/s)": r[mode]["life_img_s"], "LIFE / baseline": r[mode]["ratio"],
                                 "device": rec["provenance"]["device_name"]})
    gpu_bench = pd.DataFrame(gpu_rows)
    layouts = pd.concat([
        pd.DataFrame(read_json(f)["results"]).assign(model=read_json(f)["model"])
        for f in sorted(gpu_dir.glob("life_cuda_*.json"))
    ])
    display(gpu_bench.round(3))
    display(layouts.set_index(["model", "batch_size"])[[c for c in layouts.columns if c.startswith("ratio_")]])
else:
    gpu_bench = layouts = None
    print(f"{gpu_dir} is not here (e.g. in Colab without the repository): no GPU records to show")

# %% [markdown]
# `ratio_no_dw` removes the depthwise convolutions altogether (not LIFE; a bound): LIFE
# without them is still far below the baseline at batch 256, so on this GPU the cost lies
# in the number of small kernels per block, not in the convolutions. Larger batches and
# `torch.compile` narrow the gap; the closing note of the foundation issue lists what was
# tried.

# %% tags=["key-results", "remove-input"]
first, last = overhead.index.min(), overhead.index.max()
at_most = speed[speed["tokens"] == speed["tokens"].max()].set_index("measure")["LIFE / baseline"]
chap.key_results([
    *[report.Finding(claim="life_efficient", what=f"{life_model}: extra MACs at {t} tokens (%)", chapter=chap.name,
                     section="Cost against the number of tokens", mean=overhead.loc[t, "LIFE overhead (%)"], unit=" %",
                     holds=overhead.loc[t, "LIFE overhead (%)"] <= scorecard.EFFICIENT_OVERHEAD_PCT)
      for t in (first, last)],
    *[report.Finding(claim="life_efficient", what=f"{life_model} / {base_model}: {m} at {speed['tokens'].max()} tokens "
                     f"(measured, not judged; {bench_device})", chapter=chap.name, section="Throughput and memory",
                     mean=float(at_most[m]), unit="×", signed=False)
      for m in ("train (img/s)", "activations (MB)") if m in at_most],
])

# %% [markdown]
# ## Summary

# %%
report.summary([
    f"{life_model} has {cost.loc[cost.LIFE, 'params (M)'].iloc[0]:.3f} M parameters against "
    f"{cost.loc[~cost.LIFE, 'params (M)'].iloc[0]:.3f} M for {base_model}.",
    f"LIFE's extra MACs: {overhead.loc[first, 'LIFE overhead (%)']:.2f} % at {first} tokens, "
    f"{overhead.loc[last, 'LIFE overhead (%)']:.2f} % at {last} tokens.",
    "Training throughput of LIFE relative to the baseline: " + ", ".join(
        f"{r['LIFE / baseline']:.2f}x at {r['tokens']} tokens"
        for _, r in speed[speed["measure"] == "train (img/s)"].iterrows()
    ) + f" (measured on {bench_device}, profile {profile}; records under {chap.show(chap.path('bench'))}).",
] + ([
    "Recorded on " + gpu_bench["device"].iloc[0] + " (training, bf16): " + ", ".join(
        f"{r['model']} at {r['input']} {r['LIFE / baseline']:.2f}x"
        for _, r in gpu_bench[gpu_bench["mode"] == "train"].iterrows()
    ) + f" (records in {gpu_dir})."
] if gpu_bench is not None else []))
