"""The data of the stages that learn from preferences: pairs, judged answers and prompts, as TRL rows.

`load_preference_records` reads the recipe's dataset as canonical `preference` records (prompt,
chosen, rejected, optional system) or `feedback` records (prompt, completion, label) from a studio
dataset or a .jsonl/.csv/... file, splits off the validation share, and refuses data a stage cannot
use: the wrong format (naming the columns it needs), no usable row, or pairs whose two answers are
the same (counting them; the data layer already refuses those on import, files are checked here).
`load_prompts` reads the prompts the `rl` stage answers from any prompt-bearing data. The `*_row`
helpers turn records into TRL's formats: conversational (lists of turns, rendered by the model's
chat template) when the tokenizer has one, plain text otherwise. `reward_ids` tokenises a prompt and
an answer for a reward model (the reward stage trains on these ids), so it scores text the way it learnt it.
Training loops live in the stage modules (`reward`, `dpo`, `kto`, `orpo`, `rl`).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from studio.errors import StudioError
from studio.paths import user_path

FIELD = "data.dataset"
NEEDS = {"preference": "prompt, chosen and rejected columns",
         "feedback": "prompt, completion and label (true/false) columns"}
NEEDS_FIELDS = {"preference": ("prompt", "chosen", "rejected"), "feedback": ("prompt", "completion", "label")}
SAME_ANSWER = "'chosen' and 'rejected' are the same answer"


@dataclass
class PreferenceRecords:
    train: list[dict]
    validation: list[dict]
    format: str  # "preference" or "feedback"
    skipped: int = 0  # file rows left out as unusable (missing fields, bad labels)


def _needs(formats: tuple[str, ...]) -> str:
    return " or ".join(NEEDS[f] for f in formats)


def _fields(formats: tuple[str, ...]) -> str:
    """The column names the formats need, e.g. 'prompt, chosen, rejected' (words no language changes)."""
    return " / ".join(", ".join(NEEDS_FIELDS[f]) for f in formats)


def _file_path(spec: str, stage: str) -> Path:
    from studio.data.loaders import SAMPLES

    path = SAMPLES.get(spec) or user_path(spec, FIELD)
    if not path.is_file():
        raise StudioError(f"'{FIELD}' is '{spec}', which is neither a studio dataset nor a file; the {stage} stage "
                          "needs a preference dataset or a .jsonl, .csv or .parquet file.", field=FIELD,
                          key="stage.prefs.no_file", spec=spec, stage=stage)
    return path


def _refuse_same_answers(rows: list[int], spec: str) -> None:
    if rows:
        shown = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
        raise StudioError(f"'{FIELD}' has {len(rows)} pair(s) whose chosen and rejected answers are the same (rows "
                          f"{shown}); such a pair teaches nothing: fix or remove them.", field=FIELD,
                          key="stage.prefs.same_answers", count=len(rows), rows=shown, spec=spec)


def _file_records(spec: str, formats: tuple[str, ...], stage: str) -> tuple[list[dict], str, int]:
    from studio.data.formats import guess_format, iter_records
    from studio.data.readers import open_table

    path = _file_path(spec, stage)
    table = open_table(path)
    rows = list(table.rows)
    guess = guess_format(table.columns, [row for _, row in rows[:200]])
    if guess.format not in formats:
        columns = ", ".join(map(str, table.columns))
        raise StudioError(f"'{path.name}' has columns {columns}, which look like {guess.format} data; the {stage} "
                          f"stage needs {_needs(formats)}.", field=FIELD, key="stage.prefs.wrong_columns",
                          name=path.name, columns=columns, format=guess.format, stage=stage, fields=_fields(formats))
    records, same, skipped = [], [], 0
    for number, record, reason in iter_records(iter(rows), guess.format, guess.mapping):
        if record is not None:
            records.append(record)
        elif reason == SAME_ANSWER:
            same.append(number)
        else:
            skipped += 1
    _refuse_same_answers(same, spec)
    return records, guess.format, skipped


def load_preference_records(recipe, ws, formats: tuple[str, ...], stage: str) -> PreferenceRecords:
    """The recipe's pairs (or judged answers) split into train/validation; refuses data the stage cannot use."""
    from studio.data.examples import is_studio_dataset
    from studio.data.loaders import split_examples

    spec, data = recipe.data.dataset, recipe.data
    skipped, val = 0, []
    if is_studio_dataset(ws, spec):
        from studio.data.builder import dataset_card, load_split

        fmt = dataset_card(ws, spec)["format"]
        if fmt not in formats:
            raise StudioError(f"Dataset '{spec}' holds {fmt} data; the {stage} stage needs {_needs(formats)} "
                              f"(import it with --format {formats[0]}).", field=FIELD, key="stage.prefs.wrong_format",
                              spec=spec, format=fmt, stage=stage, fields=_fields(formats), wanted=formats[0])
        train, val = load_split(ws, spec, "train"), load_split(ws, spec, "validation")
        if fmt == "preference":  # mixed or older datasets: the import check may not have seen every pair
            _refuse_same_answers([i + 1 for i, r in enumerate(train + val)
                                  if r["chosen"].strip() == r["rejected"].strip()], spec)
    else:
        train, fmt, skipped = _file_records(spec, formats, stage)
    if not train:
        raise StudioError(f"'{FIELD}' ('{spec}') has no usable row for the {stage} stage; it needs "
                          f"{_needs(formats)}.", field=FIELD, key="stage.prefs.no_records", spec=spec, stage=stage,
                          fields=_fields(formats))
    if not val and data.validation > 0:
        train, val = split_examples(train, data.validation, recipe.train.seed)
    return PreferenceRecords(train, val, fmt, skipped)


