"""Sequence-to-sequence fine-tuning: teach an encoder-decoder model (T5, FLAN-T5, BART) to turn a
source text into a target text, for summarisation, translation or rewriting.

Data is a studio dataset of format `seq2seq` or a JSONL/CSV/Parquet/Excel file whose columns the
format guesser maps onto `source` and `target` (source/dialogue/document/article and
target/summary/highlights). `data.system_prompt`, when set, is the task prefix put before every
source, e.g. "summarize: " or "translate English to German: " as T5 was trained with. Sources and
targets are each cut to `data.max_length` tokens and end with the end-of-sequence token; padded
label positions are -100 so they add nothing to the loss. `Seq2SeqTrainer` trains; every
evaluation measures the teacher-forced loss on the whole validation split and, for the first
`train.eval_samples` validation examples, generates greedily and reports ROUGE, BLEU and exact
match (`studio.stages.generation_eval`, shared with the causal stages). The method (full,
LoRA...) is applied through its hooks, as in SFT.
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

from studio.errors import StudioError
from studio.data.loaders import SAMPLES
from studio.paths import user_path
from studio.stages.base import STAGES, Stage, TrainContext

log = logging.getLogger(__name__)



def model_config_dict(recipe, ws) -> dict:
    """The recipe model's config.json as a dict, reading only configs (never converting or loading weights)."""
    from studio.models import catalogue
    from studio.training import model_config

    config = model_config(recipe, ws)
    if config:
        return config
    source = catalogue.resolve_model(recipe.model, ws)
    if isinstance(source, Path):
        path = source / "config.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    from transformers import AutoConfig

    try:  # a hub id to download: its config.json is a few KB
        return AutoConfig.from_pretrained(source, trust_remote_code=recipe.trust_remote_code).to_dict()
    except (OSError, ValueError):
        return {}  # the run's load reports what is wrong with the model itself


def check_encoder_decoder(spec: str, config: dict) -> None:
    """Refuse a model that has no decoder reading an encoder's output (GPT-style or BERT-style models)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES

    model_type = config.get("model_type") or "unknown"
    if config.get("is_encoder_decoder") or model_type in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
        return
    architectures = config.get("architectures") or []
    decoder_only = any(a.endswith("ForCausalLM") for a in architectures) or (not architectures and model_type
                                                                              not in ("bert", "roberta"))
    what = "decoder-only — use stage sft" if decoder_only else "not an encoder-decoder model"
    raise StudioError(f"seq2seq needs an encoder-decoder model such as t5 or bart; '{model_type}' is {what}.",
                      field="model", key="stage.seq2seq.decoder_only" if decoder_only else "stage.seq2seq.not_enc_dec",
                      model_type=model_type)


def load_pairs(spec: str, ws) -> tuple[list[dict], list[dict]]:
    """(train, stored validation) records {"source", "target"} from a studio dataset or a data file."""
    from studio.data.examples import is_studio_dataset

    if is_studio_dataset(ws, spec):
        from studio.data.builder import dataset_card, load_split

        card = dataset_card(ws, spec)
        if card["format"] != "seq2seq":
            raise StudioError(f"Dataset '{spec}' holds {card['format']} data; the seq2seq stage needs source/target "
                              "pairs (import it with --format seq2seq).", field="data.dataset",
                              key="stage.seq2seq.wrong_format", dataset=spec, format=card["format"])
        return load_split(ws, spec, "train"), load_split(ws, spec, "validation")
    from studio.data.formats import guess_format, iter_records
    from studio.data.readers import open_table, read_all

    path = SAMPLES.get(spec) or user_path(spec, "data.dataset")
    if not path.is_file():
        raise StudioError(f"'data.dataset' is '{spec}': for seq2seq give a studio dataset of format seq2seq or a "
                          ".jsonl, .csv, .parquet or .xlsx file with source and target columns.", field="data.dataset",
                          key="stage.seq2seq.no_source", dataset=spec)
    table = open_table(path)
    rows = read_all(table)
    guess = guess_format(table.columns, rows[:20])
    if guess.format != "seq2seq":
        raise StudioError(f"'{path.name}' has columns {', '.join(table.columns)}; seq2seq needs a source column "
                          "(source, dialogue, document or article) and a target column (target, summary or "
                          "highlights): rename them, or import the file with --format seq2seq and --map.",
                          field="data.dataset", key="stage.seq2seq.columns", file=path.name,
                          columns=", ".join(table.columns))
    records = [r for _, r, _ in iter_records(enumerate(rows, start=1), "seq2seq", guess.mapping) if r]
    if not records:
        raise StudioError(f"'{path.name}' has no row with both a source and a target.", field="data.dataset",
                          key="stage.seq2seq.no_pairs", file=path.name)
    return records, []


def split_pairs(recipe, ws) -> tuple[list[dict], list[dict]]:
    """Train and validation pairs: the dataset's own validation split, else a seeded share of train."""
    from studio.data.loaders import split_examples

    train, val = load_pairs(recipe.data.dataset, ws)
    if not val and recipe.data.validation > 0:
        train, val = split_examples(train, recipe.data.validation, recipe.train.seed)
    return train, val


