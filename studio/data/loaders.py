"""Read training examples from a built-in sample, a studio dataset or a JSON/JSONL file, as chat messages.

Every loader returns the same shape, `{"messages": [{"role", "content"}, ...]}`, whatever the file
held: Alpaca-like rows (`instruction`, optional `input` appended after a blank line, `output`,
optional `system`) or chat rows (`messages` with system/user/assistant turns, multi-turn allowed).
A file with a few bad rows still loads: they are skipped and listed in `Examples.skipped` as
(line, reason) so the UI and CLI can say what was left out (for a JSON array, "line" is the item's
position, counted from 1); a file with no usable row is refused
with a `StudioError` on 'data.dataset'. `split_examples` holds out the validation share. Turning
messages into tokens is `studio.data.chat`'s job; column mapping and format detection for arbitrary
files come in later issues.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from studio.data.sample import SAMPLE_NAME, SAMPLE_PATH
from studio.errors import StudioError
from studio.paths import user_path

FIELD = "data.dataset"
# Built-in samples (EN+ES, written for this project; the last four by `assets/make_samples.py`), one per preset task.
SAMPLES: dict[str, Path] = {SAMPLE_NAME: SAMPLE_PATH,
                            "sample-sentiment": SAMPLE_PATH.with_name("sample-sentiment.jsonl"),  # text/label
                            "sample-extract-json": SAMPLE_PATH.with_name("sample-extract-json.jsonl"),  # order -> JSON
                            "sample-summaries": SAMPLE_PATH.with_name("sample-summaries.jsonl"),  # text -> one sentence
                            "sample-preferences": SAMPLE_PATH.with_name("sample-preferences.jsonl"),  # chosen/rejected
                            "sample-documents": SAMPLE_PATH.with_name("sample-documents.txt")}  # raw text for CPT
ROLES = ("system", "user", "assistant")


class Examples(list):
    """A list of chat examples that also remembers where they came from and which rows were skipped."""

    def __init__(self, items=(), source: Path | None = None, skipped: list[tuple[int, str]] | None = None):
        super().__init__(items)
        self.source = source
        self.skipped: list[tuple[int, str]] = skipped or []


class _BadRow(ValueError):
    def __init__(self, reason: str, columns: list[str] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.columns = columns  # set when the row lacks the needed columns


def resolve_dataset(spec: str, ws: Any = None) -> Path:
    """The file behind `spec`: a built-in sample name or a path (studio datasets are `builder`'s)."""
    spec = (spec or "").strip()
    if not spec:
        raise StudioError(f"'{FIELD}' is empty; give a file path or a built-in sample such as '{SAMPLE_NAME}'.",
                          field=FIELD, key="data.loaders.empty", sample=SAMPLE_NAME)
    if spec in SAMPLES:
        return SAMPLES[spec]
    path = user_path(spec, FIELD)
    if path.is_dir():
        raise StudioError(f"'{FIELD}' points to the folder '{path}'; give a .jsonl or .json file inside it.",
                          field=FIELD, key="data.loaders.folder", path=str(path))
    if not path.is_file():
        raise StudioError(f"'{FIELD}' is '{spec}', which is neither an existing file nor a built-in sample "
                          f"({', '.join(SAMPLES)}); check the path.", field=FIELD, key="data.loaders.not_found",
                          value=spec, samples=", ".join(SAMPLES))
    return path


def _chat_row(row: Any) -> list[dict]:
    if not isinstance(row, dict):
        raise _BadRow(f"is a JSON {type(row).__name__}, not an object with columns")
    if "messages" in row:
        return _check_messages(row["messages"])
    if "instruction" in row and "output" in row:
        instruction, extra, output = row["instruction"], row.get("input") or "", row["output"]
        system = row.get("system") or ""
        if not all(isinstance(v, str) for v in (instruction, extra, output, system)):
            raise _BadRow("has 'instruction'/'input'/'output'/'system' values that are not text")
        if not instruction.strip() or not output.strip():
            raise _BadRow("has an empty 'instruction' or 'output'")
        prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
        return ([{"role": "system", "content": system}] if system.strip() else []) + messages
    raise _BadRow("lacks the needed columns", columns=sorted(map(str, row)))


def _check_messages(messages: Any) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise _BadRow("has 'messages' that is not a non-empty list of turns")
    out = []
    for i, turn in enumerate(messages):
        if not isinstance(turn, dict) or turn.get("role") not in ROLES or not isinstance(turn.get("content"), str):
            raise _BadRow(f"turn {i + 1} of 'messages' needs a 'role' (system, user or assistant) and a text "
                          f"'content'")
        if turn["role"] == "system" and i != 0:
            raise _BadRow("has a system turn that is not the first turn")
        out.append({"role": turn["role"], "content": turn["content"]})
    talk = [t["role"] for t in out if t["role"] != "system"]
    if not talk or talk[0] != "user":
        raise _BadRow("has 'messages' that do not start with a user turn")
    if "assistant" not in talk:
        raise _BadRow("has no assistant turn to learn from")
    return out


def _read_rows(path: Path) -> tuple[list[tuple[int, Any]], list[tuple[int, str]]]:
    """(line, parsed row) pairs and (line, reason) for lines that are not JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise StudioError(f"'{FIELD}' file '{path.name}' is not UTF-8 text; save it as UTF-8 JSON lines.",
                          field=FIELD, key="data.loaders.not_utf8", file=path.name) from None
    if not text.strip():
        raise StudioError(f"'{FIELD}' file '{path.name}' is empty; add one JSON object per line.", field=FIELD,
                          key="data.loaders.empty_file", file=path.name)
    if text.lstrip().startswith("["):  # a JSON array (a .json file)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StudioError(f"'{FIELD}' file '{path.name}' is not valid JSON at line {exc.lineno} ({exc.msg}); "
                              f"fix it or save one object per line.", field=FIELD, key="data.loaders.bad_json",
                              file=path.name, line=exc.lineno, error=exc.msg) from None
        return list(enumerate(data, start=1)), []
    rows, bad = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            bad.append((number, f"is not valid JSON ({exc.msg})"))
    return rows, bad


def load_examples(spec: str, ws: Any = None) -> Examples:
    """Chat examples from `spec`; rows that cannot be used are skipped and listed in `.skipped`."""
    path = resolve_dataset(spec, ws)
    rows, skipped = _read_rows(path)
    examples, columns_seen, lacking = [], set(), 0
    for number, row in rows:
        try:
            examples.append({"messages": _chat_row(row)})
        except _BadRow as bad:
            skipped.append((number, bad.reason))
            if bad.columns is not None:
                lacking += 1
                columns_seen.update(bad.columns)
    skipped.sort()
    if not examples:
        if lacking:
            have = ", ".join(f"'{c}'" for c in sorted(columns_seen)[:12]) or "no columns"
            raise StudioError(f"'{FIELD}' file '{path.name}' has {have} but needs 'instruction' and 'output' "
                              f"(plus optional 'input', 'system') or 'messages'; rename its columns.", field=FIELD,
                              key="data.loaders.wrong_columns", file=path.name, columns=have)
        line, reason = skipped[0]
        raise StudioError(f"'{FIELD}' file '{path.name}' has no usable row: line {line} {reason}; fix the file "
                          f"so each line is one JSON object.", field=FIELD, key="data.loaders.no_usable_row",
                          file=path.name, line=line)
    return Examples(examples, source=path, skipped=skipped)


def split_examples(examples: list, validation: float, seed: int) -> tuple[list, list]:
    """(train, validation) with a share `validation` held out at random (seeded); order within each is kept.

    validation 0 gives no held-out example; a positive share keeps at least one held-out example as
    long as there are two or more examples, and always leaves at least one for training.
    """
    n = len(examples)
    if validation <= 0 or n < 2:
        return list(examples), []
    n_val = min(max(1, round(n * validation)), n - 1)
    held = set(random.Random(seed).sample(range(n), n_val))
    train = [e for i, e in enumerate(examples) if i not in held]
    val = [e for i, e in enumerate(examples) if i in held]
    return train, val
