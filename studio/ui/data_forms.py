"""The Data tab's pure half: widget values -> builder requests, builder results -> what the widgets show.

Nothing here imports gradio or calls the engine, so every function is testable with plain values:
`mapping_slots` lays a format's fields over the fixed row of mapping dropdowns, `guess_mapping`
proposes columns for a format the user picked, `mapping_from_slots` / `import_request` gather the
widgets back into an `ImportRequest`, `preview_records` + `highlight` turn the first rows into the
(text, label) pairs of the loss preview, and the `*_rows` helpers shape tables. Widgets and events
live in `studio.ui.data_tab`; reading, cleaning and saving live in `studio.data.builder`.
"""
from __future__ import annotations

import json
import re
import typing
from dataclasses import fields
from typing import Any

from studio.data.builder import ImportRequest
from studio.data.cleaning import CleaningConfig, SplitConfig
from studio.data.formats import FORMATS, match_columns, to_records
from studio.data.templates import preview_spans, render_example

MAX_FIELDS = max(len(spec.fields) for _, spec in FORMATS.items())
PREVIEW_RECORDS = 3
NONE_COLUMN = ""


def mapping_slots(fmt: str, columns: list[str], mapping: dict[str, str]) -> list[dict]:
    """One dict per mapping dropdown (MAX_FIELDS of them): the field it maps, its choices and value, or hidden."""
    names = FORMATS.get(fmt, field="format").fields
    slots = []
    for i in range(MAX_FIELDS):
        if i < len(names):
            value = mapping.get(names[i]) or NONE_COLUMN
            slots.append({"field": names[i], "choices": [NONE_COLUMN, *columns],
                          "value": value if value in columns else NONE_COLUMN, "visible": True})
        else:
            slots.append({"field": "", "choices": [NONE_COLUMN], "value": NONE_COLUMN, "visible": False})
    return slots


def guess_mapping(fmt: str, columns: list[str], guess: dict | None) -> dict[str, str]:
    """The builder's guessed mapping when `fmt` is its guess, else each field matched to a column by alias."""
    if guess and guess.get("format") == fmt:
        return dict(guess.get("mapping") or {})
    return match_columns(FORMATS.get(fmt, field="format"), columns)


def mapping_from_slots(fmt: str, values: list[str | None]) -> dict[str, str]:
    """{field: column} from the dropdowns' values in slot order; unmapped ("") fields are left out."""
    names = FORMATS.get(fmt, field="format").fields
    return {name: value for name, value in zip(names, values) if value}


