"""Sequence classification: teach a model to put a text in one of a few classes (sentiment, topic, intent).

Works for encoder models (BERT, e.g. the embedded all-MiniLM-L6-v2) and decoder models (Llama,
which classify from the last non-padding token, so the config gets the tokenizer's pad id). Data
is a studio dataset of format `classification` or a CSV/JSONL/... file with text and label
columns. The classes are the sorted distinct labels of the training split; they are saved in the
model config as id2label/label2id, so the saved model names its predictions. Every evaluation
reports accuracy and macro-F1 (as eval_accuracy / eval_f1 through the normal progress events) and
writes the confusion matrix to `run_dir/confusion.json`. The method hooks (prepare, optimizer
groups, callbacks, save) are the same ones SFT uses; the plain transformers `Trainer` trains.
"""
from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from studio.errors import StudioError
from studio.paths import user_path
from studio.stages.base import STAGES, Stage, TrainContext

log = logging.getLogger(__name__)
FIELD = "data.dataset"


@dataclass
class LabelledTexts:
    train: list[dict]  # {"text", "label"} records
    validation: list[dict]
    labels: list[str]  # sorted distinct labels of the training split: class i is labels[i]
    # Where validation came from: 'training' (rows held out of the training file: close phrasings score high) or
    # 'separate' (a file of its own, imported with `data import --validation FILE`).
    validation_source: str = "training"


def _file_records(spec: str, ws) -> list[dict]:
    from studio.data.formats import guess_format, iter_records
    from studio.data.loaders import SAMPLES
    from studio.data.readers import open_table

    path = SAMPLES.get(spec) or user_path(spec, FIELD)
    if not path.is_file():
        raise StudioError(f"'{FIELD}' is '{spec}': for classification give a classification dataset or a .csv, "
                          ".jsonl, .json or .parquet file with text and label columns.", field=FIELD,
                          key="stage.classify.no_file", setting=FIELD, spec=spec)
    table = open_table(path)
    rows = list(table.rows)
    guess = guess_format(table.columns, [row for _, row in rows[:200]])
    if guess.format != "classification":
        columns = ', '.join(table.columns)
        raise StudioError(f"'{path.name}' has columns {columns}, which look like {guess.format} "
                          "data; classification needs a text column and a label column.", field=FIELD,
                          key="stage.classify.wrong_columns", name=path.name, columns=columns,
                          format=guess.format)
    return [r for _, r, _ in iter_records(iter(rows), "classification", guess.mapping) if r and r["text"].strip()]


def is_classification_data(recipe, ws) -> bool:
    """Whether the recipe's dataset holds text + label records (a classification dataset, sample or file)."""
    import itertools

    from studio.data.builder import dataset_card
    from studio.data.examples import is_studio_dataset
    from studio.data.formats import guess_format
    from studio.data.loaders import SAMPLES
    from studio.data.readers import open_table

    spec = recipe.data.dataset
    try:
        if is_studio_dataset(ws, spec):
            return dataset_card(ws, spec)["format"] == "classification"
        path = SAMPLES.get(spec) or user_path(spec, FIELD)
        if not path.is_file():
            return False
        table = open_table(path)
        rows = [row for _, row in itertools.islice(table.rows, 200)]
        return guess_format(table.columns, rows).format == "classification"
    except StudioError:
        return False  # unreadable data: the stage's own checks say why


def load_labelled(recipe, ws) -> LabelledTexts:
    """The recipe's texts and labels, split into train/validation, with the class list; refuses bad labels."""
    from studio.data.examples import is_studio_dataset
    from studio.data.loaders import split_examples

    spec, data = recipe.data.dataset, recipe.data
    if is_studio_dataset(ws, spec):
        from studio.data.builder import dataset_card, load_split

        card = dataset_card(ws, spec)
        if card["format"] != "classification":
            raise StudioError(f"Dataset '{spec}' holds {card['format']} data; the classify stage needs text and "
                              "label records (import it with --format classification).", field=FIELD,
                              key="stage.classify.wrong_format", spec=spec, format=card["format"])
        train, val = load_split(ws, spec, "train"), load_split(ws, spec, "validation")
        source = "separate" if val and "validation" in (card.get("heldout") or {}) else "training"
        if not val and data.validation > 0:
            train, val = split_examples(train, data.validation, recipe.train.seed)
    else:
        train, val = split_examples(_file_records(spec, ws), data.validation, recipe.train.seed)
        source = "training"
    for record in train + val:
        record["label"] = str(record["label"]).strip()
    labels = sorted({r["label"] for r in train})
    if len(labels) < 2:
        only = f" ('{labels[0]}')" if labels else ""
        message = (f"'{FIELD}' has {len(labels)} label{only} in its training split; classification needs "
                   "at least two classes.")
        if labels:
            raise StudioError(message, field=FIELD, key="stage.classify.one_label", setting=FIELD, label=labels[0])
        raise StudioError(message, field=FIELD, key="stage.classify.no_labels", setting=FIELD)
    unknown = sorted({r["label"] for r in val} - set(labels))
    if unknown:
        names = ', '.join(map(repr, unknown))
        raise StudioError(f"The validation split of '{FIELD}' has label(s) {names} that "
                          "no training example has; add training examples of them or remove them.", field=FIELD,
                          key="stage.classify.unknown_val_labels", setting=FIELD, labels=names)
    return LabelledTexts(train, val, labels, source)


