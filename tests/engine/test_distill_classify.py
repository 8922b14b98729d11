"""Distillation of classifiers: a finished classify run (tiny BERT, MiniLM tokenizer) teaches a tiny Llama classifier
(SmolLM2 tokenizer) on the sentiment sample; the student moves toward the teacher's scores, and teachers that
cannot teach these labels are refused before any run."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from studio.config import parse_recipe
from studio.errors import StudioError
from studio.training import prepare_run

from tests.engine.test_classify import classify_recipe
from tests.engine.test_training import logged_trainable, run_in_process


def distill_recipe(student: Path, teacher: str, method: str = "full", alpha: float = 0.0, **train):
    return parse_recipe({
        "name": "distill-cls", "model": str(student), "stage": "distill", "method": {"name": method},
        "distill": {"teacher": teacher, "alpha": alpha, "temperature": 2.0},
        "data": {"dataset": "sample-sentiment", "max_length": 32, "validation": 0.25},
        "train": {"max_steps": 12, "batch_size": 8, "lr": 5e-3, "eval_every": 6, "save_every": 6,
                  "precision": "fp32", **train},
    })


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory, tiny_bert_dir):  # noqa: F811
    """A finished classify run with confident predictions, in its own workspace."""
    from studio.workspace import Workspace

    ws = Workspace.open(tmp_path_factory.mktemp("teacher-ws"))
    run_id, _, result = run_in_process(ws, classify_recipe(tiny_bert_dir, "full", max_steps=15, lr=2e-3))
    ws.update_run(run_id, status="completed", result_dir=result["result_dir"])  # what the job manager does
    return ws, run_id, result


def class_scores(model, tok, texts: list[str]) -> torch.Tensor:
    with torch.no_grad():
        batch = tok(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
        return model(**batch).logits.float()


def kl_to(teacher: torch.Tensor, student: torch.Tensor) -> float:
    t = teacher.log_softmax(-1)
    return float((t.exp() * (t - student.log_softmax(-1))).sum(-1).mean())


def test_a_classify_run_teaches_a_student_with_another_tokenizer(teacher_run, tiny_llama_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from studio.stages.classify import load_classifier, load_labelled
    from studio.stages.distill_classify import load_teacher_classifier

    ws, teacher_id, _ = teacher_run
    recipe = distill_recipe(tiny_llama_dir, f"run:{teacher_id}")
    texts = [r["text"] for r in load_labelled(recipe, ws).validation]
    teacher, teacher_tok, labels = load_teacher_classifier(f"run:{teacher_id}", ws)
    target = class_scores(teacher, teacher_tok, texts)
    torch.manual_seed(0)
    fresh, student_tok = load_classifier(str(tiny_llama_dir), ws, labels)
    before = kl_to(target, class_scores(fresh.eval(), student_tok, texts))

    run_id, events, result = run_in_process(ws, recipe)
    assert result["teacher"] == f"run:{teacher_id}" and result["labels"] == labels == ["neg", "pos"]
    assert any("Scoring the texts with teacher" in e.get("message", "") for e in events)
    assert any("eval_accuracy" in e for e in events)  # evaluated like the classify stage
    assert logged_trainable(events) == sum(p.numel() for p in fresh.parameters())
    tuned = AutoModelForSequenceClassification.from_pretrained(result["result_dir"]).eval()
    after = kl_to(target, class_scores(tuned, AutoTokenizer.from_pretrained(result["result_dir"]), texts))
    print(f"KL(teacher || student) on held-out texts: {before:.4f} before, {after:.4f} after")
    assert after < 0.5 * before, (before, after)


def test_lora_student_distils_too(teacher_run, tiny_llama_dir):
    ws, teacher_id, _ = teacher_run
    _, events, result = run_in_process(ws, distill_recipe(tiny_llama_dir, f"run:{teacher_id}", "lora", alpha=0.5,
                                                          max_steps=2, eval_every=2, save_every=2))
    assert Path(result["result_dir"]).name == "adapter" and (Path(result["result_dir"]) / "labels.json").exists()
    assert [e["step"] for e in events if "loss" in e][-1] == 2


def test_a_teacher_over_other_labels_is_refused_before_the_run(teacher_run, tiny_llama_dir, tmp_path):
    ws, teacher_id, _ = teacher_run
    data = tmp_path / "topics.csv"
    data.write_text("text,label\n" + "".join(f"text number {i},{'sport' if i % 2 else 'music'}\n" for i in range(20)))
    recipe = distill_recipe(tiny_llama_dir, f"run:{teacher_id}")
    recipe.data.dataset = str(data)
    with pytest.raises(StudioError, match="classifies into neg, pos but the dataset's labels are music, sport") as e:
        prepare_run(ws, recipe)
    assert e.value.field == "distill.teacher"


def test_a_teacher_that_is_not_a_classifier_is_refused(teacher_run, tiny_llama_dir):
    ws, _, _ = teacher_run
    runs = len(ws.list_runs())
    with pytest.raises(StudioError, match="is not a trained classifier") as e:
        prepare_run(ws, distill_recipe(tiny_llama_dir, str(tiny_llama_dir)))
    assert e.value.field == "distill.teacher" and len(ws.list_runs()) == runs  # nothing was queued