def encode_text(tokenizer, text: str, max_length: int) -> list[int]:
    """Token ids cut to max_length and ending with EOS (T5/BART tokenizers add it; others may not)."""
    ids = tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
    eos = tokenizer.eos_token_id
    if eos is not None and (not ids or ids[-1] != eos):
        ids = ids[:max_length - 1] + [eos]
    return ids


def encode_pairs(pairs: list[dict], tokenizer, prefix: str, max_length: int):
    """A `datasets.Dataset` of input_ids / attention_mask / labels (the collator pads labels with -100)."""
    from datasets import Dataset

    sources = [encode_text(tokenizer, prefix + p["source"], max_length) for p in pairs]
    labels = [encode_text(tokenizer, p["target"], max_length) for p in pairs]
    return Dataset.from_dict({"input_ids": sources, "attention_mask": [[1] * len(s) for s in sources],
                              "labels": labels})


def build_seq2seq_datasets(recipe, tokenizer, home: Path):
    """(train, eval, validation pairs) for a recipe; eval is None without validation examples."""
    from studio.workspace import Workspace

    train, val = split_pairs(recipe, Workspace.open(home))
    prefix, max_length = recipe.data.system_prompt, recipe.data.max_length
    return encode_pairs(train, tokenizer, prefix, max_length), \
        (encode_pairs(val, tokenizer, prefix, max_length) if val else None), val


def seq2seq_args(recipe, run_dir: Path, has_eval: bool):
    from transformers import Seq2SeqTrainingArguments

    from studio.stages.trainer_setup import common_training_args

    return Seq2SeqTrainingArguments(
        **common_training_args(recipe, run_dir, has_eval),
        # The datasets hold exactly the model's inputs; a PEFT wrapper's forward signature would hide them.
        remove_unused_columns=False,
        # Loss over all validation examples by teacher forcing; generation runs only on the samples.
        predict_with_generate=False,
    )


