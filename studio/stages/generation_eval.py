"""Metrics of what the model writes, at every evaluation of a generative stage.

After the trainer's own evaluation (the teacher-forced eval loss over the whole validation split),
`GenerationMetrics` adds eval_perplexity (exp of the eval loss) and, for a fixed sample of the
first K validation examples, generates greedily from each prompt and scores the outputs against
the references with `studio.metrics` (eval_rouge1/2/L, eval_bleu, eval_exact_match). The scores
go into the trainer's metrics dict (so keep-best, early stopping and the progress events see
them); the prompts, references and outputs of each evaluation are appended to
`samples.jsonl` in the run folder for the run view's table. List it before the progress
callback, which reports each evaluation with everything in the metrics dict. The time spent generating is kept,
so the run summary can say what share of the wall time the metrics took.

Causal LMs: the prompt is everything before the first trained (label != -100) token and the
reference is that first trained span (the first answer), so examples without a prompt (continued
pretraining's raw text) get perplexity only. Encoder-decoders: the prompt is the source, the
reference the target text.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from transformers import TrainerCallback

from studio.metrics import perplexity, text_metrics

SAMPLES_FILE = "samples.jsonl"
DEFAULT_SAMPLES = 16
MAX_NEW_TOKENS = 256  # an answer longer than this is not read in full at an evaluation
GENERATION_BATCH = 8


@dataclass
class Sample:
    prompt_ids: list[int]
    prompt: str
    reference: str
    reference_tokens: int


def causal_samples(dataset, tokenizer, k: int) -> list[Sample]:
    """Up to `k` (prompt, first answer) samples from tokenised causal-LM examples (input_ids, labels)."""
    samples: list[Sample] = []
    for row in dataset if dataset is not None else []:
        if len(samples) >= k:
            break
        labels = row["labels"]
        start = next((i for i, label in enumerate(labels) if label != -100), None)
        if not start:  # no trained token, or no prompt before it
            continue
        end = start
        while end < len(labels) and labels[end] != -100:
            end += 1
        prompt = row["input_ids"][:start]
        samples.append(Sample(prompt, tokenizer.decode(prompt, skip_special_tokens=True),
                              tokenizer.decode(labels[start:end], skip_special_tokens=True).strip(), end - start))
    return samples


def seq2seq_samples(dataset, targets: list[str], tokenizer, k: int) -> list[Sample]:
    """Up to `k` (source, target) samples from tokenised encoder-decoder examples and their target texts."""
    rows = list(dataset.select(range(min(k, len(dataset))))) if dataset is not None else []
    return [Sample(row["input_ids"], tokenizer.decode(row["input_ids"], skip_special_tokens=True), target,
                   sum(1 for t in row["labels"] if t != -100)) for row, target in zip(rows, targets)]


def _half_precision(args):
    import torch

    return torch.bfloat16 if getattr(args, "bf16", False) else torch.float16 if getattr(args, "fp16", False) else None


def generate(model, tokenizer, prompts: list[list[int]], max_new_tokens: int, encoder_decoder: bool,
             device, half=None, done: Callable[[int], None] | None = None) -> list[str]:
    """Greedy outputs (new text only) for token-id prompts, in batches, left-padded for decoders; `half` (a
    torch dtype) runs them under the same autocast as training, twice as fast as float32 where it is native;
    `done(rows)` after each batch."""
    import contextlib

    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    outputs: list[str] = []
    was_training = model.training
    model.eval()
    device_type = torch.device(device).type
    autocast = torch.autocast(device_type, dtype=half) if half is not None else contextlib.nullcontext()
    try:
        with torch.no_grad(), autocast:
            for start in range(0, len(prompts), GENERATION_BATCH):
                batch = prompts[start:start + GENERATION_BATCH]
                width = max(len(p) for p in batch)
                # Decoders continue from the last position, so pad on the left; encoders read a padded source.
                if encoder_decoder:
                    ids = [p + [pad] * (width - len(p)) for p in batch]
                    mask = [[1] * len(p) + [0] * (width - len(p)) for p in batch]
                else:
                    ids = [[pad] * (width - len(p)) + p for p in batch]
                    mask = [[0] * (width - len(p)) + [1] * len(p) for p in batch]
                ids_t = torch.tensor(ids, device=device)
                out = model.generate(input_ids=ids_t, attention_mask=torch.tensor(mask, device=device),
                                     max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, pad_token_id=pad)
                new = out if encoder_decoder else out[:, width:]
                outputs.extend(t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True))
                if done:
                    done(len(outputs))
    finally:
        model.train(was_training)
    return outputs


def describe_generation(metrics: dict, prediction: str, reference: str) -> str:
    """One train.log line: the sample metrics and the first output beside its reference."""
    scores = "  ".join(f"{k} {v:.3f}" for k, v in metrics.items())
    return f"generation: {scores}  first output {prediction[:160]!r} (reference {reference[:160]!r})"


class GenerationMetrics(TrainerCallback):
    """Perplexity and generation metrics on a fixed validation sample, at every evaluation."""

    def __init__(self, samples: list[Sample], tokenizer, emit: Callable[[dict], None], run_dir: Path,
                 encoder_decoder: bool = False):
        self.samples, self.tokenizer, self.emit = samples, tokenizer, emit
        self.path = Path(run_dir) / SAMPLES_FILE
        self.encoder_decoder = encoder_decoder
        # As long as the longest reference (plus a little): longer output only lowers the scores, and it bounds the cost.
        self.max_new_tokens = min(MAX_NEW_TOKENS, max((s.reference_tokens for s in samples), default=1) + 8)
        self.seconds = 0.0

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        if metrics is None or "eval_loss" not in metrics:
            return
        extra = {"eval_perplexity": perplexity(metrics["eval_loss"])}
        if self.samples and model is not None:
            began = time.perf_counter()
            self.emit({"type": "phase", "phase": "generating", "done": 0, "total": len(self.samples)})
            predictions = generate(model, self.tokenizer, [s.prompt_ids for s in self.samples], self.max_new_tokens,
                                   self.encoder_decoder, args.device, half=_half_precision(args))
            scores = text_metrics(predictions, [s.reference for s in self.samples])
            extra.update({f"eval_{k}": v for k, v in scores.items()})
            self._save(state.global_step, predictions)
            self.seconds += time.perf_counter() - began
            self.emit({"type": "log", "message": describe_generation(scores, predictions[0],
                                                                     self.samples[0].reference)})
        metrics.update(extra)  # the progress callback, listed after this one, reports the whole evaluation
        if state.log_history and state.log_history[-1].get("step") == state.global_step \
                and "eval_loss" in state.log_history[-1]:
            state.log_history[-1].update(extra)  # the trainer logged its eval metrics just before this call

    def _save(self, step: int, predictions: list[str]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            for i, (sample, prediction) in enumerate(zip(self.samples, predictions)):
                f.write(json.dumps({"step": step, "index": i, "prompt": sample.prompt, "reference": sample.reference,
                                    "prediction": prediction}, ensure_ascii=False) + "\n")


def latest_samples(run_dir: Path) -> list[dict]:
    """The sample generations of the run's latest evaluation (empty before the first one)."""
    path = Path(run_dir) / SAMPLES_FILE
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    last = max((r["step"] for r in rows), default=None)
    return [r for r in rows if r["step"] == last]
