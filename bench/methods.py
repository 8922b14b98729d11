"""Methods benchmark: trainable share, estimated vs measured peak memory, and speed, per method.

For the embedded SmolLM2-135M at batch 4 x 256 tokens (change with --batch/--seq), each method
trains a few steps with the studio's own SFT trainer (`sft_trainer_class`: TRL's SFTTrainer with the
lean loss, `sft_config`) on random tokens, each in a fresh subprocess so its peak memory is its own: resident memory
(ru_maxrss) on a CPU; on a GPU the device memory the process held at its peak (PyTorch's peak
reservation plus what the CUDA context and libraries hold outside it). The estimate comes from
`studio.memory.estimate_training_memory`; the table prints the ratio estimate / measured, which
should stay within 0.75-1.25. QLoRA is skipped where bitsandbytes cannot load. It takes minutes
on a CPU: a benchmark, not a test. `--model` takes any causal LM folder (a GPU check can use a
folder of random weights built from a config: memory and speed do not depend on the values).

    python bench/methods.py [--model DIR] [--batch 4] [--seq 256] [--steps 3] [--methods full,lora,...]
    python bench/methods.py --one lora --batch 2 --seq 128   # one measurement, JSON on stdout
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HOME = Path("/tmp/mem-home")
MODEL = "smollm2-135m-instruct"
DEFAULT_METHODS = "full,lora,qlora,ia3,prompt_tuning,adapters"


def _gpu_used() -> int:
    """Bytes of device memory this process holds now: PyTorch's reservation plus the CUDA context."""
    import torch

    free, total = torch.cuda.mem_get_info()
    return total - free


def measure_one(method_name: str, batch: int, seq: int, steps: int, precision: str, checkpointing: bool,
                model_spec: str = MODEL) -> dict:
    """Train `steps` steps in this process and report peak RSS and tokens/s (run it in a fresh process)."""
    import torch
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from studio.config import DataConfig, Recipe, TrainConfig
    from studio.methods import METHODS
    from studio.models.loading import load_causal_lm, resolve_precision
    from studio.stages.sft import sft_config, sft_trainer_class
    from studio.workspace import Workspace

    torch.manual_seed(0)
    method = METHODS.get(method_name)
    settings = method.settings_cls()
    precision = resolve_precision(precision)
    recipe = Recipe(name="bench", model=model_spec, method=settings,
                    data=DataConfig(dataset="bench", max_length=seq, validation=0.0),
                    train=TrainConfig(batch_size=batch, max_steps=steps, precision=precision,
                                      gradient_checkpointing=checkpointing, save_every=10**6, eval_every=10**6,
                                      group_by_length=False))
    on_gpu = torch.cuda.is_available()
    model, tokenizer = load_causal_lm(model_spec, Workspace.open(HOME), precision=precision,
                                      **method.load_kwargs(settings))
    model = method.prepare(model, settings)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    ids = torch.randint(0, model.config.vocab_size, (batch * (steps + 1), seq)).tolist()
    data = Dataset.from_dict({"input_ids": ids, "labels": ids})
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    run_dir = Path(f"/tmp/mem-bench-{method_name}")
    trainer = sft_trainer_class(recipe.train)(model=model, args=sft_config(recipe, run_dir, False),
                                              train_dataset=data, processing_class=tokenizer, callbacks=[Clock()])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    # Step 1 includes warm-up (allocations, kernel choice): time the later steps.
    per_step = (stamps[-1] - stamps[0]) / max(len(stamps) - 1, 1) if len(stamps) > 1 else float("nan")
    if on_gpu:  # the peak reservation, plus what is held outside PyTorch's allocator (context, cuBLAS)
        peak = torch.cuda.max_memory_reserved() + _gpu_used() - torch.cuda.memory_reserved()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {"method": method_name, "trainable": trainable, "peak": peak, "tokens_per_s": batch * seq / per_step,
            "precision": precision, "device": "cuda" if on_gpu else "cpu"}


def run_child(method_name: str, args: argparse.Namespace) -> dict | None:
    cmd = [sys.executable, __file__, "--one", method_name, "--batch", str(args.batch), "--seq", str(args.seq),
           "--steps", str(args.steps), "--precision", args.precision, "--model", args.model]
    cmd += ["--checkpointing"] if args.checkpointing else []
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [l for l in done.stdout.splitlines() if l.startswith("{")]
    if done.returncode or not lines:
        print(f"{method_name}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--methods", default=DEFAULT_METHODS)
    parser.add_argument("--model", default=MODEL, help="an alias or a causal LM folder")
    parser.add_argument("--one", help="measure one method in this process and print JSON")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.batch, args.seq, args.steps, args.precision, args.checkpointing,
                                     args.model)))
        return

    from studio.memory import count_parameters, estimate_training_memory
    from studio.methods import METHODS
    from studio.methods.qlora import bitsandbytes_problem
    from studio.models.catalogue import resolve_model
    from studio.workspace import Workspace

    import torch

    model_dir = resolve_model(args.model, Workspace.open(HOME))
    kind = "cuda" if torch.cuda.is_available() else "cpu"
    where = f"GPU {torch.cuda.get_device_name()}, peak device memory" if kind == "cuda" else "CPU, peak RSS"
    gib = 1024 ** 3
    print(f"{args.model}, batch {args.batch} x {args.seq} tokens, precision {args.precision}, "
          f"checkpointing {args.checkpointing}, {args.steps} steps per method ({where})\n")
    print(f"{'method':<14}{'trainable':>12}{'%':>8}{'estimated GiB':>15}{'measured GiB':>14}{'est/meas':>10}"
          f"{'tokens/s':>10}")
    for name in args.methods.split(","):
        if name == "qlora" and bitsandbytes_problem():
            print(f"{name:<14}  skipped: bitsandbytes unavailable ({bitsandbytes_problem()})")
            continue
        settings = METHODS.get(name).settings_cls()
        counts = count_parameters(model_dir, name, settings)
        got = run_child(name, args)
        if got is None:
            print(f"{name:<14}  failed (see stderr)")
            continue
        est = estimate_training_memory(model_dir, name, settings, args.batch, args.seq, got["precision"],
                                       args.checkpointing, device_kind=kind, counts=counts, lean_logits=True)
        print(f"{name:<14}{counts['trainable']:>12,}{counts['percent']:>8.3f}{est['total'] / gib:>15.2f}"
              f"{got['peak'] / gib:>14.2f}{est['total'] / got['peak']:>10.2f}{got['tokens_per_s']:>10.0f}",
              flush=True)


if __name__ == "__main__":
    main()