def load_seq2seq_lm(spec: str, ws, trust_remote_code: bool = False, **load_kwargs):
    """(model, tokenizer) of an encoder-decoder model, float32 weights from safetensors only."""
    import torch
    from transformers import AutoModelForSeq2SeqLM

    from studio.models import catalogue
    from studio.models.loading import load_tokenizer

    source = catalogue.resolve_model(spec, ws)
    if isinstance(source, Path) and not any(source.glob("*.safetensors")) and any(source.glob("*.bin")):
        raise StudioError(f"Model '{spec}' has only pickled .bin weights, which the studio does not load "
                          "(unpickling can run code); re-save it with save_pretrained to get .safetensors",
                          field="model", key="stage.seq2seq.bin_only", model=spec)
    try:
        model = AutoModelForSeq2SeqLM.from_pretrained(source, dtype=torch.float32, use_safetensors=True,
                                                      trust_remote_code=trust_remote_code, **load_kwargs)
    except (OSError, ValueError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise StudioError(f"Model '{spec}' could not be loaded as an encoder-decoder model from .safetensors "
                          f"({first})", field="model", key="stage.seq2seq.load", model=spec, reason=first) from None
    tokenizer = load_tokenizer(spec, ws, trust_remote_code)
    # Labels padded on the left would put pads between the decoder's start token and the target.
    tokenizer.padding_side = "right"
    return model, tokenizer


@STAGES.register("seq2seq")
class SequenceToSequence(Stage):
    title = "Sequence to sequence (seq2seq)"
    summary = ("Turns a source text into a target text with an encoder-decoder model (T5, BART): summaries, "
               "translations; measured with ROUGE. data.system_prompt is the task prefix, e.g. 'summarize: '.")
    task = "seq2seq"

    @classmethod
    def check_data(cls, recipe, ws) -> None:
        check_encoder_decoder(recipe.model, model_config_dict(recipe, ws))
        train, val = load_pairs(recipe.data.dataset, ws)
        if len(train) + len(val) < 2 and recipe.data.validation > 0:
            raise StudioError(f"'data.dataset' has only {len(train) + len(val)} source/target pair(s); add more or "
                              "set data.validation to 0.", field="data.dataset", key="stage.seq2seq.too_few",
                              n=len(train) + len(val))

    @classmethod
    def run(cls, ctx: TrainContext) -> dict:
        from transformers import DataCollatorForSeq2Seq, PrinterCallback, Seq2SeqTrainer
        from transformers.utils import logging as hf_logging

        from studio.methods import METHODS
        from studio.stages.generation_eval import GenerationMetrics, seq2seq_samples
        from studio.stages.progress import train as train_with_progress
        from studio.stages.trainer_setup import (run_callbacks, finish_training, prepare_for_training,
                                       quiet_datasets)
        from studio.workspace import Workspace

        hf_logging.disable_progress_bar()
        quiet_datasets()
        warnings.filterwarnings("ignore", category=FutureWarning)
        recipe, emit = ctx.recipe, ctx.emit
        method = METHODS.get(recipe.method.name, field="method.name")
        ws = Workspace.open(ctx.home)
        emit({"type": "log", "message": f"Loading model {recipe.model}"})
        model, tokenizer = load_seq2seq_lm(recipe.model, ws, trust_remote_code=recipe.trust_remote_code,
                                           **method.load_kwargs(recipe.method))
        train_ds, eval_ds, val_pairs = build_seq2seq_datasets(recipe, tokenizer, ctx.home)
        emit({"type": "log", "message": f"{len(train_ds)} training and {len(eval_ds) if eval_ds else 0} "
                                        "validation pairs"})
        model, callback, optimizer = prepare_for_training(ctx, method, model, len(train_ds), emit)
        has_eval = eval_ds is not None
        samples = seq2seq_samples(eval_ds, [p["target"] for p in val_pairs], tokenizer, recipe.train.eval_samples)
        generation = GenerationMetrics(samples, tokenizer, emit, ctx.run_dir, encoder_decoder=True)
        trainer = Seq2SeqTrainer(
            model=model, args=seq2seq_args(recipe, ctx.run_dir, has_eval), train_dataset=train_ds,
            eval_dataset=eval_ds, processing_class=tokenizer,
            data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100),
            callbacks=[generation, callback, *method.callbacks(model, recipe.method),
                       *run_callbacks(ctx, has_eval)],
            optimizers=(optimizer, None))
        trainer.remove_callback(PrinterCallback)
        output = train_with_progress(trainer, callback, ctx.resume_from)
        result = finish_training(trainer, output, callback, method, tokenizer, ctx)
        if result["stopped"]:
            return result
        last_eval = next((h for h in reversed(trainer.state.log_history) if "eval_rougeL" in h), {})
        return {**result, **{k: v for k, v in last_eval.items() if k.startswith("eval_") and k != "eval_runtime"}}
