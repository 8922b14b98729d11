"""Experiment trackers a run also reports to (`train.report_to`), besides the studio's own charts.

Each tracker is transformers' own callback for it, only when its package is installed: TensorBoard writes event
files into the run folder (`tensorboard/`), MLflow logs to a local file store in the studio's home (`mlruns/`,
unless MLFLOW_TRACKING_URI names another), Trackio to its local store, W&B as the user's login and WANDB_MODE say.
The studio's charts read the run's own events either way."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from studio.errors import StudioError

TRACKERS = ("none", "tensorboard", "mlflow", "trackio", "wandb")
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "trackio": "trackio", "wandb": "wandb"}
MLFLOW_EXPERIMENT = "fine-tuning-studio"


def installed() -> list[str]:
    """The trackers this machine can report to ('none' first)."""
    return ["none"] + [name for name, package in PACKAGES.items() if importlib.util.find_spec(package) is not None]


def check(name: str) -> None:
    """Refuse a tracker whose package is not installed, before a run is created."""
    if name != "none" and name not in installed():
        raise StudioError(f"'train.report_to' is '{name}' but its package is not installed; install it (pip install "
                          f"{PACKAGES[name]}) or choose none.", field="train.report_to",
                          key="recipe.tracker_missing", tracker=name, package=PACKAGES[name])


def tensorboard_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "tensorboard"


def mlflow_uri(home: Path) -> str:
    """Where MLflow logs: the user's MLFLOW_TRACKING_URI, else a file store in the studio's home."""
    return os.environ.get("MLFLOW_TRACKING_URI") or (Path(home) / "mlruns").resolve().as_uri()


def callbacks(name: str, run_dir: Path, home: Path) -> tuple[list, str | None]:
    """The trainer callbacks of tracker `name` and a sentence saying where it writes (None for 'none')."""
    if name == "none":
        return [], None
    check(name)
    from transformers.integrations import integration_utils as hf

    if name == "tensorboard":
        callback = hf.TensorBoardCallback()
        callback.logging_dir = str(tensorboard_dir(run_dir))
        return [callback], f"TensorBoard events go to {callback.logging_dir}"
    if name == "mlflow":
        return [mlflow_callback(mlflow_uri(home))], f"MLflow logs to {mlflow_uri(home)} ({MLFLOW_EXPERIMENT})"
    if name == "trackio":
        return [hf.TrackioCallback()], "Trackio logs to its local store (trackio show)"
    return [hf.WandbCallback()], "Weights & Biases logs this run (WANDB_MODE decides online or offline)"


def mlflow_callback(uri: str):
    """transformers' MLflow callback pointed at `uri` and the studio's experiment."""
    from transformers.integrations.integration_utils import MLflowCallback

    class StudioMLflow(MLflowCallback):
        """transformers' MLflow callback pointed at the studio's store and experiment, without touching the
        process's environment (several runs may share it in tests)."""

        def __init__(self, uri: str):
            super().__init__()
            self.uri = uri

        def setup(self, args, state, model):
            if self.uri.startswith("file:"):
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow 3 keeps file stores opt-in
            self._ml_flow.set_tracking_uri(self.uri)
            if not os.environ.get("MLFLOW_EXPERIMENT_NAME"):
                self._ml_flow.set_experiment(MLFLOW_EXPERIMENT)
            super().setup(args, state, model)

    return StudioMLflow(uri)
