"""Playground generation speed: the studio's streaming path against a plain `model.generate`, same process.

For the embedded SmolLM2-135M-Instruct and a prompt of about 200 tokens, measures time to the
first token and tokens/s of `studio.generation.stream_chat` (chat template, a streamer thread, the
per-token counter) and of a plain greedy `model.generate` on the same prompt ids, alternating the
two `--rounds` times after a warm-up, and prints the medians and the ratio studio / plain (the
target is >= 0.9). Greedy decoding with a fixed number of new tokens keeps the work identical.
Both run on the studio's inference thread: PyTorch's CPU thread pool belongs to the OS thread
that uses it, and a second pool on the same cores would slow whichever runs (see
`studio.generation.inference_thread`).

    python bench/generation.py [--new-tokens 128] [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL = "smollm2-135m-instruct"
PROMPT = ("Here are my notes from this week's team meeting. We discussed moving the weekly report from Friday to "
          "Thursday so that managers can read it before the Friday planning call; the data team said the numbers "
          "are ready by Wednesday evening, so this works. We also talked about the new onboarding checklist: it "
          "has twelve steps, and new colleagues said the steps about access requests and laptop setup were "
          "confusing because they point to an old page. Maria will update the page and ask IT to check the links. "
          "Finally, the budget for the spring training was approved, with a limit of two courses per person. "
          "Please write a short summary of these notes as three bullet points, then one line with the decisions "
          "and one line with the open tasks and who owns each of them.")


class Timed:
    """A StoppingCriteria that records when each new token arrives."""

    def __init__(self):
        self.stamps: list[float] = []

    def __call__(self, input_ids, scores, **kwargs):
        self.stamps.append(time.perf_counter())
        return False


def plain(model, tokenizer, ids, new_tokens: int) -> tuple[float, float]:
    import torch
    from transformers import StoppingCriteriaList

    timer = Timed()
    began = time.perf_counter()
    with torch.inference_mode():
        model.generate(**ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                       pad_token_id=tokenizer.eos_token_id, stopping_criteria=StoppingCriteriaList([timer]))
    total = timer.stamps[-1] - began
    return timer.stamps[0] - began, len(timer.stamps) / total


def studio(ws, pool, new_tokens: int) -> tuple[float, float]:
    from studio.generation import GenerationSettings, stream_chat

    settings = GenerationSettings(max_new_tokens=new_tokens, do_sample=False, repetition_penalty=1.0)
    stats: dict = {}
    for _ in stream_chat(ws, MODEL, None, [{"role": "user", "content": PROMPT}], settings, pool, stats=stats):
        pass
    return stats["first_token_s"], stats["tokens"] / stats["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import torch

    from studio.generation import ModelPool, build_prompt, inference_thread
    from studio.workspace import Workspace

    torch.set_num_threads(torch.get_num_threads())
    ws = Workspace.open()
    pool = ModelPool(ws, capacity=1)
    entry = pool.get(MODEL)
    prompt = build_prompt(entry.tokenizer, [{"role": "user", "content": PROMPT}])
    ids = entry.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    print(f"{MODEL}, prompt {ids['input_ids'].shape[1]} tokens, {args.new_tokens} new tokens (greedy), "
          f"{torch.get_num_threads()} threads, {args.rounds} rounds after a warm-up")
    # Warm-up (first calls pick kernels). The plain call is forced to the full length; the studio path may end
    # at the model's end-of-turn token, which changes the count but not the per-token rate.
    thread = inference_thread()
    thread.submit(plain, entry.model, entry.tokenizer, ids, 8).result()
    studio(ws, pool, 8)
    results = {"plain generate": [], "studio stream_chat": []}
    for _ in range(args.rounds):
        results["plain generate"].append(thread.submit(plain, entry.model, entry.tokenizer, ids,
                                                       args.new_tokens).result())
        results["studio stream_chat"].append(studio(ws, pool, args.new_tokens))
    medians = {}
    for name, runs in results.items():
        first = statistics.median(r[0] for r in runs)
        rate = statistics.median(r[1] for r in runs)
        medians[name] = (first, rate)
        print(f"{name:<20} first token {first * 1000:7.1f} ms   {rate:6.1f} tokens/s")
    ratio = medians["studio stream_chat"][1] / medians["plain generate"][1]
    print(f"ratio studio / plain tokens/s: {ratio:.2f} (target >= 0.9); first token "
          f"{medians['studio stream_chat'][0] * 1000:.0f} vs {medians['plain generate'][0] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
