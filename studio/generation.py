"""Chat generation for the playground: settings, a small model pool, and token streaming.

`GenerationSettings` carries the sampling knobs with help text in field metadata (the UI draws
its sliders and tooltips from it). `ModelPool` keeps the last few loaded (base model, run)
pairs so that a chat does not reload weights on every message; it is thread-safe and each
model generates under its own lock. `stream_chat` turns a list of chat messages into the
model's prompt (its own chat template when it has one), runs `generate` on the app's one
inference thread (`inference_thread`) with a `TextIteratorStreamer`, and yields the growing
answer; `save_exchange` keeps a conversation as a chat dataset. Loading weights is left to
`studio.models.loading.load_causal_lm`; attaching a finished run's result to its base model is
left to the run's method (`Method.load_result`). This module never imports gradio.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

from studio.errors import StudioError
from studio.settings import setting


@dataclass
class GenerationSettings:
    """How the playground picks each next word; every help text is the plain-words explanation the UI shows."""

    max_new_tokens: int = setting(128, help="The longest answer, in tokens (a token is a word or a piece of one). "
                                  "The answer may end sooner if the model finishes.", min=1, max=4096)
    do_sample: bool = setting(True, help="On: sampling, the model picks among its likely next words at random, so "
                              "answers vary. Off: greedy, it always takes the single likeliest word, so the same "
                              "question always gets the same answer.")
    temperature: float = setting(0.7, help="How adventurous sampling is: low (0.2) sticks to safe words, high (1.2) "
                                 "takes more surprising ones; 0 means greedy.", min=0.0, max=2.0)
    top_k: int = setting(50, help="Sample only among the k likeliest next words (0: no limit).", min=0, max=1000,
                         advanced=True)
    top_p: float = setting(0.9, help="Sample only among the likeliest words that together cover this share of the "
                           "probability (0.9 drops the unlikely 10%).", gt=0.0, max=1.0)
    repetition_penalty: float = setting(1.1, help="Above 1 makes words that already appeared less likely, against "
                                        "loops; 1 leaves them alone.", min=1.0, max=2.0, advanced=True)
    stop: str = setting("", help="Stop strings: the answer ends where one of these appears (one per line, "
                        "e.g. 'User:').", advanced=True)
    seed: int = setting(-1, help="A number makes sampling repeatable (the same seed gives the same answer); -1 "
                        "picks a new one each time.", min=-1, max=2**31 - 1, advanced=True)

    @property
    def stop_strings(self) -> list[str]:
        return [line for line in (self.stop or "").splitlines() if line.strip()]

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0


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


_INFERENCE: ThreadPoolExecutor | None = None
_INFERENCE_LOCK = threading.Lock()


def inference_thread() -> ThreadPoolExecutor:
    """The one thread that runs the app's model inference (playground generation, evaluations).

    PyTorch's CPU thread pool (OpenMP) belongs to the OS thread that uses it: a new thread per answer
    makes a new pool whose workers compete with the idle-spinning workers of the last one, which cost
    40% of the tokens/s on 2 cores (bench/generation.py). One long-lived thread keeps one pool."""
    global _INFERENCE
    with _INFERENCE_LOCK:
        if _INFERENCE is None:
            _INFERENCE = ThreadPoolExecutor(max_workers=1, thread_name_prefix="studio-inference")
        return _INFERENCE


def stream_chat(ws: Any, model_spec: str, run_id: str | None, messages: list[dict],
                settings: GenerationSettings | None = None, pool: ModelPool | None = None,
                stats: dict | None = None) -> Iterator[str]:
    """Yield the growing answer of `model_spec` (or of the finished run `run_id`) to `messages`.

    `stats`, when given, is filled as the answer grows: tokens, seconds, first_token_s, tokens_per_s."""

    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    settings = settings or GenerationSettings()
    pool = pool or ModelPool(ws, capacity=1)
    entry = pool.get(model_spec, run_id)
    tokenizer = entry.tokenizer
    prompt = build_prompt(tokenizer, messages)
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    prompt_len = inputs["input_ids"].shape[1]
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=300)
    stop = threading.Event()
    stats = stats if stats is not None else {}
    began = time.perf_counter()

    class _CountAndStop(StoppingCriteria):
        # Called once per new token: counts them, and lets an abandoned stream end the generation early.
        def __call__(self, input_ids, scores, **kwargs):
            now = time.perf_counter() - began
            stats.setdefault("first_token_s", now)
            stats["tokens"] = int(input_ids.shape[1] - prompt_len)
            stats["seconds"] = now
            return stop.is_set()

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    kwargs = dict(**inputs, streamer=streamer, max_new_tokens=settings.max_new_tokens, do_sample=not settings.greedy,
                  repetition_penalty=settings.repetition_penalty, pad_token_id=pad,
                  stopping_criteria=StoppingCriteriaList([_CountAndStop()]))
    if not settings.greedy:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k)
    if settings.stop_strings:
        kwargs.update(stop_strings=settings.stop_strings, tokenizer=tokenizer)
    errors: list[BaseException] = []

    def _generate() -> None:
        try:
            with entry.lock, torch.inference_mode():
                if settings.seed >= 0:
                    torch.manual_seed(settings.seed)
                entry.model.generate(**kwargs)
        except BaseException as exc:  # surfaced to the caller below, after the streamer ends
            errors.append(exc)
            streamer.end()

    done = inference_thread().submit(_generate)
    answer = ""
    try:
        for piece in streamer:
            answer = cut_at_stop(answer + piece, settings.stop_strings)
            if stats.get("seconds"):
                stats["tokens_per_s"] = stats.get("tokens", 0) / stats["seconds"]
            yield answer
    finally:
        stop.set()
        try:
            done.result(timeout=30)
        except TimeoutError:
            pass
    if errors:
        raise errors[0]
    if not answer:
        yield answer


def cut_at_stop(text: str, stops: list[str]) -> str:
    """`text` up to (not including) the first stop string in it."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut]


