"""How much of each task a merge of two LoRA runs keeps, on the embedded SmolLM2-135M-Instruct.

Trains two LoRA runs from the presets on different tasks (`quickstart-sft-lora`: the format tutor; `extract-json-sft`:
orders to JSON), `--steps` steps each, in a temp workspace; merges them with each `--combinations` (weights 1 and 1:
each task keeps its full change where the other does not pull against it); then scores every source task before (its
own run) and after (the merged run) on `--limit` rows of its test split, greedy, `--max-new-tokens`, ROUGE-L, through
`studio.merge_runs.merge_scores`. Prints one line per task and combination with the share kept (goal >= 90%).
Nothing is asserted. Run it alone: it trains and generates on every core.

    .venv/bin/python bench/merge.py [--steps 40] [--limit 16] [--max-new-tokens 96] [--combinations ties,linear,cat]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ("quickstart-sft-lora.yaml", "extract-json-sft.yaml")


def train(ws, preset: str, steps: int) -> str:
    from studio.config import load_recipe
    from studio.training import execute, prepare_run

    recipe = load_recipe(ROOT / "presets" / preset, [f"train.max_steps={steps}", "train.eval_samples=0"])
    run_id = prepare_run(ws, recipe)
    run_dir = Path(ws.get_run(run_id)["run_dir"])
    began = time.perf_counter()
    result = execute(run_dir, ws.home, None, lambda event: None, lambda: False)
    ws.update_run(run_id, status="completed", result_dir=result["result_dir"])  # what the job manager does
    print(f"trained {preset} ({steps} steps) in {time.perf_counter() - began:.0f} s: final loss "
          f"{result['final_loss']:.3f}", flush=True)
    return run_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--combinations", default="ties,linear,cat")
    args = parser.parse_args()
    from studio.merge_runs import merge_runs, merge_scores
    from studio.workspace import Workspace

    with tempfile.TemporaryDirectory() as home:
        ws = Workspace.open(home)
        runs = [train(ws, preset, args.steps) for preset in PRESETS]
        for combination in args.combinations.split(","):
            began = time.perf_counter()
            merged = merge_runs(ws, runs, combination, [1.0, 1.0], 0.5)
            for row in merge_scores(ws, merged, limit=args.limit, max_new_tokens=args.max_new_tokens):
                print(f"{combination:<7} {row['task']:<22} ROUGE-L {row['before']:.3f} -> {row['after']:.3f}  "
                      f"kept {100 * row['kept']:.0f}%  ({row['n']} rows)", flush=True)
            print(f"{combination}: merge and scoring {time.perf_counter() - began:.0f} s", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