def write_validation_source(run_dir: Path, source: str, rows: int) -> None:
    """`validation.json` in the run folder: where the validation rows came from ('training' or 'separate'), so the
    run view can say when its accuracy is measured on rows of the training file."""
    (run_dir / "validation.json").write_text(json.dumps({"source": source, "rows": rows}), encoding="utf-8")


def check_classifier_model(recipe, ws) -> None:
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    from studio.training import model_config

    model_type = model_config(recipe, ws).get("model_type")
    if model_type and model_type not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES:
        raise StudioError(f"Model '{recipe.model}' is a {model_type} model, which transformers cannot turn into a "
                          "sequence classifier; pick an encoder such as all-minilm-l6-v2 or a Llama-family "
                          "model.", field="model",
                          key="stage.classify.model_not_classifier", model=recipe.model, model_type=model_type)


def load_classifier(spec: str, ws, labels: list[str], trust: bool = False, **load_kwargs):
    """(model, tokenizer): model `spec` with a fresh head for `labels` (kept if it has one), float32 weights."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from studio.models import catalogue
    from studio.models.loading import _first_line, _load_tokenizer_from

    source = catalogue.resolve_model(spec, ws)
    tokenizer = _load_tokenizer_from(source, spec, trust)
    config = AutoConfig.from_pretrained(source, trust_remote_code=trust, num_labels=len(labels),
                                        id2label=dict(enumerate(labels)),
                                        label2id={label: i for i, label in enumerate(labels)})
    if getattr(config, "pad_token_id", None) is None:
        # Decoder classifiers read the last non-padding token, which they find through the pad id.
        config.pad_token_id = tokenizer.pad_token_id
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            source, config=config, dtype=torch.float32, use_safetensors=True, trust_remote_code=trust, **load_kwargs)
    except (OSError, ValueError) as error:
        raise StudioError(f"Model '{spec}' could not be loaded as a sequence classifier ({_first_line(error)}); "
                          "the studio loads only .safetensors weights.", field="model",
                          key="stage.classify.model_not_loadable", spec=spec, reason=_first_line(error)) from None
    if hasattr(model.config, "use_cache"):
        model.config.use_cache = False  # no generation here; a cache would only ride along in the eval outputs
    return model, tokenizer


def encode(records: list[dict], tokenizer, labels: list[str], max_length: int):
    from datasets import Dataset

    index = {label: i for i, label in enumerate(labels)}
    encoded = tokenizer([r["text"] for r in records], truncation=True, max_length=max_length)
    return Dataset.from_dict({**{k: list(v) for k, v in encoded.items()},
                              "labels": [index[r["label"]] for r in records]})


def scores(confusion) -> dict:
    """Accuracy and macro-F1 from a confusion matrix (rows: true class, columns: predicted class).

    A class with neither examples nor predictions has no F1 and is left out of the average."""
    import numpy as np

    confusion = np.asarray(confusion, dtype=float)
    tp = np.diag(confusion)
    support, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    present = (support + predicted) > 0
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros_like(tp), where=present)
    return {"accuracy": float(tp.sum() / max(confusion.sum(), 1)),
            "f1": float(f1[present].mean()) if present.any() else 0.0}


class ClassificationMetrics:
    """`compute_metrics` for the Trainer: accuracy and macro-F1, plus confusion.json at the current step."""

    def __init__(self, labels: list[str], path: Path):
        self.labels, self.path = labels, path
        self.step = lambda: 0  # set once the trainer exists

    def __call__(self, eval_pred) -> dict:
        import numpy as np

        logits, truth = eval_pred.predictions, eval_pred.label_ids
        logits = logits[0] if isinstance(logits, tuple) else logits
        n = len(self.labels)
        confusion = np.zeros((n, n), dtype=np.int64)
        np.add.at(confusion, (np.asarray(truth).astype(int), np.argmax(logits, axis=-1)), 1)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"labels": self.labels, "matrix": confusion.tolist(), "step": self.step()}),
                       encoding="utf-8")
        tmp.replace(self.path)
        return scores(confusion)


def classify_args(recipe, run_dir: Path, has_eval: bool):
    from transformers import TrainingArguments

    from studio.stages.trainer_setup import common_training_args

    return TrainingArguments(**common_training_args(recipe, run_dir, has_eval))


@STAGES.register("classify")
class SequenceClassification(Stage):
    title = "Text classification"
    summary = "Learns to put each text in one of your labels (sentiment, topic, intent); reports accuracy and F1."
    task, evaluation = "classify", "classification"

    @classmethod
    def check_data(cls, recipe, ws) -> None:
        check_classifier_model(recipe, ws)
        load_labelled(recipe, ws)

    @classmethod
    def run(cls, ctx: TrainContext) -> dict:
        return train_classifier(ctx)


def train_classifier(ctx: TrainContext, trainer_cls=None, extend=None, collator=None) -> dict:
    """Load the labelled data and a classifier, train with the method's hooks, evaluate, save with labels.json.

    Distillation reuses it: `extend(data, train_ds, eval_ds) -> (train_ds, eval_ds)` adds columns (the
    teacher's scores), `trainer_cls` computes the loss from them and `collator(base)` wraps the padding."""
    from transformers import DataCollatorWithPadding, PrinterCallback, Trainer
    from transformers.utils import logging as hf_logging

    from studio.methods import METHODS
    from studio.stages.progress import train as train_with_progress
    from studio.stages.trainer_setup import run_callbacks, finish_training, prepare_for_training, quiet_datasets
    from studio.workspace import Workspace

    hf_logging.disable_progress_bar()
    quiet_datasets()
    warnings.filterwarnings("ignore", category=FutureWarning)
    recipe = ctx.recipe
    method = METHODS.get(recipe.method.name, field="method.name")
    ws = Workspace.open(ctx.home)
    data = load_labelled(recipe, ws)
    ctx.emit({"type": "log", "message": f"Loading model {recipe.model} as a classifier of "
                                        f"{len(data.labels)} labels: {', '.join(data.labels)}"})
    model, tokenizer = load_classifier(recipe.model, ws, data.labels, recipe.trust_remote_code,
                                       **method.load_kwargs(recipe.method))
    train_ds = encode(data.train, tokenizer, data.labels, recipe.data.max_length)
    eval_ds = encode(data.validation, tokenizer, data.labels, recipe.data.max_length) if data.validation else None
    if extend is not None:
        train_ds, eval_ds = extend(data, train_ds, eval_ds)
    ctx.emit({"type": "log", "message": f"{len(train_ds)} training and {len(eval_ds) if eval_ds else 0} "
                                        "validation examples"})
    if eval_ds is not None:
        write_validation_source(ctx.run_dir, data.validation_source, len(eval_ds))
    model, callback, optimizer = prepare_for_training(ctx, method, model, len(train_ds))
    metrics = ClassificationMetrics(data.labels, ctx.run_dir / "confusion.json")
    args = classify_args(recipe, ctx.run_dir, eval_ds is not None)
    if extend is not None:
        args.remove_unused_columns = False  # the added columns reach compute_loss
    padding = DataCollatorWithPadding(tokenizer)
    trainer = (trainer_cls or Trainer)(
        model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, processing_class=tokenizer,
        data_collator=collator(padding) if collator else padding, compute_metrics=metrics,
        callbacks=[callback, *method.callbacks(model, recipe.method),
                   *run_callbacks(ctx, eval_ds is not None)],
        optimizers=(optimizer, None))
    trainer.remove_callback(PrinterCallback)
    metrics.step = lambda: trainer.state.global_step
    output = train_with_progress(trainer, callback, ctx.resume_from)
    evaluated = [h["step"] for h in trainer.state.log_history if "eval_accuracy" in h]
    if eval_ds is not None and not callback.stopped and evaluated[-1:] != [trainer.state.global_step]:
        trainer.evaluate()  # the scores and confusion matrix should describe the model that is saved
    result = finish_training(trainer, output, callback, method, tokenizer, ctx)
    if result["stopped"]:
        return result
    # An adapter result has no model config to carry id2label: the class names travel beside every result.
    (Path(result["result_dir"]) / "labels.json").write_text(json.dumps({"labels": data.labels}), encoding="utf-8")
    evals = [h for h in trainer.state.log_history if "eval_accuracy" in h]
    return {**result, "labels": data.labels, "eval_accuracy": evals[-1]["eval_accuracy"] if evals else None,
            "eval_f1": evals[-1]["eval_f1"] if evals else None}