def _typed(cls: type, values: dict) -> Any:
    """`cls(**values)` with numbers from gr.Number (floats) cast to the field's int type."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):
        if f.name not in values or values[f.name] is None:
            continue
        value = values[f.name]
        if hints[f.name] is int and isinstance(value, float):
            value = int(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def import_request(source: str, name: str, fmt: str, slot_values: list[str | None], template: str,
                   system_prompt: str, cleaning: dict, split: dict, heldout: dict | None = None) -> ImportRequest:
    """The ImportRequest the widgets describe; CleaningConfig/SplitConfig check their own values. `heldout` maps
    'validation' / 'test' to a separate file that becomes that split whole."""
    return ImportRequest(source=str(source), name=(name or "").strip(), format=fmt or "auto",
                         mapping=mapping_from_slots(fmt, slot_values) if fmt and fmt != "auto" else {},
                         template=template or "chat", system_prompt=system_prompt or "",
                         cleaning=_typed(CleaningConfig, cleaning), split=_typed(SplitConfig, split),
                         heldout={k: str(v) for k, v in (heldout or {}).items()})


def preview_records(rows: list[dict], fmt: str, mapping: dict[str, str], n: int = PREVIEW_RECORDS
                    ) -> tuple[list[dict], list[tuple[int, str]]]:
    """The first `n` usable records of the preview rows (numbered from 1) and the problems met on the way."""
    records, problems = to_records(list(enumerate(rows, start=1)), fmt, mapping)
    return records[:n], problems


_TURN = re.compile(r"<\|im_start\|>(system|user|assistant)\n")
_MARKERS = re.compile(r"<\|im_end\|>|<\|endoftext\|>|<\|im_start\|>")


def readable(text: str, roles: dict[str, str] | None = None) -> str:
    """A rendered example with the chat template's markers (`<|im_start|>user`, `<|im_end|>`) as plain role
    headings ('User: '), for people; the tokens the model trains on are unchanged."""
    roles = roles or {}
    text = _TURN.sub(lambda m: f"{roles.get(m.group(1), m.group(1).capitalize())}: ", text)
    return _MARKERS.sub("", text)


def highlight(tokenizer: Any, template: Any, records: list[dict], system_prompt: str, train_on_prompt: bool,
              loss_label: str, roles: dict[str, str] | None = None) -> list[tuple[str, str | None]]:
    """HighlightedText pairs for `records`: text that counts for the loss gets `loss_label`, the rest None. Chat
    markers read as role headings (`roles` words them: {'user': 'User', ...})."""
    out: list[tuple[str, str | None]] = []
    for i, record in enumerate(records):
        if i:
            out.append(("\n\n────────\n\n", None))
        rendered = render_example(template, record, system_prompt=system_prompt, index=i)
        for text, counts in preview_spans(tokenizer, rendered, train_on_prompt=train_on_prompt):
            shown = readable(text, roles)
            if shown:
                out.append((shown, loss_label if counts else None))
    return out


def default_system(tokenizer: Any, template: Any, records: list[dict], system_prompt: str) -> str | None:
    """The system prompt the model's chat template adds on its own to an example without one (SmolLM2's names
    itself), or None: the preview says so, since the model trains on it."""
    if system_prompt or not records or getattr(template, "kind", None) != "chat":
        return None
    messages = render_example(template, records[0], system_prompt="", index=0)["messages"]
    if any(m.get("role") == "system" for m in messages) or not hasattr(tokenizer, "apply_chat_template"):
        return None
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception:  # a tokenizer without a chat template: nothing is added
        return None
    match = re.match(r"\s*<\|im_start\|>system\n(.*?)<\|im_end\|>", text if isinstance(text, str) else "", re.S)
    return match.group(1).strip() or None if match else None


def _cell(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else value


def table_rows(columns: list[str], rows: list[dict]) -> list[list[Any]]:
    """Preview rows as a list of lists in column order, nested values shown as JSON."""
    return [[_cell(row.get(c)) if isinstance(row, dict) else _cell(row) for c in columns] for row in rows]


def dataset_rows(datasets: list[dict]) -> list[list[Any]]:
    """One line per studio dataset: name, version, format, train/validation/test rows, template, skipped."""
    return [[d["name"], d["version"], d["format"], d["rows"].get("train", 0), d["rows"].get("validation", 0),
             d["rows"].get("test", 0), d["template"], d["skipped"]] for d in datasets]


def source_facts(info: dict, problems: list[tuple[int, str]], n_rows: int) -> dict[str, Any]:
    """The facts shown under the preview: encoding, delimiter, rows read and problems met so far."""
    return {"encoding": info.get("encoding") or "n/a", "delimiter": repr(info["delimiter"]) if info.get("delimiter")
            else "n/a", "rows": n_rows, "problems": len(problems)}


def stats_note(texts: Any, lang: str, report: dict) -> str:
    """One line under the histogram: totals, truncation, and the epoch time estimate when one exists."""
    lengths = report["lengths"]
    note = texts.t(lang, "data.stats.summary", rows=lengths["count"], tokens=f"{lengths['total_tokens']:,}",
                   loss=f"{lengths['total_loss_tokens']:,}", p50=lengths["p50"], p90=lengths["p90"],
                   share=f"{100 * lengths['truncated_share']:.1f}", max_length=lengths["max_length"])
    if report.get("epoch_seconds"):
        minutes = report["epoch_seconds"] / 60
        note += " " + texts.t(lang, "data.stats.epoch", minutes=f"{minutes:.1f}", rate=f"{report['tokens_per_s']:.0f}")
    else:
        note += " " + texts.t(lang, "data.stats.no_epoch")
    return note


COLUMN_FIELDS = ("column", "kind", "filled", "empty", "distinct", "chars", "top")


def column_rows(report: dict, texts: Any, lang: str) -> dict:
    """Per-column stats as a table in `lang`: name, kind, filled, empty, distinct, characters, top values."""
    rows = [[c["name"], texts.t(lang, f"data.kind.{c['kind']}"), c["non_empty"], c["empty"], c["distinct"],
             f"{c.get('min_chars', '')}-{c.get('max_chars', '')}" if c.get("max_chars") is not None else "",
             ", ".join(f"{v} ({n})" for v, n in c.get("top", []))] for c in report["columns"]]
    return {"headers": [texts.t(lang, f"data.col.{f}") for f in COLUMN_FIELDS], "data": rows}


def histogram_words(texts: Any, lang: str) -> dict[str, str]:
    """The length histogram's words in `lang` (`studio.data.stats.HISTOGRAM_WORDS`)."""
    from studio.data.stats import HISTOGRAM_WORDS

    return {k: texts.t(lang, f"data.hist.{k}") for k in HISTOGRAM_WORDS}