def pairs_as_feedback(records: list[dict], seed: int) -> list[dict]:
    """Each pair as one desirable and one undesirable answer, shuffled (KTO reads its batches in order)."""
    rows = []
    for r in records:
        common = {"prompt": r["prompt"], "system": r.get("system") or ""}
        rows += [{**common, "completion": r["chosen"], "label": True},
                 {**common, "completion": r["rejected"], "label": False}]
    random.Random(seed).shuffle(rows)
    return rows


def chat_style(tokenizer) -> bool:
    """Whether rows are conversations rendered by the model's chat template (else plain text)."""
    return bool(getattr(tokenizer, "chat_template", None))


def prompt_of(record: dict, tokenizer, system_prompt: str = ""):
    """The prompt as TRL takes it: a list of turns (system?, user) or, without a chat template, text."""
    system = (record.get("system") or system_prompt or "").strip()
    if chat_style(tokenizer):
        return ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": record["prompt"]}]
    return (f"{system}\n\n" if system else "") + f"{record['prompt']}\n"


def answer_of(text: str, tokenizer):
    return [{"role": "assistant", "content": text}] if chat_style(tokenizer) else text


def pair_row(record: dict, tokenizer, system_prompt: str = "") -> dict:
    return {"prompt": prompt_of(record, tokenizer, system_prompt), "chosen": answer_of(record["chosen"], tokenizer),
            "rejected": answer_of(record["rejected"], tokenizer)}


def feedback_row(record: dict, tokenizer, system_prompt: str = "") -> dict:
    return {"prompt": prompt_of(record, tokenizer, system_prompt),
            "completion": answer_of(record["completion"], tokenizer), "label": bool(record["label"])}


def rows_dataset(rows: list[dict]):
    from datasets import Dataset

    return Dataset.from_list(rows) if rows else None


def reward_ids(tokenizer, prompt, answer) -> list[int]:
    """Token ids of prompt + answer as a reward model reads them: the chat template, or text ending in EOS."""
    if isinstance(prompt, list):
        answer = answer if isinstance(answer, list) else [{"role": "assistant", "content": answer}]
        return list(tokenizer.apply_chat_template(prompt + answer, tokenize=True, return_dict=True)["input_ids"])
    text = prompt + answer
    eos = tokenizer.eos_token or ""
    return list(tokenizer(text=text if text.endswith(eos) else text + eos)["input_ids"])


