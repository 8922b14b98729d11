"""Comparing runs (studio.compare) and the metric charts (studio.ui.metric_charts) on runs written to a real
workspace: differing settings only, final and best values, the CSV, and figures built from the events."""
from __future__ import annotations

import csv
import json
import time

import pytest
import yaml

from studio.compare import compare_runs, comparison_csv
from studio.errors import StudioError


def add_run(ws, run_id: str, lr: float, losses: list[float], rouge: list[float]) -> None:
    run_dir = ws.home / "runs" / run_id
    run_dir.mkdir(parents=True)
    recipe = {"name": f"run-{run_id}", "model": "smollm2-135m-instruct", "stage": "sft",
              "method": {"name": "lora", "r": 16}, "train": {"lr": lr, "batch_size": 8, "seed": 42}}
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    events = [{"type": "progress", "step": i + 1, "loss": loss, "lr": lr, "epoch": (i + 1) / 4}
              for i, loss in enumerate(losses)]
    events += [{"type": "progress", "step": 2 * (i + 1), "eval_loss": 3.0 - i, "eval_rougeL": r}
               for i, r in enumerate(rouge)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    ws.insert_run({"id": run_id, "name": f"run-{run_id}", "model": "smollm2-135m-instruct", "stage": "sft",
                   "method": "lora", "dataset": "sample", "status": "completed", "run_dir": str(run_dir),
                   "created_at": time.time()})


@pytest.fixture
def two_runs(workspace):
    add_run(workspace, "a1", 2e-4, [3.0, 2.5, 2.0, 2.2], [0.2, 0.4])
    add_run(workspace, "b2", 1e-3, [3.1, 2.0, 1.5, 1.4], [0.3, 0.25])
    return workspace


def test_only_differing_settings_and_final_and_best_scores(two_runs):
    result = compare_runs(two_runs, ["a1", "b2"])
    settings = {row[0]: row[1:] for row in result["settings"]["rows"]}
    assert set(settings) == {"name", "train.lr"} and settings["train.lr"] == [2e-4, 1e-3]
    scores = {row[0]: row[1:] for row in result["scores"]["rows"]}
    assert scores["loss"] == [2.2, 2.0, 1.4, 1.4]  # final, best (lowest) per run
    assert scores["eval_rougeL"] == [0.4, 0.4, 0.25, 0.3]  # best is the highest
    assert "eval_rougeL" in result["metrics"] and "loss" in result["metrics"]


def test_the_csv_holds_both_tables(two_runs, tmp_path):
    path = comparison_csv(compare_runs(two_runs, ["a1", "b2"]), tmp_path / "cmp.csv")
    rows = list(csv.reader(path.open(encoding="utf-8")))
    assert rows[0][0] == "setting" and any(r and r[0] == "train.lr" for r in rows)
    header = next(r for r in rows if r and r[0] == "metric")
    assert header[1].endswith("final") and header[2].endswith("best")


def test_too_few_or_unknown_runs_are_refused(two_runs):
    with pytest.raises(StudioError, match="at least two"):
        compare_runs(two_runs, ["a1"])
    with pytest.raises(StudioError, match="'zz' does not exist"):
        compare_runs(two_runs, ["a1", "zz"])


def test_metric_charts_have_a_panel_per_logged_quantity_with_step_epoch_hover(two_runs):
    from studio.ui.i18n import Texts
    from studio.ui.metric_charts import compare_figure, metric_series, metrics_figure

    texts = Texts.load()
    metrics = compare_runs(two_runs, ["a1", "b2"])["runs"][0]["metrics"]
    series = metric_series(metrics)
    assert series["eval_rougeL"]["x"] == [2, 4] and series["eval_rougeL"]["epoch"] == [0.5, 1.0]
    fig = metrics_figure(metrics, texts, "es")
    names = {trace.name for trace in fig.data}
    assert {"ROUGE-L", "tasa de aprendizaje"} <= names and "pérdida de entrenamiento" not in names  # loss: own chart
    assert all("epoch" in trace.hovertemplate for trace in fig.data)
    runs = compare_runs(two_runs, ["a1", "b2"])["runs"]
    overlay = compare_figure(runs, "loss", texts, "en")
    assert [t.name for t in overlay.data] == [r["label"] for r in runs] and list(overlay.data[1].y) == [3.1, 2.0, 1.5, 1.4]
    assert metrics_figure([], texts, "en").layout.annotations  # an empty run says metrics will appear


def test_a_confusion_matrix_draws_as_a_labelled_heatmap():
    from studio.ui.i18n import Texts
    from studio.ui.metric_charts import confusion_figure

    texts = Texts.load()
    fig = confusion_figure({"labels": ["neg", "pos"], "matrix": [[5, 1], [2, 7]], "step": 30}, texts, "es")
    assert list(fig.data[0].x) == ["neg", "pos"] and fig.data[0].z[1][1] == 7
    assert "paso 30" in fig.layout.title.text
    assert confusion_figure(None, texts, "en") is None


def test_step_axes_tick_whole_steps():
    """A three-step run is ticked 1, 2, 3 (not 0.5, 1.5...); a long run keeps plotly's own (whole) ticks."""
    from studio.ui.charts import loss_figure
    from studio.ui.i18n import Texts
    from studio.ui.metric_charts import metrics_figure

    texts = Texts.load()
    short = [{"type": "progress", "step": s, "loss": 2.0 / s, "epoch": 0.1 * s, "grad_norm": 1.0} for s in (1, 2, 3)]
    loss = loss_figure(short, texts, "en").layout.xaxis
    assert loss.dtick == 1 and loss.tickformat == "d"
    assert metrics_figure(short, texts, "en").layout.xaxis.dtick == 1
    long = [{"type": "progress", "step": s, "loss": 1.0, "epoch": 0.0} for s in range(1, 200)]
    assert loss_figure(long, texts, "en").layout.xaxis.dtick is None
