"""Task formats: which fields each format needs, guessing the format from columns, rows -> canonical records.

A reader yields plain rows (`(row_number, {column: value})`); this module maps them onto one of
the registered formats (instruction, chat, text, classification, seq2seq, preference, feedback)
through a mapping canonical field -> column. `guess_format` proposes a format and mapping from
the column names and a few sample rows, `check_mapping` refuses a mapping that leaves a required
field out, `to_records` / `iter_records` turn rows into canonical records and list the rows that
cannot become one as (row, reason). Values keep their whitespace (cleaning trims); non-string
scalars become strings. Reading files is the readers' job, templates and tokenizing come later.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from studio.errors import StudioError
from studio.registry import Registry


@dataclass
class FormatSpec:
    """A task format: its required and optional canonical fields and the column names that usually hold them."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    aliases: dict[str, list[str]] = field(default_factory=dict)
    description: str = ""

    @property
    def fields(self) -> tuple[str, ...]:
        return self.required + self.optional


FORMATS: Registry[FormatSpec] = Registry("format")


def _register(spec: FormatSpec) -> FormatSpec:
    return FORMATS.register(spec.name)(spec)


_register(FormatSpec("instruction", ("instruction", "output"), ("input", "system"), {
    "instruction": ["instruction", "prompt", "question", "query"], "input": ["input", "context"],
    "output": ["output", "response", "answer", "completion"], "system": ["system", "system_prompt"]},
    "An instruction, optional input, and the answer to learn (Alpaca, Dolly)."))
_register(FormatSpec("chat", ("messages",), ("system",), {
    "messages": ["messages", "conversations", "conversation"], "system": ["system", "system_prompt"]},
    "Multi-turn conversations: role/content messages or ShareGPT from/value turns."))
_register(FormatSpec("text", ("text",), (), {"text": ["text", "content", "document", "body"]},
                     "Raw text for continued pretraining."))
_register(FormatSpec("classification", ("text", "label"), (), {
    "text": ["text", "sentence", "review"], "label": ["label", "class", "category", "sentiment"]},
    "A text and its label, from a small set of classes."))
_register(FormatSpec("seq2seq", ("source", "target"), (), {
    "source": ["source", "dialogue", "document", "article"], "target": ["target", "summary", "highlights"]},
    "A source text and the text to produce from it, e.g. dialogue -> summary."))
_register(FormatSpec("preference", ("prompt", "chosen", "rejected"), ("system",), {
    "prompt": ["prompt", "question"], "chosen": ["chosen", "preferred"],
    "rejected": ["rejected", "dispreferred"], "system": ["system", "system_prompt"]},
    "A prompt with a preferred and a rejected answer (DPO, ORPO)."))
_register(FormatSpec("feedback", ("prompt", "completion", "label"), (), {
    "prompt": ["prompt"], "completion": ["completion"], "label": ["label", "kto_label", "desirable"]},
    "A prompt, one answer and whether it is desirable (KTO)."))

TRUE_WORDS = {"true", "yes", "y", "1", "1.0", "desirable", "good", "positive", "up"}
FALSE_WORDS = {"false", "no", "n", "0", "0.0", "undesirable", "bad", "negative", "down"}
ROLE_NAMES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant",
              "bot": "assistant", "model": "assistant", "system": "system"}


@dataclass
class Guess:
    """The format the builder proposes, its mapping canonical field -> column, how sure it is and why."""

    format: str
    mapping: dict[str, str]
    confidence: float
    reason: str


def _spec(format: str | FormatSpec) -> FormatSpec:
    return format if isinstance(format, FormatSpec) else FORMATS.get(format, field="format")


