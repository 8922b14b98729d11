"""`train.report_to`: a run also logs to TensorBoard event files or a local MLflow store, and the studio's own
events (what its charts draw) stay the same."""
from __future__ import annotations

from pathlib import Path

import pytest

from studio import tracking
from studio.errors import StudioError
from studio.training import prepare_run
from tests.engine.test_training import run_in_process, tiny_recipe


def losses_by_step(events: list[dict]) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in events if "loss" in e and e.get("step")}


def test_tensorboard_event_files_hold_the_losses_the_studio_charted(workspace, tiny_llama_dir):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_id, events, result = run_in_process(workspace, tiny_recipe(tiny_llama_dir, report_to="tensorboard"))
    run_dir = Path(workspace.get_run(run_id)["run_dir"])
    assert result["result_dir"]
    assert any(str(tracking.tensorboard_dir(run_dir)) in e.get("message", "") for e in events)  # the log says where
    files = list(tracking.tensorboard_dir(run_dir).rglob("events.out.tfevents.*"))
    assert files
    board = EventAccumulator(str(files[0].parent))
    board.Reload()
    written = {s.step: s.value for s in board.Scalars("train/loss")}
    charted = losses_by_step(events)
    assert charted and set(written) == set(charted)
    assert all(written[step] == pytest.approx(charted[step], rel=1e-5) for step in charted)


def test_mlflow_logs_the_run_to_a_file_store_in_the_studio_home(workspace, tiny_llama_dir, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    run_id, events, result = run_in_process(workspace, tiny_recipe(tiny_llama_dir, report_to="mlflow"))
    assert result["result_dir"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(workspace.home / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name(tracking.MLFLOW_EXPERIMENT)
    (logged,) = client.search_runs([experiment.experiment_id])
    assert logged.info.run_name == run_id
    history = {m.step: m.value for m in client.get_metric_history(logged.info.run_id, "loss")}
    charted = losses_by_step(events)
    assert charted and set(history) == set(charted)
    assert all(history[step] == pytest.approx(charted[step], rel=1e-5) for step in charted)


def test_a_tracker_that_is_not_installed_is_refused_before_a_run_exists(workspace, tiny_llama_dir, monkeypatch):
    monkeypatch.setattr(tracking, "installed", lambda: ["none"])
    with pytest.raises(StudioError, match="pip install wandb") as refused:
        prepare_run(workspace, tiny_recipe(tiny_llama_dir, report_to="wandb"))
    assert refused.value.field == "train.report_to"
    assert workspace.list_runs() == []


def test_installed_lists_none_first_and_only_packages_present():
    names = tracking.installed()
    assert names[0] == "none" and set(names) <= set(tracking.TRACKERS)
