"""What quantisation cost: one export's artifacts measured against the unquantised model, saved as JSON.

`build_report` loads the reference (the FP16/FP32 model) once and keeps its NLL and its top-1 next-token ids on
a held-out text (`studio.export.heldout`), then loads each artifact in turn and measures, on this device: file
size and its ratio to the reference, load time (wall time of the first `load()`), generation speed (greedy,
`max_new_tokens` forced, after one warm-up), perplexity (token-weighted over sliding windows of the model's
context or 512 tokens, half a window of fresh tokens per step), its change from the reference, how often the
artifact's likeliest next token is the reference's, and three greedy sample answers. Each model is freed before
the next one loads, so peak memory is one model. How each format loads (safetensors, bitsandbytes, GGUF, torch
quantisation) is the caller's: a `Candidate` carries a `load` closure. Rows for a table and the samples side by
side come from `report_table` / `report_samples` with locale keys for headers (`studio/locales/*/export-report.json`);
the chart is `studio.export.report_chart`. Nothing here imports gradio.
"""
from __future__ import annotations

import gc
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from studio.errors import StudioError
from studio.export.heldout import HeldOut
from studio.metrics import perplexity as perplexity_of

DEFAULT_PROMPTS = (
    "Explain in two sentences why the sky is blue.",
    "Give three short tips for keeping a houseplant alive.",
    "Write a friendly one-line reply to a colleague who fixed a bug for you.",
)
MAX_WINDOW = 512
WARMUP_TOKENS = 4
TABLE_COLUMNS = ("name", "format", "size_mb", "size_ratio", "load_s", "tokens_per_s", "perplexity",
                 "ppl_delta_pct", "top1")


@dataclass
class Candidate:
    """One model to measure: a display name, its format, its file or folder (for the size), and how to load it."""

    name: str
    format: str
    path: Path
    load: Callable[[], tuple[Any, Any]]  # -> (model, tokenizer); timed, so it should load from disk
    size_bytes: int | None = None  # the size when no file holds exactly this model (e.g. one kept in memory)

    def size(self) -> int:
        return self.size_bytes if self.size_bytes is not None else path_size(self.path)


@dataclass
class Measurement:
    """What one model did on the held-out text and the prompts; `top1` is its argmax at each scored position."""

    load_s: float
    tokens_per_s: float
    nll_sum: float
    ids: list[int]  # the held-out tokens as this model's tokenizer cut them
    top1: Any       # LongTensor, one id per scored position (positions 1..len(ids)-1)
    samples: list[str]

    @property
    def scored(self) -> int:
        return len(self.ids) - 1

    @property
    def perplexity(self) -> float:
        return perplexity_of(self.nll_sum / self.scored)


def path_size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def context_window(model) -> int:
    """The scoring window: the model's context length, at most MAX_WINDOW tokens."""
    context = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return min(MAX_WINDOW, int(context)) if context else MAX_WINDOW


def _model_device(model):
    import torch

    return next(model.parameters(), torch.empty(0)).device


def score_ids(model, ids: list[int], window: int) -> tuple[float, Any]:
    """(summed NLL, top-1 ids) over positions 1..len(ids)-1, in windows of `window` tokens that advance by half a
    window; each window scores only the tokens no earlier window scored, so every token counts once and all but
    the first half-window see at least half a window of context."""
    import torch

    device = _model_device(model)
    stride = max(1, window // 2)
    nll, top1, done, begin = 0.0, [], 1, 0  # done: the first position not yet scored
    with torch.inference_mode():
        while done < len(ids):
            end = min(begin + window, len(ids))
            chunk = torch.tensor([ids[begin:end]], device=device)
            logits = model(input_ids=chunk, use_cache=False).logits[0, done - begin - 1:end - begin - 1].float()
            targets = chunk[0, done - begin:]
            nll -= float(torch.log_softmax(logits, -1).gather(1, targets[:, None]).sum())
            top1.append(logits.argmax(-1).cpu())
            done, begin = end, begin + stride
    return nll, torch.cat(top1)


def _generate(model, tokenizer, prompt: str, max_new_tokens: int, forced: bool):
    from studio.generation import build_prompt

    text = build_prompt(tokenizer, [{"role": "user", "content": prompt}])
    has_template = bool(getattr(tokenizer, "chat_template", None))
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=not has_template).to(_model_device(model))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    extra = {"min_new_tokens": max_new_tokens} if forced else {}
    out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad, **extra)
    return out[0, inputs["input_ids"].shape[1]:]


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(load: Callable[[], tuple[Any, Any]], heldout: HeldOut, prompts: list[str], device: str = "cpu",
            max_new_tokens: int = 48) -> Measurement:
    """Load one model, time it, score the held-out text, time greedy generation, answer the prompts, free it.
    Used for the reference and for every artifact alike."""
    import torch

    start = time.perf_counter()
    model, tokenizer = load()
    load_s = time.perf_counter() - start
    try:
        if getattr(model, "hf_quantizer", None) is None and _model_device(model) != torch.device(device):
            model.to(device)  # bitsandbytes models stay where they were loaded; they cannot move
        model.eval()
        ids = tokenizer(heldout.text, add_special_tokens=False)["input_ids"][:heldout.max_tokens]
        if len(ids) < 2:
            raise StudioError(f"The held-out text from {heldout.source} is shorter than 2 tokens; give a longer "
                              "text.", field="heldout", key="export.report.short_heldout", source=heldout.source)
        nll, top1 = score_ids(model, ids, context_window(model))
        _generate(model, tokenizer, prompts[0], min(WARMUP_TOKENS, max_new_tokens), forced=True)
        where = _model_device(model)
        _sync(where)
        start = time.perf_counter()
        new = _generate(model, tokenizer, prompts[0], max_new_tokens, forced=True)
        _sync(where)
        tokens_per_s = len(new) / (time.perf_counter() - start)
        samples = [tokenizer.decode(_generate(model, tokenizer, p, max_new_tokens, forced=False),
                                    skip_special_tokens=True).strip() for p in prompts]
        return Measurement(load_s, tokens_per_s, nll, list(ids), top1, samples)
    finally:
        del model, tokenizer
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _finite(value: float | None, digits: int = 6) -> float | None:
    return round(float(value), digits) if value is not None and math.isfinite(value) else None


