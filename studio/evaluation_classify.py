"""Evaluating finished classification runs on a dataset split: accuracy, macro-F1 and the confusion matrix.

The texts and labels come the way the classify stage reads them (`load_labelled` with the run's
recipe pointed at the chosen dataset; `test` is a studio dataset's test split, else validation).
Each run predicts with its saved result on its base model and its own label list
(`labels.json`); a dataset label the run never learnt is refused, since it could never be right.
The per-example list has the same shape as generative evaluation's (prompt = the text,
reference = the true label, outputs = each run's predicted label) so the Evaluate tab shows both.
"""
from __future__ import annotations

import json
from pathlib import Path

from studio.errors import StudioError
from studio.phase import Phase

BATCH = 32


def labelled_split(ws, run: dict, dataset: str, split: str, limit: int) -> list[dict]:
    from studio.config import parse_recipe_yaml
    from studio.data.examples import is_studio_dataset
    from studio.stages.classify import load_labelled

    recipe = parse_recipe_yaml((Path(run["run_dir"]) / "recipe.yaml").read_text(encoding="utf-8"))
    recipe.data.dataset = dataset
    data = load_labelled(recipe, ws)
    if split == "test" and is_studio_dataset(ws, dataset):
        from studio.data.builder import load_split

        test = [{**r, "label": str(r["label"]).strip()} for r in load_split(ws, dataset, "test")]
        rows = test or data.validation
    else:
        rows = data.train if split == "train" else data.validation
    if not rows:
        raise StudioError(f"Split '{split}' of '{dataset}' has no labelled text; pick another split.",
                          field="dataset", key="eval.no_labelled", split=split, dataset=dataset)
    return rows[:limit]


def predict(ws, run: dict, texts: list[str]) -> tuple[list[str], list[str]]:
    """(the run's labels, its predicted label for each text)."""
    import torch

    from studio.methods import METHODS
    from studio.stages.classify import load_classifier

    result_dir = Path(run["result_dir"])
    labels = json.loads((result_dir / "labels.json").read_text(encoding="utf-8"))["labels"]
    base, tokenizer = load_classifier(run["model"], ws, labels)
    model = METHODS.get(run["method"], field="targets").load_result(base, result_dir).eval()
    out: list[str] = []
    with torch.no_grad():
        for start in range(0, len(texts), BATCH):
            batch = tokenizer(texts[start:start + BATCH], padding=True, truncation=True, max_length=512,
                              return_tensors="pt")
            out.extend(labels[i] for i in model(**batch).logits.argmax(-1).tolist())
    return labels, out


def evaluate_classifiers(ws, runs: list[tuple[str, dict]], dataset: str, split: str, limit: int,
                         say) -> dict:
    """Rows (accuracy, f1), confusion matrices and per-example predictions for (label, run) pairs."""
    from studio.stages.classify import scores

    rows, confusion, predictions = [], {}, {}
    records = labelled_split(ws, runs[0][1], dataset, split, limit)
    texts, truth = [r["text"] for r in records], [r["label"] for r in records]
    for label, run in runs:
        say(Phase(f"Evaluating {label} on {len(records)} labelled texts", "evaluating_labelled", target=label,
                  n=len(records)))
        labels, predicted = predict(ws, run, texts)
        unknown = sorted(set(truth) - set(labels))
        if unknown:
            raise StudioError(f"'{dataset}' has label(s) {', '.join(unknown)} that run '{run['name']}' never learnt "
                              f"(it knows {', '.join(labels)}); evaluate it on data with its labels.",
                              field="dataset", key="eval.unknown_labels", dataset=dataset,
                              labels=", ".join(unknown), name=run["name"], known=", ".join(labels))
        index = {name: i for i, name in enumerate(labels)}
        matrix = [[0] * len(labels) for _ in labels]
        for true, guess in zip(truth, predicted):
            matrix[index[true]][index[guess]] += 1
        rows.append({"target": label, "kind": "run", "shots": 0, **scores(matrix)})
        confusion[label] = {"labels": labels, "matrix": matrix}
        predictions[label] = predicted
    examples = []
    for i, (text, true) in enumerate(zip(texts, truth)):
        outputs = {label: p[i] for label, p in predictions.items()}
        correct = {label: float(p == true) for label, p in outputs.items()}
        examples.append({"index": i, "prompt": text, "reference": true, "outputs": outputs, "rougeL": correct,
                         "spread": max(correct.values()) - min(correct.values())})
    return {"n": len(records), "columns": ["accuracy", "f1"], "rows": rows, "examples": examples,
            "confusion": confusion}