def load_prompts(recipe, ws, stage: str = "rl") -> tuple[list[dict], list[dict]]:
    """(train, validation) prompt records {"prompt" | "messages", "system"} from preference, feedback,
    instruction or chat data, or a file with a 'prompt' column."""
    from studio.data.examples import is_studio_dataset
    from studio.data.formats import record_to_messages
    from studio.data.loaders import load_examples, split_examples

    spec = recipe.data.dataset
    if is_studio_dataset(ws, spec):
        from studio.data.builder import dataset_card, load_split

        fmt = dataset_card(ws, spec)["format"]
        if fmt == "text":
            raise StudioError(f"Dataset '{spec}' holds plain text; the {stage} stage needs prompts (a prompt column, "
                              "or instruction, chat or preference data).", field=FIELD,
                              key="stage.prefs.no_prompts", spec=spec, stage=stage)
        train, val = ([p for p in (_prompt_record(r, fmt, record_to_messages) for r in load_split(ws, spec, part))
                       if p is not None] for part in ("train", "validation"))
    else:
        prompts = _file_prompts(spec, stage) or [_prompt_record(e, "chat", record_to_messages)
                                                 for e in load_examples(spec, ws)]
        train, val = [p for p in prompts if p is not None], []
    if not train:
        raise StudioError(f"'{FIELD}' ('{spec}') has no prompt for the {stage} stage to answer.", field=FIELD,
                          key="stage.prefs.no_prompts_found", spec=spec, stage=stage)
    if not val and recipe.data.validation > 0:
        train, val = split_examples(train, recipe.data.validation, recipe.train.seed)
    return train, val


def _prompt_record(record: dict, fmt: str, to_messages) -> dict | None:
    if fmt in ("preference", "feedback"):
        return {"prompt": record["prompt"], "system": record.get("system") or ""}
    turns = to_messages(record, fmt)
    last = max((i for i, t in enumerate(turns) if t["role"] == "assistant"), default=len(turns))
    turns = turns[:last]  # the conversation up to the answer the policy is to write
    return {"messages": turns} if any(t["role"] == "user" for t in turns) else None


def _file_prompts(spec: str, stage: str) -> list[dict] | None:
    """Prompts of a file with a prompt column (plain prompts, pairs or judged answers); None for chat files."""
    from studio.data.readers import open_table

    path = _file_path(spec, stage)
    table = open_table(path)
    lower = {str(c).lower(): c for c in table.columns}
    column = lower.get("prompt")
    if column is None:
        return None
    system = lower.get("system")
    return [{"prompt": str(row[column]), "system": str(row.get(system) or "") if system else ""}
            for _, row in table.rows if isinstance(row.get(column), str) and row[column].strip()]


def prompt_row(record: dict, tokenizer, system_prompt: str = "") -> dict:
    """A prompt record as GRPO's 'prompt' column: turns with a chat template, else text."""
    if "messages" not in record:
        return {"prompt": prompt_of(record, tokenizer, system_prompt)}
    turns = [dict(t) for t in record["messages"]]
    if system_prompt.strip() and turns[0]["role"] != "system":
        turns.insert(0, {"role": "system", "content": system_prompt.strip()})
    if chat_style(tokenizer):
        return {"prompt": turns}
    return {"prompt": "\n\n".join(t["content"] for t in turns) + "\n"}


def pair_datasets(stage: str):
    """`build_datasets` for the pair stages (dpo, orpo): the recipe's pairs as TRL preference rows."""

    def build(recipe, ws, tokenizer, emit):
        data = load_preference_records(recipe, ws, ("preference",), stage)
        if data.skipped:
            emit({"type": "log", "message": f"{data.skipped} unusable row(s) of the file were left out"})
        system = recipe.data.system_prompt
        return (rows_dataset([pair_row(r, tokenizer, system) for r in data.train]),
                rows_dataset([pair_row(r, tokenizer, system) for r in data.validation]))

    return build
