"""The trainer callback that turns Hugging Face Trainer events into studio progress events.

It observes only: it emits {"type": "progress", ...} dicts through `emit` (step, total_steps,
loss, lr, grad_norm, epoch, tokens_per_s, and every other number a trainer logs with the loss, such as
TRL's rewards/chosen or kl; and one event per evaluation with every eval_* metric,
including those that callbacks listed before it add, such as generation metrics), and its one way of steering training is the
documented stop flag: when `should_stop()` turns true it asks the trainer to save a checkpoint
and stop at the end of the current step.

Evaluations can be cut short (`train` wraps the trainer's eval dataloader): when the run is asked to
stop, or someone asks to skip the evaluation in progress (`SKIP_EVALUATION` file in the run folder,
written by `JobManager.skip_evaluation`), the loop ends after the batch in progress; a stop then
checkpoints right after that evaluation, and a skipped evaluation's partial scores are not charted.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from transformers import TrainerCallback

from studio.jobs.runfiles import SKIP_EVALUATION

_RENAMES = {"learning_rate": "lr"}
_LOG_KEYS = ("loss", "eval_loss", "lr", "grad_norm", "epoch",
             # the headline numbers of the preference stages (TRL's names), when a step logs them
             "rewards/margins", "rewards/accuracies", "accuracy", "margin", "reward", "kl")


def describe(event: dict) -> str:
    """One readable train.log line for a logged step, e.g. 'step 5/56  loss 2.954  lr 9.29e-04'."""
    parts = [f"step {event['step']}/{event.get('total_steps') or '?'}"]
    for key in _LOG_KEYS:
        if key in event:
            value = event[key]
            parts.append(f"{key} {value:.2e}" if key == "lr" else f"{key} {value:.4g}")
    return "  ".join(parts)


def agreed(flag: bool) -> bool:
    """`flag` as all of a run's training processes see it: true for every one when true for any. Each asks at the
    same points of the same step, so they stop (or skip an evaluation) together; one process answers its own."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    import torch

    device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
    vote = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(vote, op=dist.ReduceOp.MAX)
    return bool(vote.item())


class ProgressCallback(TrainerCallback):
    def __init__(self, emit: Callable[[dict], None], should_stop: Callable[[], bool], run_dir: Path | None = None):
        self.emit = emit
        self.should_stop = should_stop
        self.skip_file = Path(run_dir) / SKIP_EVALUATION if run_dir else None
        self.cut: str | None = None  # why the evaluation in progress ends early: "stop" or "skip"
        self.stopped = False
        self._last_time: float | None = None
        self._last_tokens = 0
        self.tokens_per_s: float | None = None
        self.train_time = 0.0
        self.train_tokens = 0
        self._eval_batches = 0
        self._phase_at = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self._last_time = time.perf_counter()
        self._last_tokens = state.num_input_tokens_seen
        self.emit({"type": "progress", "step": state.global_step, "total_steps": state.max_steps,
                   "epoch": state.epoch or 0.0})

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        tokens = state.num_input_tokens_seen
        if self._last_time is not None and now > self._last_time:
            # Rate over the last step only: resumes and evaluations do not skew it.
            self.tokens_per_s = (tokens - self._last_tokens) / (now - self._last_time)
            self.train_time += now - self._last_time
            self.train_tokens += tokens - self._last_tokens
        self._last_time, self._last_tokens = now, tokens
        self.emit({"type": "progress", "step": state.global_step, "total_steps": state.max_steps,
                   "epoch": round(state.epoch or 0.0, 4), "tokens_per_s": round(self.tokens_per_s or 0.0, 2)})
        if agreed(self.should_stop()):
            self.stopped = True
            control.should_save = True
            control.should_training_stop = True
        return control

    def _emit_numbers(self, state, values: dict) -> None:
        event = {"type": "progress", "step": state.global_step, "total_steps": state.max_steps}
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not key.startswith("train_"):
                event[_RENAMES.get(key, key)] = value
        self.emit(event)
        self.emit({"type": "log", "message": describe(event)})

    def on_log(self, args, state, control, logs=None, **kwargs):
        # Training logs only: evaluations are reported whole by on_evaluate, after every metric is in.
        if logs and "loss" in logs:
            self._emit_numbers(state, logs)

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        """Evaluation goes batch by batch: say how far (at most every 2 s), so the run reads 'evaluating 5/16'
        rather than a step that seems stuck."""
        self._eval_batches += 1
        total = len(eval_dataloader) if hasattr(eval_dataloader, "__len__") else None
        now = time.monotonic()
        if self._eval_batches == 1 or self._eval_batches == total or now - self._phase_at >= 2.0:
            self._phase_at = now
            self.emit({"type": "phase", "phase": "evaluating", "done": self._eval_batches, "total": total})

    def cut_evaluation(self) -> bool:
        """Asked after each evaluation batch: end this evaluation now? (the run must stop, or a skip was asked)"""
        if self.cut is None:
            if agreed(self.should_stop()):
                self.cut = "stop"
            elif self._take_skip():
                self.cut = "skip"
        return self.cut is not None

    def _take_skip(self) -> bool:
        if not agreed(self.skip_file is not None and self.skip_file.exists()):
            return False
        self.skip_file.unlink(missing_ok=True)
        return True

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        """One event per evaluation with all its metrics (callbacks listed before this one may add to them)."""
        batches, cut = self._eval_batches, self.cut
        self._eval_batches, self.cut = 0, None
        self._take_skip()  # a skip asked after this evaluation ended must not cut the next one
        self.emit({"type": "phase", "phase": None})
        if cut:
            self.emit({"type": "log", "message": f"Evaluation at step {state.global_step} "
                       f"{'stopped' if cut == 'stop' else 'skipped'} after {batches} batch(es); its partial "
                       "scores are not charted"})
        elif metrics:
            self._emit_numbers(state, metrics)
        if agreed(self.should_stop()):  # checkpoint now, right after the evaluation, rather than one step later
            self.stopped = True
            control.should_save = True
            control.should_training_stop = True
        # Evaluation time must not count as training time in tokens/s.
        self._last_time = time.perf_counter()
        return control


class _CutShort:
    """An eval dataloader that ends early once `cut()` says so (checked after each batch)."""

    def __init__(self, loader: Any, cut: Callable[[], bool]):
        self.loader, self.cut = loader, cut

    def __iter__(self):
        for batch in self.loader:
            yield batch
            if self.cut():
                return

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


def train(trainer: Any, callback: ProgressCallback, resume_from: Path | None) -> Any:
    """`trainer.train()` with evaluations that `callback` can cut short (see the module's docstring)."""
    original = trainer.get_eval_dataloader

    def get_eval_dataloader(*args, **kwargs):
        return _CutShort(original(*args, **kwargs), callback.cut_evaluation)

    trainer.get_eval_dataloader = get_eval_dataloader
    return trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