def _entry(candidate: Candidate, m: Measurement, ref: Measurement, ref_size: int) -> dict:
    size = candidate.size()
    ppl, ref_ppl = m.perplexity, ref.perplexity
    # Agreement compares positions, so it needs the same tokens; a re-tokenising format that cuts the text
    # differently gets none rather than a meaningless number.
    agreement = float((m.top1 == ref.top1).float().mean()) if m.ids == ref.ids else None
    return {"name": candidate.name, "format": candidate.format, "path": str(candidate.path),
            "size_bytes": size, "size_ratio": _finite(size / ref_size if ref_size else None),
            "load_s": _finite(m.load_s, 4), "tokens_per_s": _finite(m.tokens_per_s, 3),
            "perplexity": _finite(ppl), "ppl_delta": _finite(ppl - ref_ppl),
            "ppl_delta_pct": _finite(100.0 * (ppl - ref_ppl) / ref_ppl), "top1_agreement": _finite(agreement),
            "tokens": m.scored, "samples": m.samples}


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"{device} ({torch.get_num_threads()} threads)"


def build_report(reference: Candidate, artifacts: list[Candidate], heldout: HeldOut,
                 prompts: list[str] | None = None, progress: Callable[[int, int, str], None] | None = None,
                 device: str = "cpu", max_new_tokens: int = 48) -> dict:
    """Measure the reference, then each artifact; `progress(done, total, name)` after each model."""
    import torch

    prompts = list(prompts or DEFAULT_PROMPTS)
    for candidate in (reference, *artifacts):
        if candidate.size_bytes is None and not Path(candidate.path).exists():
            raise StudioError(f"The export file '{candidate.path}' ({candidate.name}) does not exist; export it "
                              "again.", field="path", key="export.report.missing_artifact",
                              path=str(candidate.path), name=candidate.name)
    total = 1 + len(artifacts)
    ref = measure(reference.load, heldout, prompts, device, max_new_tokens)
    ref_size = reference.size()
    if progress:
        progress(1, total, reference.name)
    rows = []
    for done, candidate in enumerate(artifacts, start=2):
        rows.append(_entry(candidate, measure(candidate.load, heldout, prompts, device, max_new_tokens), ref,
                           ref_size))
        if progress:
            progress(done, total, candidate.name)
    return {"reference": _entry(reference, ref, ref, ref_size), "artifacts": rows, "prompts": prompts,
            "heldout": {"source": heldout.source, "tokens": ref.scored}, "max_new_tokens": max_new_tokens,
            "device": device_name(device), "torch": torch.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def save_report(report: dict, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    return path


def load_report(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise StudioError(f"No quantisation report at '{path}'; export again with the report switched on.",
                          field="report", key="export.report.no_report", path=str(path))
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StudioError(f"The quantisation report '{path}' is damaged ({exc}); export again to rebuild it.",
                          field="report", key="export.report.unreadable", path=str(path), error=str(exc)) from None


def _no_translation(key: str) -> str:
    return key


def _percent(value: float | None, digits: int) -> float | None:
    return None if value is None else round(100.0 * value, digits)


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def report_table(report: dict, t: Callable[[str], str] = _no_translation) -> dict:
    """A gr.Dataframe value: the reference first, then each artifact; headers are `t` of the column keys
    (`export.report.col.<name>`), so the UI passes its translator and a bare call shows the keys."""
    rows = []
    for e in (report["reference"], *report["artifacts"]):
        rows.append([e["name"], e["format"], round(e["size_bytes"] / 1e6, 1), _rounded(e["size_ratio"], 3),
                     _rounded(e["load_s"], 2), _rounded(e["tokens_per_s"], 1), _rounded(e["perplexity"], 3),
                     _rounded(e["ppl_delta_pct"], 2), _percent(e["top1_agreement"], 1)])
    return {"headers": [t(f"export.report.col.{c}") for c in TABLE_COLUMNS], "data": rows}


def report_samples(report: dict, t: Callable[[str], str] = _no_translation) -> dict:
    """The sample answers side by side: one row per prompt, one column per model (reference first)."""
    models = (report["reference"], *report["artifacts"])
    rows = [[prompt, *(m["samples"][i] for m in models)] for i, prompt in enumerate(report["prompts"])]
    return {"headers": [t("export.report.col.prompt"), *(m["name"] for m in models)], "data": rows}
