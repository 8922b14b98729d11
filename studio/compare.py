"""Comparing runs: their curves, the recipe settings that differ, and their final and best metrics.

`compare_runs` reads each run's `recipe.yaml` and `metrics.jsonl`; the settings table keeps only
the dotted recipe keys whose values are not all equal (the name always shows, to tell the
columns apart), and the scores table has, per metric, each run's last value and its best value
(lowest for losses and perplexity, highest for the rest). `comparison_csv` writes both tables as
one CSV file. The UI draws the curves; this module only gathers the numbers.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import yaml

from studio.errors import StudioError
from studio.workspace import read_metrics

LOWER_IS_BETTER = ("loss", "perplexity", "distill_kl", "distill_ce")
SCORE_SKIPPED = {"step", "total_steps", "epoch", "type", "eval_runtime", "eval_samples_per_second",
                 "eval_steps_per_second", "tokens_per_s", "lr", "grad_norm", "eval_num_tokens", "num_tokens",
                 "entropy", "eval_entropy"}  # TRL's entropy of the predictions: a diagnostic, not a score


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{'train.lr': 0.0002, 'method.r': 16, ...} from a nested recipe mapping."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def lower_is_better(metric: str) -> bool:
    return metric.endswith(LOWER_IS_BETTER)


def scores(metrics: list[dict]) -> dict[str, dict[str, float]]:
    """{metric: {"final": last value, "best": best value}} over a run's events."""
    out: dict[str, dict[str, float]] = {}
    for event in metrics:
        for key, value in event.items():
            if key in SCORE_SKIPPED or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            entry = out.setdefault(key, {"final": value, "best": value})
            entry["final"] = value
            entry["best"] = min(entry["best"], value) if lower_is_better(key) else max(entry["best"], value)
    return out


def compare_runs(ws, run_ids: list[str]) -> dict:
    """{"runs": [{id, name, label, metrics}], "settings": {columns, rows}, "scores": {columns, rows},
    "metrics": [every metric any run logged]} for two or more runs."""
    if len(run_ids) < 2:
        raise StudioError("Pick at least two runs to compare.", field="run_ids", key="compare.too_few")
    runs, recipes = [], []
    for run_id in run_ids:
        run = ws.get_run(run_id)
        if run is None:
            raise StudioError(f"Run '{run_id}' does not exist; refresh the list of runs.", field="run_ids",
                              key="compare.missing", run_id=run_id)
        run_dir = Path(run["run_dir"])
        recipe_file = run_dir / "recipe.yaml"
        recipe = yaml.safe_load(recipe_file.read_text(encoding="utf-8")) if recipe_file.exists() else {}
        recipes.append(flatten(recipe or {}))
        runs.append({"id": run_id, "name": run["name"], "label": f"{run['name']} ({run_id[-4:]})",
                     "status": run["status"], "metrics": read_metrics(run_dir)})
    labels = [r["label"] for r in runs]
    keys = sorted(set().union(*recipes))
    differing = [k for k in keys if k == "name" or len({repr(r.get(k)) for r in recipes}) > 1]
    settings_rows = [[k, *(_cell(r.get(k)) for r in recipes)] for k in differing]
    per_run = [scores(r["metrics"]) for r in runs]
    metrics = sorted(set().union(*per_run))
    score_rows = []
    for metric in metrics:
        row = [metric]
        for s in per_run:
            entry = s.get(metric)
            row += [entry["final"], entry["best"]] if entry else [None, None]
        score_rows.append(row)
    score_columns = ["metric"] + [f"{label} {part}" for label in labels for part in ("final", "best")]
    all_metrics = sorted({k for r in runs for e in r["metrics"] for k, v in e.items()
                          if isinstance(v, (int, float)) and not isinstance(v, bool)
                          and k not in ("step", "total_steps", "epoch")})
    return {"runs": runs, "settings": {"columns": ["setting", *labels], "rows": settings_rows},
            "scores": {"columns": score_columns, "rows": score_rows}, "metrics": all_metrics}


def _cell(value: Any) -> Any:
    return "" if value is None else value if isinstance(value, (int, float, str)) else str(value)


def comparison_csv(comparison: dict, path: Path) -> Path:
    """Both tables of a comparison in one CSV file: the differing settings, a blank line, the scores."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for table in (comparison["settings"], comparison["scores"]):
        writer.writerow(table["columns"])
        writer.writerows(table["rows"])
        writer.writerow([])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path
