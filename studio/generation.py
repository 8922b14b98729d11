"""Chat generation for the playground: settings, a small model pool, and token streaming.

`GenerationSettings` carries the sampling knobs with help text in field metadata (the UI draws
its sliders and tooltips from it). `ModelPool` keeps the last few loaded (base model, run)
pairs so that a chat does not reload weights on every message; it is thread-safe and each
model generates under its own lock. `stream_chat` turns a list of chat messages into the
model's prompt (its own chat template when it has one), runs `generate` in a thread with a
`TextIteratorStreamer`, and yields the growing answer. Loading weights is left to
`studio.models.loading.load_causal_lm`; attaching a finished run's result to its base model is
left to the run's method (`Method.load_result`). This module never imports gradio.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from studio.errors import StudioError
from studio.settings import setting


@dataclass
class GenerationSettings:
    """How the playground samples an answer."""

    max_new_tokens: int = setting(128, help="Longest answer in tokens.", min=1, max=4096)
    temperature: float = setting(0.7, help="Randomness: 0 always picks the likeliest token, higher is more varied.",
                                 min=0.0, max=2.0)
    top_p: float = setting(0.9, help="Sample only from the smallest set of tokens whose probabilities add up to this.",
                           gt=0.0, max=1.0)
    repetition_penalty: float = setting(1.1, help="Above 1 discourages repeating the same words.", min=1.0, max=2.0,
                                        advanced=True)


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    lock: threading.Lock


Loader = Callable[[str, Any], tuple[Any, Any]]


def default_loader(spec: str, ws: Any) -> tuple[Any, Any]:
    """Load a base model for inference through the model layer (embedded alias, hub id or path)."""
    from studio.models.loading import load_causal_lm

    loaded = load_causal_lm(spec, ws, precision="fp32", for_training=False)
    if isinstance(loaded, tuple):
        return loaded[0], loaded[1]
    return loaded.model, loaded.tokenizer


def _run_target(ws: Any, run_id: str) -> tuple[str, str, Path]:
    """(base model spec, method name, result dir) of a finished run, or a StudioError."""
    run = ws.get_run(run_id)
    if run is None:
        raise StudioError(f"Run '{run_id}' does not exist; pick a run from the list.", field="run",
                          key="generation.no_run", run_id=run_id)
    if not run.get("result_dir") or not Path(run["result_dir"]).exists():
        raise StudioError(f"Run '{run.get('name', run_id)}' has no saved result yet; pick a completed run.",
                          field="run", key="generation.no_result", name=run.get("name", run_id))
    return run["model"], run["method"], Path(run["result_dir"])


class ModelPool:
    """Keeps up to `capacity` loaded models keyed by (base spec, run id); the oldest is dropped first."""

    def __init__(self, ws: Any, capacity: int = 2, loader: Loader | None = None):
        self.ws = ws
        self.capacity = capacity
        self.loader = loader or default_loader
        self._models: OrderedDict[tuple[str, str | None], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model_spec: str, run_id: str | None = None) -> LoadedModel:
        if run_id:
            model_spec, method_name, result_dir = _run_target(self.ws, run_id)
        key = (model_spec, run_id or None)
        # Loading under the pool lock: two users asking for the same model load it once.
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            model, tokenizer = self.loader(model_spec, self.ws)
            if run_id:
                from studio.methods import METHODS

                model = METHODS.get(method_name, field="method").load_result(model, result_dir)
            model.eval()
            entry = LoadedModel(model, tokenizer, threading.Lock())
            self._models[key] = entry
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
            return entry

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


def _text(content: Any) -> str:
    """Plain text of a message's content (a string, or a list of parts as chat widgets send it)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text", ""))
    if isinstance(content, (list, tuple)):
        return "".join(_text(part) for part in content)
    return "" if content is None else str(content)


def build_prompt(tokenizer: Any, messages: list[dict]) -> str:
    """The model's prompt for `messages`: its chat template, or a plain 'User:/Assistant:' layout."""
    clean = [{"role": m["role"], "content": _text(m.get("content"))} for m in messages
             if m.get("role") in ("system", "user", "assistant")]
    if not clean or clean[-1]["role"] != "user":
        raise StudioError("The conversation must end with a user message; type a message first.", field="message",
                          key="generation.last_not_user")
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(clean, tokenize=False, add_generation_prompt=True)
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in clean]
    return "\n".join(lines) + "\nAssistant:"


def stream_chat(ws: Any, model_spec: str, run_id: str | None, messages: list[dict],
                settings: GenerationSettings | None = None, pool: ModelPool | None = None) -> Iterator[str]:
    """Yield the growing answer of `model_spec` (or of the finished run `run_id`) to `messages`."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    settings = settings or GenerationSettings()
    pool = pool or ModelPool(ws, capacity=1)
    entry = pool.get(model_spec, run_id)
    tokenizer = entry.tokenizer
    prompt = build_prompt(tokenizer, messages)
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=300)
    stop = threading.Event()

    class _StopWhenAsked(StoppingCriteria):
        # Lets an abandoned stream (the user closed the page) end the generation thread early.
        def __call__(self, input_ids, scores, **kwargs):
            return stop.is_set()

    sample = settings.temperature > 0
    kwargs = dict(**inputs, streamer=streamer, max_new_tokens=settings.max_new_tokens, do_sample=sample,
                  repetition_penalty=settings.repetition_penalty,
                  stopping_criteria=StoppingCriteriaList([_StopWhenAsked()]),
                  pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                  else tokenizer.eos_token_id)
    if sample:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
    errors: list[BaseException] = []

    def _generate() -> None:
        try:
            with entry.lock, torch.inference_mode():
                entry.model.generate(**kwargs)
        except BaseException as exc:  # surfaced to the caller below, after the streamer ends
            errors.append(exc)
            streamer.end()

    thread = threading.Thread(target=_generate, name="studio-generate", daemon=True)
    thread.start()
    answer = ""
    try:
        for piece in streamer:
            answer += piece
            yield answer
    finally:
        stop.set()
        thread.join(timeout=30)
    if errors:
        raise errors[0]
    if not answer:
        yield answer
