"""Where the prompts of a ranking task set come from, and which models may answer them.

`load_prompts` reads prompts as `{"prompt", "system"}` from typed text (one prompt per line), a
studio dataset or built-in sample (the prompt-bearing field of its format: an instruction with its
input, a preference or feedback prompt, a seq2seq source, a text; the first user turn of a chat;
or any column the caller names), or the exchanges saved from the playground and the RAG chat
(`<workspace>/exchanges/<name>.jsonl`, first user turn and system prompt of each conversation);
`read_prompts_file` reads a .txt or .jsonl file of prompts for the command line. `resolve_target`
turns a model alias, hub id, folder or `run:<id>` into what `studio.generation` loads, refusing runs
that cannot write answers. Generating the answers is the service's job.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from studio.errors import StudioError
from studio.evaluation import Target
from studio.models.refs import has_result, parse, run_spec

SOURCES = ("typed", "dataset", "exchanges")
# Stages whose result is a causal LM that writes answers (classify, seq2seq and reward models do not).
# The field that holds the prompt, per stored format.
PROMPT_FIELDS = {"instruction": "instruction", "preference": "prompt", "feedback": "prompt", "seq2seq": "source",
                 "classification": "text", "text": "text", "chat": "messages"}


def exchanges_dir(ws: Any) -> Path:
    return Path(ws.home) / "exchanges"


def prompt_sources(ws: Any) -> dict[str, list[str]]:
    """{"datasets": samples and studio datasets, "exchanges": names of the saved exchange files}."""
    from studio.data.store import dataset_names

    folder = exchanges_dir(ws)
    exchanges = sorted(p.stem for p in folder.glob("*.jsonl")) if folder.is_dir() else []
    return {"datasets": dataset_names(ws), "exchanges": exchanges}


def _first_user(messages: Any) -> tuple[str, str]:
    """(first user turn, system prompt) of a conversation given as role/content or ShareGPT turns."""
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)
        except json.JSONDecodeError:
            return messages, ""
    user = system = ""
    for turn in messages if isinstance(messages, list) else []:
        if not isinstance(turn, dict):
            continue
        role = str(turn.get("role", turn.get("from", ""))).lower()
        content = turn.get("content", turn.get("value"))
        if role == "system" and not system and isinstance(content, str):
            system = content
        elif role in ("user", "human") and isinstance(content, str):
            user = content
            break
    return user, system


def _record_prompt(record: dict, fmt: str, column: str | None) -> tuple[str, str]:
    """(prompt, system) of one stored record; `column` names the field to use instead of the format's own."""
    system = record.get("system") or ""
    if column is None and fmt == "instruction":
        extra = record.get("input") or ""
        text = f"{record['instruction']}\n\n{extra}" if str(extra).strip() else record["instruction"]
        return str(text), system
    value = record.get(column or PROMPT_FIELDS.get(fmt, "messages" if "messages" in record else "text"))
    if isinstance(value, list) or (column is None and fmt == "chat"):
        user, chat_system = _first_user(value)
        return user, system or chat_system
    return ("" if value is None else str(value)), system


def _dataset_records(ws: Any, name: str) -> tuple[list[dict], str, dict[str, str]]:
    """(every record of every split, format, mapping canonical field -> original column) of a dataset or sample."""
    from studio.data.builder import SPLITS, dataset_card, load_split
    from studio.data.examples import is_studio_dataset
    from studio.data.loaders import SAMPLES, load_examples
    from studio.data.store import dataset_names

    if is_studio_dataset(ws, name):
        card = dataset_card(ws, name)
        records = [r for split in SPLITS for r in load_split(ws, name, split)]
        return records, card["format"], dict(card.get("mapping") or {})
    if name in SAMPLES:
        return list(load_examples(name, ws)), "chat", {}
    names = dataset_names(ws)
    raise StudioError(f"There is no dataset '{name}'; pick one of {', '.join(names)}.", field="prefs.prompts",
                      key="prefs.prompts.unknown_dataset", name=name, names=", ".join(names))


def _dataset_prompts(ws: Any, name: str, column: str | None) -> list[dict]:
    records, fmt, mapping = _dataset_records(ws, name)
    if column:
        by_original = {original: field for field, original in mapping.items()}
        fields = sorted({f for r in records[:50] for f in r})
        field = column if column in fields else by_original.get(column)
        if field is None:
            raise StudioError(f"Dataset '{name}' has no column '{column}'; its columns are {', '.join(fields)}.",
                              field="prefs.column", key="prefs.prompts.unknown_column", name=name, column=column,
                              columns=", ".join(fields))
        column = field
    return [{"prompt": p, "system": s} for p, s in (_record_prompt(r, fmt, column) for r in records)]


