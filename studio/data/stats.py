"""Dataset statistics for the Data tab: per-column stats, token lengths, truncation and epoch time.

`column_stats` describes each field of a list of canonical records (filled, empty, distinct, text
lengths, most common values of label-like fields). `token_lengths` renders and tokenises every record
exactly as training does (`templates.render_example` + `tokenize_rendered`, with no length cut) and
`length_report` turns the lengths into totals, percentiles, the share that `max_length` would cut and
histogram bins. `measured_tokens_per_s` reads the throughput of finished runs in the workspace, so
`estimate_epoch_seconds` can say how long an epoch takes. `dataset_report` combines all of it for a
studio dataset and `histogram_figure` draws the histogram with plotly. Loading datasets is the
builder's job, rendering and tokenising the templates'; this module never imports gradio.
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

from studio.errors import StudioError

DISTINCT_CAP = 10_000
"""Distinct values are counted up to this many; beyond it the count is reported as capped."""
TOP_VALUES = 5
LOW_CARDINALITY = 20
"""A field with at most this many distinct values (and values that repeat) is label-like: show its top values."""
HISTOGRAM_BINS = 30
NO_CUT = 10**9  # a max_length that never cuts, so lengths are the full rendered lengths


# --- columns ---------------------------------------------------------------------------------------------

def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "conversation"
    return "text"


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, (list, dict)) and not value


def _chars(value: Any) -> int:
    """Characters of a text, or of all turn contents of a conversation."""
    if isinstance(value, list):
        return sum(len(str(m.get("content", ""))) if isinstance(m, dict) else len(str(m)) for m in value)
    return len(value) if isinstance(value, str) else len(str(value))


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True, ensure_ascii=False) if isinstance(value, (list, dict)) else value


def column_stats(records: list[dict]) -> list[dict]:
    """One dict per field, in order of first appearance.

    Keys: name, kind (text/conversation/bool/number/mixed), non_empty, empty (missing, None, blank text
    or no turns), distinct (of the non-empty values, at most `DISTINCT_CAP`), distinct_capped,
    min_chars/mean_chars/max_chars (over the non-empty values; None when there are none) and top
    (up to 5 [value, count] pairs, most common first, only for label-like fields; else []).
    """
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    out = []
    for name in names:
        values = [record.get(name) for record in records]
        filled = [v for v in values if not _is_empty(v)]
        kinds = {_kind(v) for v in filled}
        counts: dict[Any, int] = {}
        capped = False
        for value in filled:
            key = _hashable(value)
            if key in counts:
                counts[key] += 1
            elif len(counts) < DISTINCT_CAP:
                counts[key] = 1
            else:
                capped = True
        chars = [_chars(v) for v in filled]
        # Label-like: few distinct values that repeat; a column of unique texts is not worth a top list.
        label_like = bool(counts) and not capped and (kinds == {"bool"} or (
            len(counts) <= LOW_CARDINALITY and len(counts) < len(filled) and kinds != {"conversation"}))
        top = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:TOP_VALUES] if label_like else []
        out.append({
            "name": name, "kind": kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "text"),
            "non_empty": len(filled), "empty": len(values) - len(filled),
            "distinct": len(counts), "distinct_capped": capped,
            "min_chars": min(chars) if chars else None,
            "mean_chars": round(sum(chars) / len(chars), 1) if chars else None,
            "max_chars": max(chars) if chars else None,
            "top": [[value, n] for value, n in top],
        })
    return out


# --- tokens ----------------------------------------------------------------------------------------------

class TokenCounts(NamedTuple):
    """Per example: all tokens of the rendered example and the tokens that count for the loss."""

    lengths: list[int]
    loss_tokens: list[int]


def _as_trainable(record: dict, format: str, answer: str) -> dict:
    """A preference or feedback record as the instruction record a template can render."""
    if format == "preference":
        return {"instruction": record["prompt"], "output": record[answer], "system": record.get("system", "")}
    return {"instruction": record["prompt"], "output": record["completion"]}


def token_lengths(records: list[dict], tokenizer: Any, template_name: str, data_cfg_like: Any, format: str,
                  ws: Any = None) -> TokenCounts:
    """Token and loss-token counts per record, rendered and tokenised the way training does, uncut.

    `data_cfg_like` needs system_prompt, train_on_prompt and multi_turn (a `DataConfig` will do; `seed`
    is read when present, for the FLAN phrasing). Raw text counts every token plus end-of-sequence, as
    continued pretraining learns it all; a preference pair counts its longer answer, as both are trained.
    """
    from studio.data.template_store import get_template
    from studio.data.templates import render_example, tokenize_rendered

    template = get_template(template_name, ws)
    system_prompt = getattr(data_cfg_like, "system_prompt", "") or ""
    train_on_prompt = bool(getattr(data_cfg_like, "train_on_prompt", False))
    multi_turn = getattr(data_cfg_like, "multi_turn", "all") or "all"
    seed = int(getattr(data_cfg_like, "seed", 0) or 0)

    def count(record: dict, index: int) -> tuple[int, int]:
        rendered = render_example(template, record, system_prompt=system_prompt, seed=seed, index=index)
        row = tokenize_rendered(tokenizer, rendered, NO_CUT, train_on_prompt=train_on_prompt, multi_turn=multi_turn)
        return len(row["input_ids"]), row["n_loss_tokens"]

    lengths, loss = [], []
    for index, record in enumerate(records):
        if format == "text":
            n = len(tokenizer(record["text"], add_special_tokens=False)["input_ids"])
            n += getattr(tokenizer, "eos_token_id", None) is not None
            pair = (n, n)
        elif format == "preference":
            pair = max(count(_as_trainable(record, format, "chosen"), index),
                       count(_as_trainable(record, format, "rejected"), index))
        elif format == "feedback":
            pair = count(_as_trainable(record, format, ""), index)
        else:
            pair = count(record, index)
        lengths.append(pair[0])
        loss.append(pair[1])
    return TokenCounts(lengths, loss)


def _percentile(ordered: list[int], p: float) -> int:
    """Nearest-rank percentile of a sorted list: a length some example really has."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _histogram(lengths: list[int], bins: int = HISTOGRAM_BINS) -> tuple[list[int], list[int]]:
    """Integer-width bins [edges[i], edges[i+1]) from the shortest to the longest length."""
    if not lengths:
        return [], []
    lo, hi = min(lengths), max(lengths)
    width = max(1, math.ceil((hi - lo + 1) / bins))
    n_bins = math.ceil((hi - lo + 1) / width)
    edges = [lo + i * width for i in range(n_bins + 1)]
    counts = [0] * n_bins
    for n in lengths:
        counts[(n - lo) // width] += 1
    return edges, counts


def length_report(lengths: list[int], loss_tokens: list[int], max_length: int) -> dict:
    """Totals, percentiles, truncation and histogram of token lengths for a given `max_length`.

    total_tokens counts the full examples, trained_tokens what training keeps after cutting at
    `max_length` (what an epoch costs). Histogram bin i covers [edges[i], edges[i+1]).
    """
    if max_length < 1:
        raise StudioError(f"max_length is {max_length}; use at least 1 token.", field="data.max_length",
                          key="data.stats.max_length", max_length=max_length)
    ordered = sorted(lengths)
    count = len(ordered)
    truncated = sum(n > max_length for n in ordered)
    edges, counts = _histogram(ordered)
    return {
        "count": count, "max_length": max_length,
        "total_tokens": sum(ordered), "trained_tokens": sum(min(n, max_length) for n in ordered),
        "total_loss_tokens": sum(loss_tokens),
        "p50": _percentile(ordered, 50) if count else 0, "p90": _percentile(ordered, 90) if count else 0,
        "p99": _percentile(ordered, 99) if count else 0, "max": ordered[-1] if count else 0,
        "truncated": truncated, "truncated_share": truncated / count if count else 0.0,
        "histogram": {"edges": edges, "counts": counts},
    }


# --- time per epoch --------------------------------------------------------------------------------------

def estimate_epoch_seconds(total_tokens: int, tokens_per_s: float) -> float:
    """Seconds to go once over `total_tokens` at a measured throughput."""
    if not tokens_per_s or tokens_per_s <= 0:
        raise StudioError("The training throughput must be above 0 tokens/s to estimate an epoch.",
                          field="tokens_per_s", key="data.stats.throughput")
    return total_tokens / tokens_per_s


def _run_speed(run: dict) -> float | None:
    try:
        summary = json.loads((Path(run["run_dir"]) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return None  # a run from before summaries, or one whose folder was removed
    speed = summary.get("tokens_per_s") if isinstance(summary, dict) else None
    return float(speed) if isinstance(speed, (int, float)) and speed > 0 else None


def measured_tokens_per_s(ws: Any, model: str, method: str) -> float | None:
    """Median tokens/s of the workspace's completed runs of `model` with `method` (else any method); None if none."""
    model = (model or "").strip().lower()
    same_model = [r for r in ws.list_runs()
                  if r.get("status") == "completed" and (r.get("model") or "").strip().lower() == model]
    speeds = {run["id"]: _run_speed(run) for run in same_model}
    same_method = [speeds[r["id"]] for r in same_model if r.get("method") == method and speeds[r["id"]]]
    chosen = same_method or [s for s in speeds.values() if s]
    return float(statistics.median(chosen)) if chosen else None


# --- one dataset -----------------------------------------------------------------------------------------

def dataset_report(ws: Any, name: str, tokenizer: Any, max_length: int, model: str = "smollm2-135m-instruct",
                   method: str = "lora", split: str = "train", *, template: str | None = None,
                   train_on_prompt: bool = False, multi_turn: str = "all", version: int | None = None) -> dict:
    """Column stats, token lengths and epoch time of one split of a studio dataset.

    The template and system prompt are the dataset card's unless `template` is given. `tokens_per_s`
    and `epoch_seconds` are None until a run of `model` has finished in this workspace.
    """
    from studio.data.builder import dataset_card, load_split

    card = dataset_card(ws, name, version)
    records = load_split(ws, name, split, card["version"])
    template_name = template or card.get("template") or "chat"
    data_cfg = SimpleNamespace(system_prompt=card.get("system_prompt", ""), train_on_prompt=train_on_prompt,
                               multi_turn=multi_turn, max_length=max_length, seed=0)
    counts = token_lengths(records, tokenizer, template_name, data_cfg, card["format"], ws)
    lengths = length_report(counts.lengths, counts.loss_tokens, max_length)
    speed = measured_tokens_per_s(ws, model, method)
    return {
        "name": name, "version": card["version"], "split": split, "format": card["format"],
        "template": template_name, "rows": len(records), "columns": column_stats(records),
        "lengths": lengths, "model": model, "method": method, "tokens_per_s": speed,
        "epoch_seconds": estimate_epoch_seconds(lengths["trained_tokens"], speed) if speed else None,
    }


# The chart's words; the UI passes them in the page's language (locale keys data.hist.*).
HISTOGRAM_WORDS = {
    "title": "Token lengths: {share} of {count} examples longer than {max_length} ({cut} would be cut)",
    "x": "tokens per example", "y": "examples", "bar": "{low}–{high} tokens: {n}", "line": "max_length {max_length}",
}


def histogram_figure(report: dict, words: dict[str, str] | None = None):
    """A plotly bar chart of token lengths (a `dataset_report` or a `length_report`), max_length marked; `words`
    replaces the English of HISTOGRAM_WORDS (same keys and placeholders)."""
    import plotly.graph_objects as go

    w = {**HISTOGRAM_WORDS, **(words or {})}
    lengths = report.get("lengths", report)
    edges, counts = lengths["histogram"]["edges"], lengths["histogram"]["counts"]
    max_length = lengths["max_length"]
    widths = [b - a for a, b in zip(edges, edges[1:])]
    fig = go.Figure(go.Bar(
        x=[a + w_ / 2 for a, w_ in zip(edges, widths)], y=counts, width=widths, marker_line_width=0,
        hovertext=[w["bar"].format(low=a, high=a + w_ - 1, n=n) for a, w_, n in zip(edges, widths, counts)],
        hoverinfo="text"))
    fig.add_vline(x=max_length, line_dash="dash", line_color="firebrick",
                  annotation_text=w["line"].format(max_length=max_length), annotation_position="top left")
    fig.update_layout(
        title=w["title"].format(share=f"{lengths['truncated_share']:.1%}", count=lengths["count"],
                                max_length=max_length, cut=lengths["truncated"]),
        xaxis_title=w["x"], yaxis_title=w["y"], bargap=0.05, template="plotly_white",
        margin={"l": 50, "r": 20, "t": 60, "b": 50})
    if edges:  # keep the max_length line in view even when every example is shorter
        fig.update_xaxes(range=[min(edges[0], max_length) - 1, max(edges[-1], max_length) * 1.03])
    return fig
