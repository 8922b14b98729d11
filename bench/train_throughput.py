"""Training throughput: a studio job against a plain TRL script, same model, data and settings.

(a) runs the quickstart recipe (LoRA r=16 all-linear on the embedded SmolLM2-135M, batch 8,
max length 256) as a studio job through `JobManager` (worker process, progress events,
metrics.jsonl, SQLite updates); (b) runs `bench/plain_sft.py`, a bare `SFTTrainer` script, in its
own process. Both report non-padding tokens / `trainer.train()` seconds and their peak RSS.
Prints both figures and the ratio studio / plain (target: >= 1.0).

    .venv/bin/python bench/train_throughput.py [--steps 10] [--repeats 1]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_studio(home: Path, steps: int, batch: int, max_length: int, precision: str) -> dict:
    from studio.config import load_recipe
    from studio.jobs import JobManager
    from studio.training import prepare_run
    from studio.workspace import Workspace

    ws = Workspace.open(home)
    recipe = load_recipe(ROOT / "presets" / "quickstart-sft-lora.yaml", [
        f"train.max_steps={steps}", f"train.batch_size={batch}", f"data.max_length={max_length}",
        "data.validation=0", f"train.save_every={steps * 10}", f"train.precision={precision}"])
    run_id = prepare_run(ws, recipe)
    manager = JobManager(ws)
    manager.start()
    try:
        manager.submit(run_id)
        manager.wait(run_id, timeout=3600)
    finally:
        manager.shutdown()
    run = ws.get_run(run_id)
    if run["status"] != "completed":
        raise SystemExit(f"studio run {run['status']}: {run['error']}")
    return json.loads((Path(run["run_dir"]) / "summary.json").read_text())


def run_plain(model_dir: Path, data: Path, steps: int, batch: int, max_length: int, precision: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run([sys.executable, str(ROOT / "bench" / "plain_sft.py"), "--model-dir", str(model_dir),
                               "--data", str(data), "--steps", str(steps), "--batch-size", str(batch),
                               "--max-length", str(max_length), "--precision", precision, "--out", out],
                              capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"plain script failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from studio.data.loaders import SAMPLES
    from studio.models.catalogue import resolve_model
    from studio.models.loading import resolve_precision
    from studio.workspace import Workspace

    precision = resolve_precision(a.precision)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        model_dir = resolve_model("smollm2-135m-instruct", Workspace.open(home))  # convert before timing
        results = {"studio": [], "plain": []}
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            results["studio"].append(run_studio(home, a.steps, a.batch_size, a.max_length, precision))
            studio_wall = time.perf_counter() - t0
            t0 = time.perf_counter()
            results["plain"].append(run_plain(model_dir, SAMPLES["sample-format-tutor"], a.steps, a.batch_size,
                                              a.max_length, precision))
            plain_wall = time.perf_counter() - t0
    best = {k: max(v, key=lambda r: r["tokens_per_s"]) for k, v in results.items()}
    ratio = best["studio"]["tokens_per_s"] / best["plain"]["tokens_per_s"]
    print(f"model smollm2-135m-instruct, LoRA r=16 all-linear, batch {a.batch_size} x {a.max_length} tokens, "
          f"{a.steps} steps, {precision}, {os.cpu_count()} CPU cores")
    print(f"{'':8} {'tokens/s':>10} {'train s':>8} {'peak RSS MB':>12}")
    for name in ("studio", "plain"):
        r = best[name]
        print(f"{name:8} {r['tokens_per_s']:10.1f} {r['train_runtime_s']:8.1f} {r['peak_rss_mb']:12.0f}")
    print(f"ratio studio/plain tokens/s: {ratio:.3f}  (wall incl. start-up: studio {studio_wall:.0f} s, "
          f"plain {plain_wall:.0f} s)")


if __name__ == "__main__":
    main()
