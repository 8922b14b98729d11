"""The trainer callback that turns Hugging Face Trainer events into studio progress events.

It observes only: it emits {"type": "progress", ...} dicts through `emit` (step, total_steps,
loss, lr, grad_norm, epoch, tokens_per_s, and every other number a trainer logs with the loss, such as
TRL's rewards/chosen or kl; and one event per evaluation with every eval_* metric,
including those that callbacks listed before it add, such as generation metrics), and its one way of steering training is the
documented stop flag: when `should_stop()` turns true it asks the trainer to save a checkpoint
and stop at the end of the current step.
"""
from __future__ import annotations

import time
from typing import Callable

from transformers import TrainerCallback

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


class ProgressCallback(TrainerCallback):
    def __init__(self, emit: Callable[[dict], None], should_stop: Callable[[], bool]):
        self.emit = emit
        self.should_stop = should_stop
        self.stopped = False
        self._last_time: float | None = None
        self._last_tokens = 0
        self.tokens_per_s: float | None = None
        self.train_time = 0.0
        self.train_tokens = 0

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
        if self.should_stop():
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

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        """One event per evaluation with all its metrics (callbacks listed before this one may add to them)."""
        if metrics:
            self._emit_numbers(state, metrics)
        # Evaluation time must not count as training time in tokens/s.
        self._last_time = time.perf_counter()
