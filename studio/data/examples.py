"""Training examples for a recipe: which records train, which validate, and their tokens.

`recipe_records` finds the records a recipe's `data.dataset` names: a studio dataset (its stored
train/validation splits and the template it was built with) or a sample/file (chat examples,
split here). `encode_records` renders each record with the template and tokenises it with the
loss mask, so training and the dataset preview use one path. Stages call these two and nothing
else from `studio.data`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.errors import StudioError


@dataclass
class RecipeRecords:
    train: list[dict]
    validation: list[dict]
    template: str  # the template to use when the recipe says "auto"
    format: str


def is_studio_dataset(ws, name: str) -> bool:
    with ws.db() as conn:
        row = conn.execute("SELECT 1 FROM datasets WHERE name = ? LIMIT 1", (name,)).fetchone()
    return row is not None


def recipe_records(data_cfg: Any, seed: int, ws) -> RecipeRecords:
    from studio.data.builder import dataset_card, load_split
    from studio.data.loaders import load_examples, split_examples

    if ws is not None and is_studio_dataset(ws, data_cfg.dataset):
        card = dataset_card(ws, data_cfg.dataset)
        train = load_split(ws, data_cfg.dataset, "train")
        val = load_split(ws, data_cfg.dataset, "validation")
        if not val and data_cfg.validation > 0:
            train, val = split_examples(train, data_cfg.validation, seed)
        return RecipeRecords(train, val, card.get("template") or "chat", card["format"])
    examples = load_examples(data_cfg.dataset, ws)
    train, val = split_examples(list(examples), data_cfg.validation, seed)
    return RecipeRecords(train, val, "chat", "chat")


def resolve_template_name(data_cfg: Any, records: RecipeRecords) -> str:
    return records.template if data_cfg.template == "auto" else data_cfg.template


def encode_records(records: list[dict], tokenizer: Any, template_name: str, data_cfg: Any, seed: int,
                   ws=None) -> list[dict]:
    """Tokenised {input_ids, labels} per record; records left with no loss tokens are dropped."""
    from studio.data.template_store import get_template
    from studio.data.templates import render_example, tokenize_rendered

    template = get_template(template_name, ws)
    out = []
    for index, record in enumerate(records):
        rendered = render_example(template, record, system_prompt=data_cfg.system_prompt, seed=seed, index=index)
        encoded = tokenize_rendered(tokenizer, rendered, data_cfg.max_length, train_on_prompt=data_cfg.train_on_prompt,
                                    multi_turn=data_cfg.multi_turn)
        if encoded["n_loss_tokens"] > 0:
            out.append({"input_ids": encoded["input_ids"], "labels": encoded["labels"]})
    if records and not out:
        raise StudioError(f"No example of '{data_cfg.dataset}' keeps an answer within data.max_length="
                          f"{data_cfg.max_length} tokens; raise data.max_length.", field="data.max_length",
                          key="data.examples.too_long", dataset=data_cfg.dataset, max_length=data_cfg.max_length)
    return out
