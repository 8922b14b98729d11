"""A deterministic in-memory stand-in for `studio.engine.Engine`, for UI tests that need no training."""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from studio.access import AccessControl
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
        self.exports = FakeExports(ws)
        self.accounts: dict[str, str] = {}
        home = Path(ws.home) if ws is not None else Path(tempfile.mkdtemp(prefix="fake-engine-"))
        self.access = AccessControl(home / "audit.jsonl", self.accounts.get)

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

    def run_recipe(self, run_id):
        import yaml

        return yaml.safe_load(self.run_recipe_yaml(run_id)) or {}

    def finished_runs(self):
        return [r for r in self.list_runs() if r["status"] == "completed" and r["result_dir"]]

    def embedder_choices(self):
        return ["all-minilm-l6-v2"]

    def model_choices(self):
        return ["smollm2-135m-instruct"]

    def guide_goals(self):
        from studio.guide import presets

        return presets()

    def guide(self, goal, dataset=None, memory=None):
        """The goal's preset as the real guide returns it when its method fits (no estimate: fixed figures)."""
        import copy

        from studio.guide import preset_for

        preset = preset_for(goal)
        if dataset == "missing":
            raise StudioError("'data.dataset' is 'missing', which is neither an existing file nor a built-in "
                              "sample; check the path.", field="data.dataset")
        recipe = copy.deepcopy(preset.recipe)
        recipe["data"]["dataset"] = dataset or recipe["data"]["dataset"]
        method = recipe["method"]["name"]
        self.calls.append(("guide", goal, recipe["data"]["dataset"]))
        params = {"method": method, "wanted": method, "peak": "3.4 GB", "free": "20.0 GB"}
        return {"goal": goal, "preset": preset.name, "title": preset.title, "recipe": recipe, "method": method,
                "top": list(dict.fromkeys([method, "lora", "qlora", "full"]))[:3], "switched": None,
                "peak": "3.4 GB", "free": "20.0 GB", "passes": 1, "micro_batch_size": 8, "why": preset.why["en"],
                "why_key": "guide.fits", "why_params": params, "preset_why": preset.why}

    def dataset_choices(self):
        return ["sample-chat"]

    def import_dataset_file(self, path):
        return "uploaded"

    def shutdown(self):
        pass


def fake_report(name: str = "merged") -> dict:
    """A report shaped like `studio.export.report.build_report`'s, with round numbers."""
    def entry(label, fmt, size, ppl, top1, answer):
        return {"name": label, "format": fmt, "path": "/tmp/x", "size_bytes": size, "size_ratio": size / 4e6,
                "load_s": 0.5, "tokens_per_s": 40.0, "perplexity": ppl, "ppl_delta": ppl - 10.0,
                "ppl_delta_pct": 10.0 * (ppl - 10.0), "top1_agreement": top1, "tokens": 100,
                "samples": [f"{answer} {i}" for i in range(3)]}

    return {"reference": entry("fp32", "fp32", 4_000_000, 10.0, 1.0, "reference answer"),
            "artifacts": [entry(name, name, 2_000_000, 10.5, 0.97, "artifact answer")],
            "prompts": ["First prompt", "Second prompt", "Third prompt"], "heldout": {"source": "t", "tokens": 100},
            "max_new_tokens": 8, "device": "cpu", "torch": "x", "created": "2025-01-01T00:00:00Z"}


class FakeExports:
    """Export jobs that finish on their second `job` call. With a workspace, requests are checked by the engine's
    own `check_request` (so refusals are the real ones) and each export writes a small folder with export.json and
    report.json, as the real service does."""

    def __init__(self, ws=None):
        self.ws = ws
        self.jobs: dict[str, dict] = {}
        self.manifests: list[dict] = []
        self.names: dict[str, str] = {}  # job id -> the source's file-safe name

    def source(self, spec):
        from studio.export.service import ExportService

        return ExportService.source(self, spec)

    def check(self, request):
        from studio.export.service import ExportService

        return ExportService.check(self, request)

    def start(self, request):
        from studio.export.pipeline import ExportRequest, check_request

        if isinstance(request, dict):
            request = ExportRequest.from_dict(request)
        name = request.source.removeprefix("run:")
        if self.ws is not None:
            request, source = check_request(self.ws, request)
            name = source.name
        job_id = f"export-{len(self.jobs) + 1}"
        self.jobs[job_id] = {"id": job_id, "state": "running", "fraction": 0.0, "message": "starting", "seconds": 0.0,
                             "result": None, "error": None, "request": asdict(request)}
        self.names[job_id] = name
        return job_id

    def _job(self, job_id):
        if job_id not in self.jobs:
            raise StudioError(f"There is no export job '{job_id}'.", field="export", key="export.service.no_job",
                              job_id=job_id)
        return self.jobs[job_id]

    def job(self, job_id):
        job = self._job(job_id)
        if job["state"] == "running" and job["fraction"] == 0.0:
            job.update(fraction=0.5, message="writing the export", seconds=1.0)
        elif job["state"] == "running":
            job.update(state="completed", fraction=1.0, message="done", seconds=2.0, result=self._write(job["request"], self.names[job_id]))
        return dict(job)

    def _write(self, request: dict, name: str) -> dict:
        folder = Path(request["out"] or "/tmp/fake-export")
        report = fake_report(request["format"]) if request["report"] and request["format"] != "adapter" else None
        manifest = {"format": request["format"], "quant": request["quant"], "source": request["source"],
                    "source_name": name, "run": None, "base_model": "m",
                    "method": "lora", "path": str(folder), "artifact": str(folder / "model.safetensors"),
                    "bytes": 2_000_000, "created": time.time(), "seconds": 2.0, "request": request, "details": {},
                    "report": bool(report)}
        if self.ws is not None:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "model.safetensors").write_bytes(b"\0" * 2048)
            (folder / "export.json").write_text(json.dumps(manifest), encoding="utf-8")
            if report:
                (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")
        self.manifests.append({**manifest, "report": report})  # exports() reads report.json back, as the real one
        return manifest  # the job's copy says only whether there is a report, as the real one

    def failure(self, job_id):
        if self._job(job_id)["state"] == "cancelled":
            return StudioError("The export was cancelled; the previous export in that folder is unchanged.",
                               field="export", key="export.service.cancelled")
        return None

    def cancel(self, job_id):
        job = self._job(job_id)
        if job["state"] == "running":
            job["state"] = "cancelled"

    def exports(self):
        return sorted(self.manifests, key=lambda m: m["created"], reverse=True)
