"""Baseline for bench/train_throughput.py: a plain TRL SFTTrainer script, no studio code at all.

Trains LoRA on the same sample data and model the studio job uses, with the same settings, and
prints one JSON line: tokens/s over `trainer.train()` and the process's peak RSS.
"""
import argparse
import json
import resource

import torch

from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

p = argparse.ArgumentParser()
p.add_argument("--model-dir", required=True)
p.add_argument("--data", required=True)
p.add_argument("--steps", type=int, default=10)
p.add_argument("--batch-size", type=int, default=8)
p.add_argument("--max-length", type=int, default=256)
p.add_argument("--precision", default="bf16")
p.add_argument("--out", required=True)
a = p.parse_args()

rows = [json.loads(line) for line in open(a.data, encoding="utf-8") if line.strip()]
data = Dataset.from_list([
    {"prompt": [{"role": "user", "content": r["instruction"] + ("\n\n" + r["input"] if r.get("input") else "")}],
     "completion": [{"role": "assistant", "content": r["output"]}]}
    for r in rows
])
tok = AutoTokenizer.from_pretrained(a.model_dir)
model = AutoModelForCausalLM.from_pretrained(a.model_dir, use_safetensors=True)
args = SFTConfig(output_dir=a.out, max_steps=a.steps, per_device_train_batch_size=a.batch_size,
                 learning_rate=2e-4, bf16=a.precision == "bf16", logging_steps=1, save_strategy="no",
                 report_to="none", disable_tqdm=True, max_length=a.max_length, seed=42,
                 include_num_input_tokens_seen="non_padding",
                 gradient_checkpointing=False, use_cpu=not torch.cuda.is_available())  # the studio's default; TRL's own default recomputes activations
peft = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok, peft_config=peft)
out = trainer.train()
runtime = out.metrics["train_runtime"]
print(json.dumps({"tokens_per_s": trainer.state.num_input_tokens_seen / runtime, "train_runtime_s": runtime,
                  "tokens_seen": trainer.state.num_input_tokens_seen,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
