"""Does the quickstart fine-tune change the model? Base vs tuned on the run's held-out prompts.

Takes a finished run of the sample dataset, regenerates its validation split (same seed, same
share as the run), answers each held-out prompt greedily with the base model and with the run's
result, and prints the share of answers in the sample's "study card" format (`format_score`)
for each, plus one example pair.

    .venv/bin/python bench/format_effect.py RUN_DIR [--max-new-tokens 160]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--max-new-tokens", type=int, default=160)
    a = ap.parse_args()

    import torch

    from studio.config import load_recipe
    from studio.data import format_score, load_examples, render_prompt, split_examples
    from studio.methods import METHODS
    from studio.models.loading import load_causal_lm
    from studio.workspace import Workspace

    recipe = load_recipe(a.run_dir / "recipe.yaml")
    ws = Workspace.open(a.run_dir.parent.parent)
    _, val = split_examples(load_examples(recipe.data.dataset, ws), recipe.data.validation, recipe.train.seed)
    prompts = [[m for m in ex["messages"] if m["role"] != "assistant"] for ex in val]
    model, tok = load_causal_lm(recipe.model, ws, precision="fp32", for_training=False)
    method = METHODS.get(recipe.method.name)

    def answers(m) -> list[str]:
        out = []
        for msgs in prompts:
            ids = tok(render_prompt(tok, msgs, recipe.data.system_prompt), return_tensors="pt",
                      add_special_tokens=False)
            with torch.no_grad():
                gen = m.generate(**ids, max_new_tokens=a.max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
            out.append(tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
        return out

    t0 = time.perf_counter()
    base = answers(model)
    tuned_model = method.load_result(model, a.run_dir / method.result_kind)
    tuned = answers(tuned_model)
    print(f"{len(prompts)} held-out prompts, greedy, {a.max_new_tokens} new tokens max "
          f"({time.perf_counter() - t0:.0f} s)")
    print(f"format score  base: {format_score(base):.2f}   tuned: {format_score(tuned):.2f}")
    print(f"\nPROMPT: {prompts[0][-1]['content']}\n--- base ---\n{base[0]}\n--- tuned ---\n{tuned[0]}")


if __name__ == "__main__":
    main()
