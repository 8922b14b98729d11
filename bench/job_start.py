"""How long a training job takes from "Start" to its first training step, with workers spawned afresh against
workers forked from the studio's fork server (`studio.jobs.processes`).

Each start method runs in a process of its own (the fork server is one per process), on the same tiny random
Llama with the real SmolLM2 tokenizer and a 1-step LoRA run, `--jobs` times in a row: the first job of a fork
server also waits for the server's imports, the next ones do not. Prints seconds from submit to the first
progress event and to the end of the job, and the ratio to spawn.

    python bench/job_start.py [--jobs 3]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tiny_model(folder: Path) -> Path:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from studio.models.catalogue import resolve_model
    from studio.workspace import Workspace

    tok = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m-instruct", Workspace.open(folder / "home")))
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, pad_token_id=tok.pad_token_id,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    out = folder / "tiny"
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def measure(jobs: int) -> dict:
    """Run in the child: `jobs` 1-step runs one after another; seconds to the first step and to the end."""
    from studio.config import parse_recipe
    from studio.jobs import JobManager, processes
    from studio.training import prepare_run
    from studio.workspace import Workspace

    folder = Path(tempfile.mkdtemp(prefix="job-start-"))
    model = tiny_model(folder)
    ws = Workspace.open(folder / "home")
    manager = JobManager(ws, poll_s=0.05).start()
    first_step, whole = [], []
    try:
        for i in range(jobs):
            run_id = prepare_run(ws, parse_recipe({
                "name": f"start-{i}", "model": str(model), "data": {"dataset": "sample-format-tutor", "max_length": 64},
                "train": {"max_steps": 1, "batch_size": 2, "eval_every": 100, "save_every": 100, "precision": "fp32"}}))
            started = time.perf_counter()
            manager.submit(run_id)
            metrics = Path(ws.get_run(run_id)["run_dir"]) / "metrics.jsonl"
            while not (metrics.exists() and '"step"' in metrics.read_text()):
                row = ws.get_run(run_id)
                if row["status"] in ("failed", "cancelled", "interrupted"):
                    raise SystemExit(f"job {run_id} ended {row['status']}: {row.get('error')}")
                time.sleep(0.02)
            first_step.append(time.perf_counter() - started)
            assert manager.wait(run_id, timeout=600)["status"] == "completed"
            whole.append(time.perf_counter() - started)
    finally:
        manager.shutdown(kill_running=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)  # half a GB of converted model per run
    return {"method": processes.start_method(), "first_step": first_step, "whole": whole}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.jobs)))
        return
    results = {}
    for method in ("spawn", "forkserver"):
        env = {**os.environ, "STUDIO_START_METHOD": method, "HF_HUB_OFFLINE": "1"}
        done = subprocess.run([sys.executable, __file__, "--child", "--jobs", str(args.jobs)], env=env, cwd=ROOT,
                              capture_output=True, text=True, check=True)
        results[method] = json.loads(done.stdout.strip().splitlines()[-1])
    base = results["spawn"]
    print(f"{'start method':<12} {'1st job: to step':>16} {'later jobs: to step':>20} {'later jobs: whole':>18}")
    for method, r in results.items():
        later, whole = statistics.median(r["first_step"][1:] or r["first_step"]), statistics.median(r["whole"][1:] or r["whole"])
        ratio = statistics.median(base["first_step"][1:] or base["first_step"]) / later
        print(f"{method:<12} {r['first_step'][0]:>15.1f}s {later:>19.1f}s {whole:>17.1f}s   "
              f"later jobs reach their first step {ratio:.1f}x sooner than spawn")


if __name__ == "__main__":
    main()