T = TypeVar("T")
PAGE_UPDATE_S = 0.25  # a page shows a stream at most this often: 4 redraws a second still read as typing


def throttled(items: Iterable[T], every_s: float = PAGE_UPDATE_S, clock: Callable[[], float] = time.monotonic
              ) -> Iterator[T]:
    """The items of a stream, at most one per `every_s` seconds, the last one always: an item that comes sooner
    after the one shown is held and replaced by the next. A browser redraws the whole chat for each update: with one
    core of 2 busy training, a 128-token answer of a tiny model took 15.3 s sent token by token and 0.7 s throttled
    (0.8 s and 0.6 s on a quiet machine), and the words arrive as soon either way."""
    shown_at, held, holding = None, None, False
    for item in items:
        now = clock()
        if shown_at is None or now - shown_at >= every_s:
            shown_at, holding = now, False
            yield item
        else:
            held, holding = item, True
    if holding:
        yield held


def save_exchange(ws: Any, name: str, messages: list[dict], source: str) -> str:
    """Append a conversation to `<workspace>/exchanges/<name>.jsonl` and re-import it as the studio dataset `name`
    (chat format, a new version each time), so it can be trained on or ranked later. Returns the dataset name."""
    import json

    from studio.data.store import import_file

    turns = [{"role": m["role"], "content": _text(m.get("content"))} for m in messages
             if m.get("role") in ("system", "user", "assistant") and _text(m.get("content")).strip()]
    if not any(t["role"] == "assistant" for t in turns):
        raise StudioError("There is no answer to save yet; send a message first.", field="chat",
                          key="generation.nothing_to_save")
    folder = Path(ws.home) / "exchanges"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"messages": turns, "source": source, "saved_at": time.strftime("%Y-%m-%d %H:%M:%S")},
                           ensure_ascii=False) + "\n")
    return import_file(ws, path, name)
