"""A deterministic in-memory stand-in for `studio.engine.Engine`, for UI tests that need no training."""
from __future__ import annotations

import time

from studio.config import Recipe, parse_recipe_yaml, recipe_to_yaml
from studio.errors import StudioError


class FakeEngine:
    """Runs advance one step per `run_status` call; one run trains at a time, the rest queue."""

    def __init__(self, ws=None, total_steps: int = 5):
        self.ws = ws
        self.total_steps = total_steps
        self.runs: dict[str, dict] = {}
        self.recipes: dict[str, str] = {}
        self.calls: list[tuple] = []

    def start_training(self, recipe):
        if isinstance(recipe, str):
            recipe = parse_recipe_yaml(recipe)
        assert isinstance(recipe, Recipe)
        if recipe.data.dataset == "missing":
            raise StudioError("Dataset 'missing' does not exist; pick one from the list.", field="data.dataset")
        run_id = f"run-{len(self.runs) + 1}"
        self.runs[run_id] = {"id": run_id, "name": recipe.name, "model": recipe.model, "method": recipe.method.name,
                             "stage": recipe.stage, "status": "queued", "step": 0, "total_steps": self.total_steps,
                             "final_loss": None, "created_at": time.time(), "started_at": None,
                             "finished_at": None, "result_dir": None, "error": None, "run_dir": f"/tmp/{run_id}"}
        self.recipes[run_id] = recipe_to_yaml(recipe)
        self.calls.append(("start", run_id))
        return run_id

    def _get(self, run_id):
        if run_id not in self.runs:
            raise StudioError(f"There is no run '{run_id}'; pick one from the Runs list.", field="run_id")
        return self.runs[run_id]

    def _advance(self, run):
        busy = any(r["status"] in ("running", "cancelling") for r in self.runs.values() if r is not run)
        if run["status"] == "queued" and not busy:
            run["status"], run["started_at"] = "running", time.time()
        elif run["status"] == "running":
            run["step"] += 1
            if run["step"] >= run["total_steps"]:
                run.update(status="completed", finished_at=time.time(), final_loss=1.0, result_dir="/tmp/x")
        elif run["status"] == "cancelling":
            run.update(status="cancelled", finished_at=time.time())

    def run_status(self, run_id):
        run = self._get(run_id)
        self._advance(run)
        ahead = sum(1 for r in self.runs.values() if r is not run and r["status"] in ("queued", "running")
                    and r["created_at"] <= run["created_at"]) if run["status"] == "queued" else 0
        metrics = [{"step": s, "loss": 3.0 - 0.1 * s} for s in range(1, run["step"] + 1)]
        return {**run, "queue_position": ahead, "eta_s": 10.0, "tokens_per_s": 123.0,
                "log_tail": [f"step {s}" for s in range(1, run["step"] + 1)], "metrics": metrics}

    def cancel(self, run_id):
        run = self._get(run_id)
        self.calls.append(("cancel", run_id))
        if run["status"] in ("queued", "running"):
            run["status"] = "cancelling"

    def resume(self, run_id):
        run = self._get(run_id)
        if run["status"] not in ("cancelled", "interrupted", "failed"):
            raise StudioError(f"Run '{run['name']}' is {run['status']}; only stopped runs can be resumed.")
        self.calls.append(("resume", run_id))
        run["status"] = "queued"

    def delete_run(self, run_id):
        run = self._get(run_id)
        if run["status"] in ("queued", "running", "cancelling"):
            raise StudioError(f"Run '{run['name']}' is {run['status']}; cancel it before deleting it.")
        del self.runs[run_id]

    def list_runs(self):
        return [{**r, "duration_s": 12.0 if r["started_at"] else None}
                for r in sorted(self.runs.values(), key=lambda r: -r["created_at"])]

    def active_run(self):
        return next((r for r in self.list_runs() if r["status"] in ("queued", "running", "cancelling")), None)

    def run_recipe_yaml(self, run_id):
        self._get(run_id)
        return self.recipes[run_id]

    def finished_runs(self):
        return [r for r in self.list_runs() if r["status"] == "completed" and r["result_dir"]]

    def model_choices(self):
        return ["smollm2-135m-instruct"]

    def dataset_choices(self):
        return ["sample-chat"]

    def import_dataset_file(self, path):
        return "uploaded"

    def shutdown(self):
        pass