def _exchange_prompts(ws: Any, name: str) -> list[dict]:
    stem = Path(name or "").name.removesuffix(".jsonl")
    path = exchanges_dir(ws) / f"{stem}.jsonl"
    if not stem or not path.is_file():
        saved = ", ".join(prompt_sources(ws)["exchanges"]) or "none yet"
        raise StudioError(f"There are no saved exchanges named '{name}'; saved ones: {saved}. Save a conversation "
                          "from the Playground or the RAG chat first.", field="prefs.prompts",
                          key="prefs.prompts.no_exchanges", name=name, saved=saved)
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue  # a line cut short by a crash while saving: the others still count
        if isinstance(record, dict):
            prompt, system = _first_user(record.get("messages"))
            out.append({"prompt": prompt, "system": system})
    return out


def load_prompts(ws: Any, source: str, value: str, column: str | None = None, limit: int | None = None
                 ) -> list[dict]:
    """[{"prompt", "system"}] from `source` ("typed", "dataset" or "exchanges", see the module docstring); blank
    prompts are left out and `limit` keeps the first ones. Refuses a source that gives no prompt."""
    if source == "typed":
        prompts = [{"prompt": line.strip(), "system": ""} for line in (value or "").splitlines()]
    elif source == "dataset":
        prompts = _dataset_prompts(ws, (value or "").strip(), (column or "").strip() or None)
    elif source == "exchanges":
        prompts = _exchange_prompts(ws, value)
    else:
        raise StudioError(f"Prompt source '{source}' is not one of {', '.join(SOURCES)}.", field="prefs.source",
                          key="prefs.prompts.bad_source", source=str(source), choices=", ".join(SOURCES))
    prompts = [p for p in prompts if p["prompt"].strip()]
    if limit is not None and limit > 0:
        prompts = prompts[:limit]
    if not prompts and source == "typed":
        raise StudioError("There are no prompts in the typed text; type one prompt per line.",
                          field="prefs.prompts", key="prefs.prompts.none_typed")
    if not prompts:
        raise StudioError(f"There are no prompts in '{value}'; pick a source that has prompts.",
                          field="prefs.prompts", key="prefs.prompts.none", name=str(value))
    return prompts


def read_prompts_file(path: str | Path, limit: int | None = None) -> list[dict]:
    """[{"prompt", "system"}] from a .txt file (one prompt per line) or a .jsonl file whose lines are
    {"prompt", "system"?} objects or JSON strings; blank prompts are left out, `limit` keeps the first ones."""
    path = Path(path)
    if not path.is_file():
        raise StudioError(f"The prompts file '{path}' does not exist; give a .txt file with one prompt per line or "
                          "a .jsonl file.", field="prefs.prompts", key="prefs.prompts.no_file", file=str(path))
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() != ".jsonl":
        return load_prompts(None, "typed", text, limit=limit)
    prompts = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError:
            record = None
        record = {"prompt": record} if isinstance(record, str) else record
        if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
            raise StudioError(f"Line {line} of '{path.name}' is not a prompt; write {{\"prompt\": \"...\"}} (and "
                              "optionally \"system\") or a JSON string on each line.", field="prefs.prompts",
                              key="prefs.prompts.bad_line", line=line, file=path.name)
        prompts.append({"prompt": record["prompt"].strip(), "system": str(record.get("system") or "")})
    prompts = [p for p in prompts if p["prompt"]][: limit or None]
    if not prompts:
        raise StudioError(f"There are no prompts in '{path.name}'; pick a source that has prompts.",
                          field="prefs.prompts", key="prefs.prompts.none", name=path.name)
    return prompts


def resolve_target(ws: Any, spec: str) -> Target:
    """A model alias, hub id, folder, `run:<id>` or bare run id as a Target that can write answers. The label,
    which candidates and arena votes record, is the spec as given (`run:<id>` for runs)."""
    from studio.models.catalogue import check_model

    ref = parse(spec, ws)
    spec, run_id = ref.spec, ref.run_id
    if run_id is None:
        check_model(spec, ws)
        return Target(label=spec, model=spec)
    run = ws.get_run(run_id)
    if run is None:
        raise StudioError(f"Run '{run_id}' does not exist; pick one from the Runs list.", field="prefs.models",
                          key="prefs.models.no_run", run_id=run_id)
    if not has_result(run):
        raise StudioError(f"Run '{run['name']}' is {run['status']}; only a completed run with a saved result can "
                          "answer prompts.", field="prefs.models", key="prefs.models.not_completed",
                          name=run["name"], status=run["status"])
    from studio.stages.base import capability, stages_where

    if not capability(run["stage"], "generates"):
        stages = ", ".join(stages_where(generates=True))
        raise StudioError(f"Run '{run['name']}' is a {run['stage']} run, which does not write answers; pick a run "
                          f"of one of the stages {stages}.", field="prefs.models", key="prefs.models.not_generative",
                          name=run["name"], stage=run["stage"], stages=stages)
    return Target(label=run_spec(run_id), model=run["model"], run_id=run_id, stage=run["stage"])
