#!/usr/bin/env bash
# What a lent GPU machine runs, in one call (see the README's benchmarks): bf16 on CUDA, on random
# weights of the SmolLM2-135M and SmolLM2-1.7B shapes, the parts named after the config folder:
#   methods  the methods table (estimated vs measured peak device memory, tokens/s, QLoRA included), ~6 min
#   job      one real studio job through the CLI, ~1.5 min
#   speed    bench/train_speed.py: bare loop vs plain TRL vs studio job, both shapes, at most 2 x 150 s
# The environment and the random models (~1.5 min) always come first. methods + job (the default, as before)
# took 8.5 min on 2026-11-26, so all three parts do not fit one 10-minute device call: run them in two calls.
# Needs a folder holding SmolLM2's config.json and tokenizer files: bench/gpu_check.sh CONFIG_DIR [PART...]
set -u
CONFIG_DIR=${1:?config folder}
shift
PARTS=" ${*:-methods job} "
part() { [[ "$PARTS" == *" $1 "* ]]; }
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

if part methods; then
step "methods, 135M shape, batch 4 x 256"
timeout 200 python3 bench/methods.py --model /tmp/m135 --batch 4 --seq 256 --steps 6 2>&1 | grep -v -i "warn\|examples/s" | tee "$OUT/methods-135m.txt"
fi

if part job; then
step "studio job through the CLI (quickstart preset, 30 steps)"
timeout 120 python3 -m studio.cli train presets/quickstart-sft-lora.yaml --set model=/tmp/m135 --set train.max_steps=30 \
  2>&1 | tail -5
find /tmp/gpu-ws/runs -name summary.json -exec cat {} \; | tee "$OUT/job-summary.json"
fi

if part methods; then
step "methods, 1.7B shape, batch 4 x 512"
timeout 240 python3 bench/methods.py --model /tmp/m1700 --batch 4 --seq 512 --steps 6 \
  --methods lora,qlora,full,ia3 2>&1 | grep -v -i "warn\|examples/s" | tee "$OUT/methods-1p7b.txt"
fi

if part speed; then
for shape in 135 1700; do
  step "training speed, m${shape} shape, batch 8 x 320 (the quickstart's): bare loop, plain TRL, studio job"
  timeout 150 python3 bench/train_speed.py --device cuda --model /tmp/m${shape} --steps 8 --warmup 3 \
    --json "$OUT/speed-m${shape}.json" 2>&1 | grep -v "FutureWarning\|warnings.warn" | tee "$OUT/speed-m${shape}.txt"
done
fi
step done
