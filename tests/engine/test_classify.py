"""Sequence classification on tiny random BERT and Llama models: methods train, score, save and reload."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from studio.config import parse_recipe
from studio.errors import StudioError
from studio.training import prepare_run

from studio.memory import count_parameters
from tests.engine.test_training import logged_trainable, run_in_process

CLASSIFY_METHODS = ["full", "lora", "feature_extraction"]


@pytest.fixture(params=["bert", "llama"])
def tiny_model_dir(request, tiny_bert_dir, tiny_llama_dir) -> Path:
    return {"bert": tiny_bert_dir, "llama": tiny_llama_dir}[request.param]


def classify_recipe(model_dir, method="full", dataset="sample-sentiment", **train):
    return parse_recipe({"name": f"cls-{method}", "model": str(model_dir), "stage": "classify",
                         "method": {"name": method},
                         "data": {"dataset": str(dataset), "max_length": 32, "validation": 0.25},
                         "train": {"max_steps": 3, "batch_size": 8, "lr": 5e-3, "eval_every": 2, "save_every": 2,
                                   "precision": "fp32", **train}})


def reload(model_dir: Path, result_dir: Path):
    """The saved result as a ready classifier: a whole model, or the base + adapter (labels from labels.json)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    labels = json.loads((result_dir / "labels.json").read_text())["labels"]
    tok = AutoTokenizer.from_pretrained(result_dir)
    if (result_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        base = AutoModelForSequenceClassification.from_pretrained(
            model_dir, num_labels=len(labels), id2label=dict(enumerate(labels)), pad_token_id=tok.pad_token_id)
        return PeftModel.from_pretrained(base, str(result_dir)).eval(), tok, labels
    model = AutoModelForSequenceClassification.from_pretrained(result_dir).eval()
    assert [model.config.id2label[i] for i in range(len(labels))] == labels  # the labels live in the config
    return model, tok, labels


def predict(model, tok, texts: list[str]) -> list[int]:
    with torch.no_grad():
        batch = tok(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
        return model(**batch).logits.argmax(-1).tolist()


@pytest.mark.parametrize("method", CLASSIFY_METHODS)
def test_classify_trains_scores_and_the_saved_model_predicts_the_same(method, workspace, tiny_model_dir):
    from studio.stages.classify import load_labelled

    recipe = classify_recipe(tiny_model_dir, method)
    run_id, events, result = run_in_process(workspace, recipe)
    # The picker's count (a meta model with a 2-label head) is exactly what trained.
    assert logged_trainable(events) == count_parameters(tiny_model_dir, method, task="classify")["trainable"]
    assert [e["step"] for e in events if "loss" in e][-1] == 3
    scored = [e for e in events if "eval_accuracy" in e]
    assert scored and all(0 <= e["eval_accuracy"] <= 1 and 0 <= e["eval_f1"] <= 1 for e in scored)
    run_dir = Path(workspace.get_run(run_id)["run_dir"])
    confusion = json.loads((run_dir / "confusion.json").read_text())
    assert confusion["labels"] == ["neg", "pos"] and confusion["step"] == 3  # the last evaluation is the final model
    assert sum(map(sum, confusion["matrix"])) == 30

    # The reloaded result gives exactly the predictions the final evaluation counted.
    model, tok, labels = reload(tiny_model_dir, Path(result["result_dir"]))
    val = load_labelled(recipe, workspace).validation
    matrix = [[0, 0], [0, 0]]
    for record, guess in zip(val, predict(model, tok, [r["text"] for r in val])):
        matrix[labels.index(record["label"])][guess] += 1
    assert matrix == confusion["matrix"]


def test_feature_extraction_trains_only_the_head(workspace, tiny_bert_dir):
    from safetensors.torch import load_file

    _, events, result = run_in_process(workspace, classify_recipe(tiny_bert_dir, "feature_extraction"))
    base = load_file(tiny_bert_dir / "model.safetensors")
    tuned = load_file(Path(result["result_dir"]) / "model.safetensors")
    changed = {k for k, v in tuned.items() if k.removeprefix("bert.") not in base
               or not torch.equal(v, base[k.removeprefix("bert.")])}
    assert changed == {"classifier.weight", "classifier.bias"}
    assert any("Trainable parameters: 66 of" in e.get("message", "") for e in events)  # 32 x 2 + 2


def test_lora_on_a_classifier_trains_the_head_too(workspace, tiny_bert_dir):
    from safetensors.torch import load_file

    _, _, result = run_in_process(workspace, classify_recipe(tiny_bert_dir, "lora"))
    saved = load_file(Path(result["result_dir"]) / "adapter_model.safetensors")
    assert any("classifier" in k for k in saved) and any("lora_B" in k for k in saved)


def test_one_class_data_is_refused_before_the_run(workspace, tiny_bert_dir, tmp_path):
    src = tmp_path / "happy.jsonl"
    src.write_text("".join(json.dumps({"text": f"good {i}", "label": "pos"}) + "\n" for i in range(10)))
    with pytest.raises(StudioError, match="at least two classes"):
        prepare_run(workspace, classify_recipe(tiny_bert_dir, dataset=src))
    assert workspace.list_runs() == []


def test_a_validation_label_unknown_to_training_is_named(workspace, tiny_bert_dir, tmp_path):
    from studio.data.builder import ImportRequest, import_dataset
    from studio.data.cleaning import SplitConfig

    src = tmp_path / "moods.csv"
    rows = [f"fine {i},pos" for i in range(6)] + [f"awful {i},neg" for i in range(6)] + ["meh,neutral"]
    src.write_text("text,label\n" + "\n".join(rows) + "\n")
    import_dataset(workspace, ImportRequest(source=str(src), name="moods", split=SplitConfig(validation=0.0)))
    from studio.data.builder import dataset_dir

    # Move the lone 'neutral' example into a validation split of its own.
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = dataset_dir(workspace, "moods")
    train = pq.read_table(folder / "train.parquet").to_pylist()
    pq.write_table(pa.Table.from_pylist([r for r in train if r["label"] != "neutral"]), folder / "train.parquet")
    pq.write_table(pa.Table.from_pylist([r for r in train if r["label"] == "neutral"]), folder / "validation.parquet")
    with pytest.raises(StudioError, match="'neutral'"):
        prepare_run(workspace, classify_recipe(tiny_bert_dir, dataset="moods"))


def test_instruction_data_and_feature_extraction_outside_classify_are_refused(workspace, tiny_bert_dir,
                                                                               tiny_llama_dir, tmp_path):
    src = tmp_path / "faq.jsonl"
    src.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "d"}\n')
    with pytest.raises(StudioError, match="text column and a label column"):
        prepare_run(workspace, classify_recipe(tiny_bert_dir, dataset=src))
    recipe = classify_recipe(tiny_llama_dir, "feature_extraction")
    recipe.stage = "sft"
    with pytest.raises(StudioError, match="cannot train stage 'sft'"):
        prepare_run(workspace, recipe)
    assert workspace.list_runs() == []


def test_macro_f1_averages_the_classes():
    from studio.stages.classify import scores

    # class 0: tp 3, support 4, predicted 3 -> F1 6/7; class 1: tp 1, support 1, predicted 2 -> F1 2/3.
    result = scores([[3, 1], [0, 1]])
    assert result["accuracy"] == pytest.approx(0.8)
    assert result["f1"] == pytest.approx((6 / 7 + 2 / 3) / 2)


HELD_OUT = [("An absolute delight, I smiled the whole time.", "pos"), ("Everything about it was great.", "pos"),
            ("Me ha gustado muchísimo, es estupendo.", "pos"), ("Qué maravilla de sitio, todo perfecto.", "pos"),
            ("Lovely people and a wonderful meal.", "pos"), ("Funciona genial, estoy encantada.", "pos"),
            ("A complete waste of time and money.", "neg"), ("Broken on arrival, really bad.", "neg"),
            ("Fue horrible, no vuelvo nunca.", "neg"), ("Malísimo, una estafa.", "neg"),
            ("Rude staff and filthy tables.", "neg"), ("Muy aburrido y demasiado caro.", "neg")]


@pytest.mark.slow
def test_minilm_learns_sentiment_on_held_out_phrasings(workspace):
    from studio.models.catalogue import resolve_model

    recipe = parse_recipe({"name": "minilm-sentiment", "model": "all-minilm-l6-v2", "stage": "classify",
                           "method": {"name": "full"},
                           "data": {"dataset": "sample-sentiment", "max_length": 32, "validation": 0.2},
                           "train": {"max_steps": 60, "batch_size": 8, "lr": 2e-4, "eval_every": 60,
                                     "save_every": 60, "precision": "fp32"}})
    _, _, result = run_in_process(workspace, recipe)
    model, tok, labels = reload(resolve_model("all-minilm-l6-v2", workspace), Path(result["result_dir"]))
    guesses = predict(model, tok, [t for t, _ in HELD_OUT])
    accuracy = sum(labels[g] == want for g, (_, want) in zip(guesses, HELD_OUT)) / len(HELD_OUT)
    print(f"validation accuracy {result['eval_accuracy']:.3f}, F1 {result['eval_f1']:.3f}, new phrasings {accuracy:.3f}")
    assert result["eval_accuracy"] >= 0.75 and accuracy >= 0.75


def test_the_run_says_where_its_validation_rows_came_from(workspace, tiny_bert_dir, tmp_path):
    """Held out of the training file: the run view warns that its accuracy runs high; a separate validation file
    imported with the dataset: no warning."""
    import csv

    from studio.data.builder import ImportRequest, import_dataset
    from studio.ui.i18n import Texts
    from studio.ui.train_tab import validation_note

    run_id, _, _ = run_in_process(workspace, classify_recipe(tiny_bert_dir, "full", max_steps=1))
    carved = json.loads((Path(workspace.get_run(run_id)["run_dir"]) / "validation.json").read_text())
    assert carved["source"] == "training" and carved["rows"] > 0
    assert "held out of the training file" in validation_note(carved, Texts.load(), "en")
    rows = [json.loads(line) for line in (Path(__file__).resolve().parents[2] / "assets" / "sample-sentiment.jsonl")
            .read_text(encoding="utf-8").splitlines()]
    paths = {}
    for part, chunk in (("train", rows[:100]), ("valid", rows[100:])):
        paths[part] = tmp_path / f"{part}.csv"
        with open(paths[part], "w", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=["text", "label"])
            writer.writeheader()
            writer.writerows(chunk)
    import_dataset(workspace, ImportRequest(source=str(paths["train"]), name="moods-sep",
                                            heldout={"validation": str(paths["valid"])}))
    run_id, _, _ = run_in_process(workspace, classify_recipe(tiny_bert_dir, "full", dataset="moods-sep", max_steps=1))
    separate = json.loads((Path(workspace.get_run(run_id)["run_dir"]) / "validation.json").read_text())
    assert separate == {"source": "separate", "rows": 20} and validation_note(separate, Texts.load(), "es") == ""
