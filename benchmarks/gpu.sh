#!/usr/bin/env bash
# The GPU measurements of the study, in one go (the numbers quoted in the closing notes
# and the efficiency chapter's GPU section). Run from the repository root on a CUDA
# machine whose python already has torch/torchvision/timm:
#   OUT=runs/gpu bash benchmarks/gpu.sh
set -uo pipefail
OUT=${OUT:-runs/gpu}
PY=${PY:-python3}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
$PY -c "import sys,torch,torchvision,timm;print('python',sys.version.split()[0],'torch',torch.__version__,'torchvision',torchvision.__version__,'timm',timm.__version__)" | tee -a "$OUT/gpu.txt"
step() { echo "=== $1"; shift; local t=$(date +%s); "$@"; echo "=== rc=$? in $(( $(date +%s) - t )) s"; }
# 1. LIFE vs baseline throughput and memory (bf16 autocast), small and paper-size inputs.
step "bench 32x32" $PY -m lifestudy bench --device cuda --amp --models deit_tiny_patch4_32 deit_small_patch4_32 \
  --img-size 32 32 --batch-size 256 --repeats 7 --out "$OUT/bench_cuda_32.json"
step "bench 224" $PY -m lifestudy bench --device cuda --amp --models deit_tiny_patch16_224 deit_small_patch16_224 \
  --img-size 224 224 --batch-size 128 --repeats 5 --out "$OUT/bench_cuda_224.json"
step "bench swinv2 256" $PY -m lifestudy bench --device cuda --amp --models swinv2_tiny_window8_256 \
  --img-size 256 256 --batch-size 64 --repeats 5 --out "$OUT/bench_cuda_swin.json"
# 2. Where the time of a 300-epoch CIFAR-10 run goes (model step vs data pipeline).
step "train throughput" $PY benchmarks/train_throughput.py --device cuda --amp --workers 14 --batch-size 256 \
  --model deit_tiny_patch4_32_life --out "$OUT/train_throughput.json"
step "train throughput compiled" $PY benchmarks/train_throughput.py --device cuda --amp --workers 14 --batch-size 256 \
  --model deit_tiny_patch4_32_life --channels-last --compile --pipelines model gpu --out "$OUT/train_throughput_compile.json"
# 3. The engine end to end on CUDA (bf16 autocast path) with a real record.
step "engine smoke on cuda" $PY -m lifestudy train --task classification --data digits --model deit_test_patch4_32_life \
  --profile smoke --seed 0 --device cuda --out "$OUT/engine_smoke" --quiet
cp "$OUT/engine_smoke/record.json" "$OUT/engine_smoke_record.json" 2>/dev/null || true
