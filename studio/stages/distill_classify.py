"""Knowledge distillation for classifiers: a student classifier learns the labels and a teacher's scores.

When a `distill` recipe's dataset holds text + label records, the teacher is a trained classifier
over the same labels (a finished `classify` run as `run:<id>`, or a model folder whose config
names its labels) and the student is the recipe's model with a fresh head, trained like the
`classify` stage (accuracy, macro-F1 and the confusion matrix at each evaluation). The loss is
`alpha * CE(labels) + (1 - alpha) * T^2 * KL(teacher_T || student_T)` over the classes. The teacher
reads each text once, before training, with its own tokenizer (so, unlike language-model
distillation, teacher and student need not share a vocabulary: a BERT can teach a Llama), its
scores become a column of the training data, and it leaves memory before the student trains.
"""
from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

from studio.errors import StudioError
from studio.stages.base import TrainContext

FIELD = "distill.teacher"
TEACHER_BATCH = 32


def _labels_of_config(config, spec: str) -> list[str]:
    names = [config.id2label[i] for i in range(config.num_labels)]
    if all(str(n).startswith("LABEL_") for n in names):
        generic = ', '.join(names)
        raise StudioError(f"The teacher '{spec}' does not name its classes (only {generic}); use a "
                          "finished classify run as 'run:<run id>' or a classifier whose config has id2label.",
                          field=FIELD, key="stage.distill_classify.unnamed_labels", spec=spec, labels=generic)
    return [str(n) for n in names]


def teacher_labels(spec: str, ws) -> list[str]:
    """The classes a classifier teacher scores, in its output order; StudioError if it is not a classifier."""
    from transformers import AutoConfig

    from studio.models.catalogue import resolve_model
    from studio.models.refs import parse
    from studio.stages.distill_teacher import teacher_run

    if parse(spec).is_run:
        run = teacher_run(spec, ws)
        labels_file = Path(run["result_dir"]) / "labels.json"
        if not labels_file.exists():
            raise StudioError(f"'{FIELD}' names run '{run['id']}', a {run['stage']} run; a classifier teacher must "
                              "be a finished classify run.", field=FIELD,
                              key="stage.distill_classify.not_classify_run", setting=FIELD, run_id=run["id"],
                              stage=run["stage"])
        return json.loads(labels_file.read_text(encoding="utf-8"))["labels"]
    try:
        config = AutoConfig.from_pretrained(str(resolve_model(spec, ws)))
    except (OSError, ValueError) as error:
        raise StudioError(f"The teacher '{spec}' cannot be read ({error}); give a classifier folder or "
                          "'run:<run id>'.", field=FIELD,
                          key="stage.distill_classify.unreadable", spec=spec, reason=str(error)) from None
    if not any(a.endswith("ForSequenceClassification") for a in (config.architectures or [])):
        raise StudioError(f"The teacher '{spec}' is not a trained classifier; for a dataset of texts and labels the "
                          "teacher must be a finished classify run ('run:<run id>') over the same labels.",
                          field=FIELD, key="stage.distill_classify.not_classifier", spec=spec)
    return _labels_of_config(config, spec)


def teacher_order(teacher: list[str], student: list[str], spec: str) -> list[int]:
    """For each student class, the teacher's output index for it; StudioError when the label sets differ."""
    if set(teacher) != set(student):
        teacher_names, student_names = ', '.join(teacher), ', '.join(student)
        raise StudioError(f"The teacher '{spec}' classifies into {teacher_names} but the dataset's labels are "
                          f"{student_names}; pick a teacher trained on the same labels.", field=FIELD,
                          key="stage.distill_classify.label_mismatch", spec=spec, teacher_labels=teacher_names,
                          student_labels=student_names)
    return [teacher.index(label) for label in student]


