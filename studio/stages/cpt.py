"""Continued pretraining (CPT): keep a causal LM reading raw text from the user's domain.

Domain adaptation as the seeds describe it: no prompts or answers, every token is learnt. Each
document is tokenised with an end-of-text token, and the documents are concatenated and cut into
`data.max_length` blocks ("wrapped" packing), so long documents are split rather than truncated
and no compute is spent on padding. Text comes from a studio dataset of format `text`, or straight
from a .txt/.md file (paragraphs), a JSONL/CSV/Parquet file with a text column. Loading the model,
the method and the trainer are shared with SFT (`studio.stages.sft.train_causal_lm`).
"""
from __future__ import annotations

from pathlib import Path

from studio.errors import StudioError
from studio.data.loaders import SAMPLES
from studio.paths import user_path
from studio.stages.base import STAGES, Stage, TrainContext


def load_texts(spec: str, ws) -> list[str]:
    """The documents a CPT recipe names, as plain strings."""
    from studio.data.examples import is_studio_dataset

    if is_studio_dataset(ws, spec):
        from studio.data.builder import SPLITS, dataset_card, load_split

        card = dataset_card(ws, spec)
        if card["format"] != "text":
            raise StudioError(f"Dataset '{spec}' holds {card['format']} data; continued pretraining needs raw text "
                              "(import it with --format text).", field="data.dataset",
                              key="stage.cpt.wrong_format", spec=spec, format=card["format"])
        return [r["text"] for part in SPLITS for r in load_split(ws, spec, part) if r.get("text")]
    from studio.data.formats import iter_records
    from studio.data.readers import open_table

    path = SAMPLES.get(spec) or user_path(spec, "data.dataset")
    if not path.is_file():
        raise StudioError(f"'data.dataset' is '{spec}': for continued pretraining give a text dataset or a .txt, "
                          ".md, .jsonl, .csv or .parquet file.", field="data.dataset",
                          key="stage.cpt.no_file", spec=spec)
    table = open_table(path, text_mode="paragraphs")
    column = "text" if "text" in table.columns else (table.columns[0] if len(table.columns) == 1 else None)
    if column is None:
        columns = ', '.join(table.columns)
        raise StudioError(f"'{path.name}' has columns {columns} but no 'text' column; rename "
                          "the column that holds the documents.", field="data.dataset",
                          key="stage.cpt.no_text_column", name=path.name, columns=columns)
    texts = [r["text"] for _, r, _ in iter_records(table.rows, "text", {"text": column}) if r and r["text"].strip()]
    if not texts:
        raise StudioError(f"'{path.name}' has no text to train on.", field="data.dataset",
                          key="stage.cpt.no_text", name=path.name)
    return texts


def build_cpt_datasets(recipe, tokenizer, home: Path):
    """Tokenised documents (+ end of text), all tokens learnt; split into train and validation documents."""
    from datasets import Dataset

    from studio.data.loaders import split_examples
    from studio.workspace import Workspace

    texts = load_texts(recipe.data.dataset, Workspace.open(home))
    train, val = split_examples(texts, recipe.data.validation, recipe.train.seed)
    eos = tokenizer.eos_token_id

    def encode(docs: list[str]):
        ids = [tokenizer(doc, add_special_tokens=False)["input_ids"] + [eos] for doc in docs]
        return Dataset.from_dict({"input_ids": ids, "labels": [list(x) for x in ids]})

    return encode(train), (encode(val) if val else None)


@STAGES.register("cpt")
class ContinuedPretraining(Stage):
    title = "Continued pretraining (CPT)"
    summary = "Reads raw text from your domain so the model learns its words and facts; no prompts or answers."
    generates, evaluation = True, "generation"

    @classmethod
    def check_data(cls, recipe, ws) -> None:
        texts = load_texts(recipe.data.dataset, ws)
        if len(texts) < 2 and recipe.data.validation > 0:
            raise StudioError(f"'data.dataset' has only {len(texts)} document(s); add more or set data.validation "
                              "to 0.", field="data.dataset",
                              key="stage.cpt.too_few_documents", count=len(texts))

    @classmethod
    def run(cls, ctx: TrainContext) -> dict:
        from studio.stages.sft import train_causal_lm

        return train_causal_lm(ctx, build_cpt_datasets, packing=True, packing_strategy="wrapped",
                               eval_packing=True, train_sampling_strategy="random")
