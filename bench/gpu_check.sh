#!/usr/bin/env bash
# What a lent GPU machine runs, in one call (see the README's benchmarks): bf16 on CUDA, the
# methods table (estimated vs measured peak device memory, tokens/s, QLoRA included) on random
# weights of the SmolLM2-135M and SmolLM2-1.7B shapes, and one real studio job through the CLI.
# Needs a folder holding SmolLM2's config.json and tokenizer files: bench/gpu_check.sh CONFIG_DIR
set -u
CONFIG_DIR=${1:?config folder}
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false STUDIO_HOME=/tmp/gpu-ws
step() { echo; echo "=== $1 ($(date +%T))"; }

step environment
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 - <<'PY'
import torch, transformers, peft, trl, bitsandbytes
from studio.models.loading import resolve_precision
print("torch", torch.__version__, "cuda", torch.version.cuda, "| transformers", transformers.__version__,
      "peft", peft.__version__, "trl", trl.__version__, "bitsandbytes", bitsandbytes.__version__)
print("bf16 supported:", torch.cuda.is_bf16_supported(), "| studio precision auto ->", resolve_precision("auto"))
from studio.methods.qlora import bitsandbytes_problem
print("bitsandbytes problem:", bitsandbytes_problem())
PY

step "random models"
python3 bench/random_model.py "$CONFIG_DIR" /tmp/m135 2>&1 | grep -v shards
python3 bench/random_model.py "$CONFIG_DIR" /tmp/m1700 --set hidden_size=2048 --set intermediate_size=8192 \
  --set num_hidden_layers=24 --set num_attention_heads=32 --set num_key_value_heads=32 2>&1 | grep -v shards

step "methods, 135M shape, batch 4 x 256"
timeout 200 python3 bench/methods.py --model /tmp/m135 --batch 4 --seq 256 --steps 6 2>&1 | grep -v -i "warn\|examples/s" | tee "$OUT/methods-135m.txt"

step "studio job through the CLI (quickstart preset, 30 steps)"
timeout 120 python3 -m studio.cli train presets/quickstart-sft-lora.yaml --set model=/tmp/m135 --set train.max_steps=30 \
  2>&1 | tail -5
find /tmp/gpu-ws/runs -name summary.json -exec cat {} \; | tee "$OUT/job-summary.json"

step "methods, 1.7B shape, batch 4 x 512"
timeout 240 python3 bench/methods.py --model /tmp/m1700 --batch 4 --seq 512 --steps 6 \
  --methods lora,qlora,full,ia3 2>&1 | grep -v -i "warn\|examples/s" | tee "$OUT/methods-1p7b.txt"
step done