def load_teacher_classifier(spec: str, ws, trust: bool = False) -> tuple[Any, Any, list[str]]:
    """(model, tokenizer, labels) of a classifier teacher, frozen and in eval mode."""
    from transformers import AutoModelForSequenceClassification

    from studio.methods import METHODS
    from studio.models.catalogue import resolve_model
    from studio.models.loading import _load_tokenizer_from
    from studio.models.refs import parse
    from studio.stages.classify import load_classifier
    from studio.stages.distill_teacher import teacher_run

    labels = teacher_labels(spec, ws)
    if parse(spec).is_run:
        run = teacher_run(spec, ws)
        base, tokenizer = load_classifier(run["model"], ws, labels, trust)
        model = METHODS.get(run["method"], field=FIELD).load_result(base, Path(run["result_dir"]))
    else:
        source = resolve_model(spec, ws)
        model = AutoModelForSequenceClassification.from_pretrained(source, use_safetensors=True,
                                                                   trust_remote_code=trust)
        tokenizer = _load_tokenizer_from(source, spec, trust)
    return model.eval().requires_grad_(False), tokenizer, labels


def teacher_scores(model, tokenizer, texts: list[str], order: list[int], max_length: int) -> list[list[float]]:
    """The teacher's logits for each text, columns in the student's label order."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    out: list[list[float]] = []
    with torch.no_grad():
        for start in range(0, len(texts), TEACHER_BATCH):
            batch = tokenizer(texts[start:start + TEACHER_BATCH], truncation=True, max_length=max_length,
                              padding=True, return_tensors="pt").to(device)
            out.extend(model(**batch).logits.float()[:, order].cpu().tolist())
    return out


def _trainer_class():
    from transformers import Trainer

    from studio.stages.distill_teacher import soft_target_loss

    class ClassifierDistillationTrainer(Trainer):
        """Trainer whose loss mixes the labels with the teacher's softened class scores (a data column)."""

        def __init__(self, *args, temperature: float, alpha: float, **kwargs):
            super().__init__(*args, **kwargs)
            self.temperature, self.alpha = temperature, alpha

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs = dict(inputs)
            teacher, labels = inputs.pop("teacher_logits"), inputs.pop("labels")
            outputs = model(**inputs)
            loss, _, _ = soft_target_loss(outputs.logits.float(), teacher.float(), labels, len(labels),
                                          self.temperature, self.alpha)
            return (loss, outputs) if return_outputs else loss

    return ClassifierDistillationTrainer


def _collator(padding):
    import torch

    def collate(features: list[dict]) -> dict:
        soft = torch.tensor([f["teacher_logits"] for f in features], dtype=torch.float32)
        batch = padding([{k: v for k, v in f.items() if k != "teacher_logits"} for f in features])
        batch["teacher_logits"] = soft
        return batch

    return collate


def check_classifier_distillation(recipe, ws, spec: str) -> None:
    """The student can classify, the data has labels, and the teacher scores exactly those labels."""
    from studio.stages.classify import check_classifier_model, load_labelled

    check_classifier_model(recipe, ws)
    teacher_order(teacher_labels(spec, ws), load_labelled(recipe, ws).labels, spec)


def distill_classifier(ctx: TrainContext, settings) -> dict:
    import functools

    from studio.stages.classify import train_classifier
    from studio.workspace import Workspace

    spec = settings.teacher.strip()
    ws = Workspace.open(ctx.home)

    def add_teacher_scores(data, train_ds, eval_ds):
        ctx.emit({"type": "log", "message": f"Scoring the texts with teacher {spec} (T={settings.temperature}, "
                                            f"alpha={settings.alpha})"})
        teacher, tokenizer, labels = load_teacher_classifier(spec, ws, ctx.recipe.trust_remote_code)
        order = teacher_order(labels, data.labels, spec)
        length = ctx.recipe.data.max_length
        train_ds = train_ds.add_column("teacher_logits", teacher_scores(
            teacher, tokenizer, [r["text"] for r in data.train], order, length))
        if eval_ds is not None:
            eval_ds = eval_ds.add_column("teacher_logits", teacher_scores(
                teacher, tokenizer, [r["text"] for r in data.validation], order, length))
        del teacher
        gc.collect()
        return train_ds, eval_ds

    trainer = functools.partial(_trainer_class(), temperature=settings.temperature, alpha=settings.alpha)
    result = train_classifier(ctx, trainer_cls=trainer, extend=add_teacher_scores, collator=_collator)
    return {**result, "teacher": spec}