def _as_messages(value: Any) -> list | None:
    """The value as a list of turns (a JSON string in a CSV cell is parsed), or None."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    return value if isinstance(value, list) else None


def _looks_like_chat(values: list) -> bool:
    turns = [_as_messages(v) for v in values if v is not None]
    return bool(turns) and all(
        t and all(isinstance(m, dict) and ({"role", "content"} <= m.keys() or {"from", "value"} <= m.keys())
                  for m in t) for t in turns)


def _bool_label(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, str)):
        word = str(value).strip().lower()
        return True if word in TRUE_WORDS else False if word in FALSE_WORDS else None
    return None


def match_columns(spec: FormatSpec, columns: list[str]) -> dict[str, str]:
    """Canonical field -> column by alias, case-insensitive, each column used once."""
    lower = {c.lower(): c for c in reversed(columns)}  # the first column wins on a case clash
    mapping, used = {}, set()
    for name in spec.fields:
        for alias in spec.aliases.get(name, [name]):
            column = lower.get(alias)
            if column is not None and column not in used:
                mapping[name] = column
                used.add(column)
                break
    return mapping


def guess_format(columns: list[str], sample_rows: list[dict]) -> Guess:
    """The most specific format whose required fields all match columns (and whose sample values fit)."""
    columns = [str(c) for c in columns]
    if not columns:
        raise StudioError("The file has no columns, so no task format fits; check that it holds a header or "
                          "JSON objects.", field="format", key="data.formats.no_columns")
    values = {c: [r.get(c) for r in sample_rows] for c in columns}
    for column in columns:  # a column of conversations decides it, whatever it is called
        if _looks_like_chat(values[column]):
            mapping = {"messages": column, **{k: v for k, v in match_columns(FORMATS.get("chat"), columns).items()
                                              if k == "system" and v != column}}
            return Guess("chat", mapping, 0.95, f"column '{column}' holds lists of chat turns")
    matches = {name: match_columns(spec, columns) for name, spec in FORMATS.items()}

    def complete(name: str) -> bool:
        return all(f in matches[name] for f in FORMATS.get(name).required)

    if complete("preference"):
        return Guess("preference", matches["preference"], 0.95, "has prompt, chosen and rejected columns")
    if complete("feedback"):
        label = matches["feedback"]["label"]
        if all(_bool_label(v) is not None for v in values[label] if v is not None):
            return Guess("feedback", matches["feedback"], 0.9, f"'{label}' holds true/false judgements")
    if complete("instruction"):
        return Guess("instruction", matches["instruction"], 0.9, "has instruction and answer columns")
    if complete("seq2seq"):
        return Guess("seq2seq", matches["seq2seq"], 0.85, "has source and target text columns")
    if complete("classification"):
        label = matches["classification"]["label"]
        distinct = {str(v) for v in values[label] if v is not None}
        if distinct and len(distinct) <= min(50, max(2, len(sample_rows) // 2)):
            return Guess("classification", matches["classification"], 0.85,
                         f"'{label}' has {len(distinct)} distinct values in the sample")
    if complete("text"):
        return Guess("text", matches["text"], 0.7, f"has a '{matches['text']['text']}' column")

    def total_length(column: str) -> int:
        return sum(len(v) for v in values[column] if isinstance(v, str))

    longest = max(columns, key=total_length)
    return Guess("text", {"text": longest}, 0.2,
                 f"no known column names; '{longest}' holds the most text, so it is taken as raw text")


def check_mapping(format: str | FormatSpec, mapping: dict[str, str], columns: list[str]) -> None:
    """Refuse a mapping with an unknown field, a missing required field, or a column the file lacks."""
    spec = _spec(format)
    have = ", ".join(map(str, columns)) or "none"
    for name in mapping:
        if name not in spec.fields:
            raise StudioError(f"'{name}' is not a field of the {spec.name} format; its fields are "
                              f"{', '.join(spec.fields)}.", field=f"map.{name}",
                              key="data.formats.unknown_field", name=name, format_name=spec.name,
                              choices=", ".join(spec.fields))
    for name in spec.fields:
        column = mapping.get(name)
        if not column:
            if name in spec.required:
                raise StudioError(f"'{name}' is not mapped: the file has columns {have}; map one of them with "
                                  f"--map {name}=COLUMN.", field=f"map.{name}",
                                  key="data.formats.unmapped", name=name, columns=have)
        elif column not in columns:
            raise StudioError(f"'{name}' is mapped to '{column}', which the file does not have: its columns are "
                              f"{have}; use --map {name}=COLUMN.", field=f"map.{name}",
                              key="data.formats.missing_column", name=name, column=column, columns=have)


class _BadRow(ValueError):
    pass


def _text(row: dict, name: str, column: str | None, required: bool = True) -> str:
    value = row.get(column) if column else None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if required:
            raise _BadRow(f"'{name}' is missing")
        return ""
    if isinstance(value, (dict, list)):
        raise _BadRow(f"'{name}' is a {type(value).__name__}, not text")
    value = value if isinstance(value, str) else str(value)
    if required and value == "":
        raise _BadRow(f"'{name}' is empty")
    return value


def _messages(value: Any, system: str) -> list[dict]:
    turns = _as_messages(value)
    if turns is None:
        raise _BadRow("'messages' is not a list of turns")
    out = []
    for i, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict):
            raise _BadRow(f"turn {i} of 'messages' is not an object with a role and content")
        role, content = (turn.get("role"), turn.get("content")) if "role" in turn else (turn.get("from"),
                                                                                       turn.get("value"))
        role = ROLE_NAMES.get(str(role).lower())
        if role is None:
            raise _BadRow(f"turn {i} of 'messages' has role {turn.get('role', turn.get('from'))!r}; use system, "
                          f"user or assistant (ShareGPT: system, human, gpt)")
        if content is None or isinstance(content, (dict, list)):
            raise _BadRow(f"turn {i} of 'messages' has no text content")
        if role == "system" and out:
            raise _BadRow(f"turn {i} of 'messages' is a system turn that is not the first")
        out.append({"role": role, "content": str(content)})
    if system and (not out or out[0]["role"] != "system"):
        out.insert(0, {"role": "system", "content": system})
    talk = [t["role"] for t in out if t["role"] != "system"]
    if not talk or talk[0] != "user":
        raise _BadRow("'messages' does not start with a user turn")
    if "assistant" not in talk:
        raise _BadRow("'messages' has no assistant turn to learn from")
    return out


def _record(spec: FormatSpec, row: dict, mapping: dict[str, str], labels: set[str] | None) -> dict:
    if not isinstance(row, dict):
        raise _BadRow(f"is a {type(row).__name__}, not a row with columns")
    if spec.name == "chat":
        if row.get(mapping.get("messages")) is None:
            raise _BadRow("'messages' is missing")
        return {"messages": _messages(row[mapping["messages"]], _text(row, "system", mapping.get("system"), False))}
    if spec.name == "feedback":
        raw = row.get(mapping.get("label"))
        judged = _bool_label(raw)
        if judged is None:
            raise _BadRow("'label' is missing" if raw is None else
                          f"'label' is {raw!r}, not true/false (or yes/no, 1/0)")
        return {"prompt": _text(row, "prompt", mapping.get("prompt")),
                "completion": _text(row, "completion", mapping.get("completion")), "label": judged}
    record = {name: _text(row, name, mapping.get(name), name in spec.required) for name in spec.fields}
    if spec.name == "preference" and record["chosen"].strip() == record["rejected"].strip():
        raise _BadRow("'chosen' and 'rejected' are the same answer")
    if spec.name == "classification" and labels is not None and record["label"] not in labels:
        raise _BadRow(f"'label' is {record['label']!r}, not one of {', '.join(sorted(labels))}")
    return record


def iter_records(rows: Iterable[tuple[int, dict]], format: str | FormatSpec, mapping: dict[str, str],
                 labels: list[str] | None = None) -> Iterator[tuple[int, dict | None, str | None]]:
    """(row, record, None) for each usable row and (row, None, reason) for each that is not; streams."""
    spec = _spec(format)
    allowed = {str(label) for label in labels} if labels is not None else None
    for number, row in rows:
        try:
            yield number, _record(spec, row, mapping, allowed), None
        except _BadRow as bad:
            yield number, None, str(bad)


def to_records(rows: Iterable[tuple[int, dict]], format: str | FormatSpec, mapping: dict[str, str],
               labels: list[str] | None = None) -> tuple[list[dict], list[tuple[int, str]]]:
    """(records, problems): canonical records for the usable rows, (row, reason) for the others."""
    records, problems = [], []
    for number, record, reason in iter_records(rows, format, mapping, labels):
        if record is None:
            problems.append((number, reason))
        else:
            records.append(record)
    return records, problems


def record_to_messages(record: dict, format: str | FormatSpec) -> list[dict]:
    """A record of a prompt/answer format as chat turns: what supervised fine-tuning trains on."""
    spec = _spec(format)
    if spec.name == "chat":
        return [dict(m) for m in record["messages"]]
    if spec.name == "instruction":
        extra = record.get("input") or ""
        prompt = f"{record['instruction']}\n\n{extra}" if extra.strip() else record["instruction"]
        system = record.get("system") or ""
        head = [{"role": "system", "content": system}] if system.strip() else []
        return head + [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}]
    pairs = {"seq2seq": ("source", "target"), "classification": ("text", "label")}
    if spec.name not in pairs:
        raise StudioError(f"The {spec.name} format has no single prompt and answer to train on as chat; use it "
                          f"with a stage made for it.", field="format", key="data.formats.not_chat",
                          format_name=spec.name)
    user, assistant = pairs[spec.name]
    return [{"role": "user", "content": record[user]}, {"role": "assistant", "content": record[assistant]}]
