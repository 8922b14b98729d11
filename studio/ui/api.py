"""Named API endpoints for scripts and tests (`gradio_client`): the UI-automation contract.

`train_start(recipe_yaml) -> run_id`, `run_status(run_id) -> dict`, `train_cancel(run_id)`,
`train_resume(run_id)`: each is one engine call. A `StudioError` becomes a `gr.Error` carrying the
same one-sentence message, which `gradio_client` raises as an `AppError`. Cancel and resume
return the run's status after the call so a script can see what happened.
"""
from __future__ import annotations

from typing import Any

import gradio as gr

from studio.errors import StudioError


def add_api(engine: Any) -> None:
    """Register the endpoints on the Blocks being built (call inside `with gr.Blocks()`)."""

    def _call(fn, *args):
        try:
            return fn(*args)
        except StudioError as exc:
            raise gr.Error(exc.message, print_exception=False) from None

    def train_start(recipe_yaml: str) -> str:
        """Validate a recipe (YAML text), queue its training run and return the run id."""
        return _call(engine.start_training, recipe_yaml)

    def run_status(run_id: str) -> dict:
        """The run's row, queue position, ETA, tokens/s, log tail and metric events."""
        return _call(engine.run_status, run_id)

    def train_cancel(run_id: str) -> str:
        """Ask a queued or running run to stop (it saves a checkpoint); returns its status."""
        _call(engine.cancel, run_id)
        return _call(engine.run_status, run_id)["status"]

    def train_resume(run_id: str) -> str:
        """Queue a stopped run again from its last checkpoint; returns its status."""
        _call(engine.resume, run_id)
        return _call(engine.run_status, run_id)["status"]

    for fn in (train_start, run_status, train_cancel, train_resume):
        gr.api(fn, api_name=fn.__name__, concurrency_limit=None)
