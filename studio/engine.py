"""The engine facade: everything the UI (and scripts) may ask of the studio, in one object.

`Engine` owns a workspace and a started `JobManager`. Its methods take plain values or config
objects and return plain dicts and strings, raising `StudioError` for what a user can fix; the
UI turns widget values into those arguments and renders what comes back. Nothing here knows
about widgets.
"""
from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from studio.access import AccessControl
from studio.config import Recipe, parse_recipe_yaml
from studio.errors import StudioError
from studio.jobs import JobManager
from studio.training import prepare_run
from studio.workspace import ACTIVE_STATES, Workspace, read_metrics


class Engine:
    def __init__(self, ws: Workspace | None = None, start_jobs: bool = True):
        from studio.hub_kernels import ensure_decided

        ensure_decided()  # once, before any model loads here or in a job this process starts
        self.ws = ws or Workspace.open()
        self.jobs = JobManager(self.ws)
        self._rag = None
        self._prefs = None
        self._exports = None
        self._chat_pool = None  # the playground's loaded models
        self._servers: list = []  # `studio serve` processes started from the page (they end with this process)
        self._guided: dict = {}  # the guide's plans, per goal, dataset and free memory (see `guide`)
        self._services_lock = threading.RLock()
        self.access = AccessControl(self.ws.home / "audit.jsonl", self._account_role)
        """Who calls and what they may do (`studio.access`); `launch` switches it to server mode under --auth."""
        if start_jobs:
            self.jobs.start()

    def shutdown(self) -> None:
        self.jobs.shutdown(kill_running=True)
        for service in (self._rag, self._prefs, self._exports):
            if service is not None:
                service.shutdown()
        for server in self._servers:  # asked to stop like `studio jobs cancel`; they also watch this process
            if server.poll() is None:
                server.terminate()
        for server in self._servers:
            server.wait()

    def merge_runs(self, run_ids: list[str], combination: str | None = None, weights: list[float] | None = None,
                   density: float = 0.5, name: str | None = None) -> str:
        """Merge finished LoRA runs on one base into a new run (`studio.merge_runs`, its default combination when
        none is given); returns its id."""
        from studio.merge_runs import DEFAULT_COMBINATION, merge_runs

        return merge_runs(self.ws, run_ids, combination or DEFAULT_COMBINATION, weights, density, name)

    def merge_scores(self, run_id: str, limit: int | None = None) -> list[dict]:
        """Each source task's ROUGE-L before and after a merge (`studio.merge_runs.merge_scores`)."""
        from studio.merge_runs import merge_scores

        return merge_scores(self.ws, run_id, limit=limit)

    def serve(self, spec: str, port: int = 8000, host: str = "127.0.0.1", api_key: str | None = None) -> dict:
        """Serve a finished run or a model over an OpenAI-compatible API from a process of its own (`studio.serving`);
        returns its serve job's row (its phase says the address once the model answers). Stopped as any job."""
        from studio.serving import start_background

        child, job = start_background(self.ws, spec, host, int(port), api_key)
        self._servers.append(child)
        return job

    def _account_role(self, name: str) -> str | None:
        account = self.prefs.store.annotator(name)
        return account["role"] if account else None

    def _service(self, attr: str, module: str, name: str) -> Any:
        """The service kept in `attr`, made on first use; two first calls at once (page load and a tab) make one."""
        with self._services_lock:
            if getattr(self, attr) is None:
                import importlib

                setattr(self, attr, getattr(importlib.import_module(module), name)(self.ws))
        return getattr(self, attr)

    # --- documents (RAG) ------------------------------------------------------------------
    @property
    def rag(self):
        """The workspace's document collections, indexing and answers (`studio.rag.service.RagService`), made on
        first use so that an app that never opens the RAG tab never starts Chroma."""
        return self._service("_rag", "studio.rag.service", "RagService")

    # --- preferences ----------------------------------------------------------------------
    @property
    def data(self):
        """The workspace's datasets and prompt templates (`studio.data.library.DataLibrary`)."""
        from studio.data.library import DataLibrary

        return DataLibrary(self.ws)

    @property
    def prefs(self):
        """Ranking task sets, annotations, agreement, export, arena and judge (`studio.prefs.service.PrefService`)."""
        return self._service("_prefs", "studio.prefs.service", "PrefService")

    def audit_entries(self, limit: int = 500, user: str | None = None) -> list[dict]:
        """The newest entries of the audit log (admin clicks and API calls, refusals, failed logins), newest first."""
        return self.access.audit.entries(limit=limit, user=user)

    # --- background jobs of every kind ------------------------------------------------------
    def job_list(self, kind: str | None = None, active_only: bool = False) -> list[dict]:
        """Jobs newest first (training, exports...), as `studio jobs --json` prints them (`studio.jobs.records`)."""
        from studio.jobs.records import JobRecords

        return JobRecords(self.ws).list(kind=kind, active_only=active_only)

    def cancel_job(self, job_id: int | str) -> dict:
        """Stop a job of any kind: training after its current step (with a checkpoint), the others at their next
        progress point, whichever process runs them. Returns the job's row."""
        from studio.jobs import threads
        from studio.jobs.records import JobRecords

        records = JobRecords(self.ws)
        job = records.get(job_id)
        if job["kind"] == "train":
            self.cancel(job["run_id"])
            return records.get(job_id)
        return threads.cancel(records, job_id)

    def retry_job(self, job_id: int | str) -> dict:
        """Run an interrupted, failed or cancelled job again in the background: training resumes from its last
        checkpoint, the other kinds start again from their row's request. Returns {"kind", "job_id" or "run_id"}."""
        from studio.jobs.records import JobRecords, check_retryable
        from studio.jobs.retry import THREAD_KINDS, restart

        job = JobRecords(self.ws).get(job_id)
        check_retryable(job)
        if job["kind"] == "train":
            self.resume(job["run_id"])
            return {"kind": "train", "run_id": job["run_id"]}
        if job["kind"] == "export":
            from studio.export.pipeline import retry_request

            return {"kind": "export", "job_id": self.exports.start(retry_request(job["params"]), owner=job.get("owner"))}
        if job["kind"] == "evaluate":
            from studio.generation import inference_thread
            from studio.jobs.retry import evaluation_request

            inference_thread().submit(self._evaluate_quietly, *evaluation_request(job))
            return {"kind": "evaluate", "job_id": None}  # its row appears once the inference thread takes it
        if job["kind"] in THREAD_KINDS:
            return {"kind": job["kind"], "job_id": restart(self.ws, job, rag=self.rag, prefs=self.prefs)[1]}
        raise ValueError(f"unknown job kind {job['kind']!r}")

    def _evaluate_quietly(self, targets: list[str], dataset: str, options: dict) -> None:
        try:
            self.evaluate(targets, dataset, **options)
        except StudioError:
            pass  # the job row holds the error sentence

    # --- export ----------------------------------------------------------------------------
    @property
    def exports(self):
        """Export jobs (merge, bitsandbytes, int8, GGUF) and the finished exports (`studio.export.service`)."""
        return self._service("_exports", "studio.export.service", "ExportService")

    # --- training -------------------------------------------------------------------------
    def start_training(self, recipe: Recipe | str) -> str:
        if isinstance(recipe, str):
            recipe = parse_recipe_yaml(recipe)
        run_id = prepare_run(self.ws, recipe)
        self.jobs.submit(run_id)
        return run_id

    def _run(self, run_id: str) -> dict:
        run = self.ws.get_run(run_id)
        if run is None:
            raise StudioError(f"There is no run '{run_id}'; pick one from the Runs list.", field="run_id",
                              key="job.no_run", run_id=run_id)
        return run

    def run_status(self, run_id: str) -> dict:
        """The run's state plus its metric events, its latest evaluation's sample generations and, for a
        classifier, its latest confusion matrix."""
        from studio.stages.generation_eval import latest_samples

        self._run(run_id)
        status = self.jobs.status(run_id)
        status["metrics"] = read_metrics(Path(status["run_dir"]))
        status["samples"] = latest_samples(Path(status["run_dir"]))
        confusion = Path(status["run_dir"]) / "confusion.json"
        status["confusion"] = json.loads(confusion.read_text(encoding="utf-8")) if confusion.exists() else None
        validation = Path(status["run_dir"]) / "validation.json"  # a classifier's: where validation came from
        status["validation"] = json.loads(validation.read_text(encoding="utf-8")) if validation.exists() else None
        return status

    # --- evaluating -----------------------------------------------------------------------
    def evaluable_runs(self) -> list[dict]:
        """Completed runs the Evaluate tab can score: those that write answers, and classifiers."""
        from studio.evaluation import evaluated

        return [r for r in self.finished_runs() if evaluated(r["stage"])]

    def evaluate(self, targets: list[str], dataset: str, **options) -> dict:
        """`studio.evaluation.evaluate` on this workspace (options: split, metrics, limit, shots, forgetting, emit,
        owner), recorded as an 'evaluate' job; a cancel from `studio jobs cancel` ends it with a StudioError."""
        from studio.evaluation import evaluate_recorded

        try:
            return evaluate_recorded(self.ws, targets, dataset, **options)
        except KeyboardInterrupt:
            raise StudioError("The evaluation was cancelled before it finished; start it again to get its scores.",
                              field="targets", key="eval.cancelled") from None

    # --- comparing ------------------------------------------------------------------------
    def compare(self, run_ids: list[str]) -> dict:
        """Curves, differing settings and final/best scores of two or more runs (`studio.compare`)."""
        from studio.compare import compare_runs

        return compare_runs(self.ws, list(run_ids or []))

    def compare_csv(self, comparison: dict) -> str:
        """Write a comparison's tables to a CSV under the workspace's exports folder; returns its path."""
        from studio.compare import comparison_csv

        stamp = time.strftime("%Y%m%d-%H%M%S")
        return str(comparison_csv(comparison, self.ws.home / "exports" / f"compare-{stamp}.csv"))

    def cancel(self, run_id: str, force: bool = False) -> None:
        """Stop after the current step with a checkpoint; `force` (a second, explicit action) ends it now."""
        self._run(run_id)
        self.jobs.cancel(run_id, force=force)

    def skip_evaluation(self, run_id: str) -> None:
        """Cut a running run's evaluation short; training goes on (`JobManager.skip_evaluation`)."""
        self.jobs.skip_evaluation(run_id)

    def resume(self, run_id: str) -> None:
        self._run(run_id)
        self.jobs.resume(run_id)

    def delete_run(self, run_id: str) -> None:
        run = self._run(run_id)
        if run["status"] in ACTIVE_STATES:
            raise StudioError(f"Run '{run['name']}' is {run['status']}; cancel it before deleting it.", field="run_id",
                              key="job.delete_active", name=run["name"], status=run["status"])
        self.ws.delete_run_row(run_id)
        shutil.rmtree(run["run_dir"], ignore_errors=True)

    # --- listings ---------------------------------------------------------------------------
    def list_runs(self) -> list[dict]:
        runs = self.ws.list_runs()
        now = time.time()
        for run in runs:
            start = run.get("started_at")
            end = run.get("finished_at") or (now if run["status"] in ("running", "cancelling") else None)
            run["duration_s"] = round(end - start, 1) if start and end else None
        return runs

    def run_recipe_yaml(self, run_id: str) -> str:
        run = self._run(run_id)
        return (Path(run["run_dir"]) / "recipe.yaml").read_text(encoding="utf-8")

    def run_recipe(self, run_id: str) -> dict:
        """The run's recipe as a plain dict (what the Train tab's form shows when the run is opened)."""
        import yaml

        return yaml.safe_load(self.run_recipe_yaml(run_id)) or {}

    def finished_runs(self) -> list[dict]:
        return [r for r in self.list_runs() if r.get("result_dir") and r["status"] == "completed"]

    def active_run(self) -> dict | None:
        """The most recent queued/running run, so a reopened page can resume watching it."""
        for run in self.list_runs():
            if run["status"] in ACTIVE_STATES:
                return run
        return None

    # --- the playground -------------------------------------------------------------------------
    def chat(self, model: str, run_id: str | None, messages: list[dict], settings: Any = None,
             stats: dict | None = None) -> Iterator[str]:
        """The growing answer of `model` (or of the finished run `run_id`) to `messages`; up to 3 models stay
        loaded between calls (`studio.generation.stream_chat`)."""
        from studio.generation import ModelPool, stream_chat

        if self._chat_pool is None:
            self._chat_pool = ModelPool(self.ws, capacity=3)
        return stream_chat(self.ws, model, run_id, messages, settings, self._chat_pool, stats=stats)

    def save_exchange(self, name: str, messages: list[dict], source: str) -> str:
        """Keep a conversation as the chat dataset `name` (a new version each time); returns the dataset name."""
        from studio.generation import save_exchange

        return save_exchange(self.ws, name, messages, source)

    # --- planning a run (nothing starts) -----------------------------------------------------
    def method_table(self, recipe: Recipe, memory: dict | None = None, only: str | tuple | None = None) -> list[dict]:
        """Every method (or `only` one) for this recipe: trainable parameters, estimated peak, fits, fixes."""
        from studio.memory_picker import method_table

        return method_table(recipe.model, self.ws, recipe, memory=memory, only=only)

    def apply_fix(self, recipe: dict, kind: str, value: Any) -> dict:
        """`recipe` (a plain dict) with one of the verdict's fixes made (`memory_picker.apply_fix`)."""
        from studio.memory_picker import apply_fix

        return apply_fix(recipe, kind, value)

    def suggest_method(self, recipe: Recipe, goal: str, memory: dict | None = None) -> dict:
        """The method the picker suggests for `goal` on this model, machine and dataset, with its reason and the top
        three that fit; it reads the same estimate (`method_table`) as the verdict and the table."""
        from studio.memory import device_memory, load_config, model_shape, task_of
        from studio.memory_picker import CANDIDATES, dataset_rows, method_table, recommend
        from studio.models.catalogue import resolve_model

        memory = memory or device_memory()
        config = load_config(resolve_model(recipe.model, self.ws))  # read once: the table takes the config itself
        rows = method_table(config, self.ws, recipe, memory=memory, only=CANDIDATES)
        params = model_shape(config, task_of(recipe.stage))["params"]
        return recommend(rows, goal, dataset_rows(recipe.data.dataset, self.ws), params, memory)

    def guide(self, goal: str, dataset: str | None = None, memory: dict | None = None) -> dict:
        """The guided path's recipe for `goal` on `dataset` and this machine, with why (`studio.guide.plan_guided`)."""
        import copy

        from studio.guide import plan_guided
        from studio.memory import device_memory

        memory = memory or device_memory()
        # Every page load asks for the default goal's plan: estimate again only when the free memory moved by
        # 256 MB or more (the estimate builds several meta models, seconds on a busy CPU).
        key = (goal, dataset, memory["kind"], memory["free_bytes"] >> 28)
        if key not in self._guided:
            self._guided[key] = plan_guided(self.ws, goal, dataset, memory=memory)
        return copy.deepcopy(self._guided[key])

    def guide_goals(self) -> dict:
        """Goal -> its preset (title and why in each language), in the order the guided path shows them."""
        from studio.guide import presets

        return presets()

    def save_rag_pairs(self, pairs: list[dict], name: str) -> dict:
        """Reviewed question/answer pairs as a dataset and a retrieval test set (`studio.rag.synth.save_pairs`)."""
        from studio.rag.synth import save_pairs

        return save_pairs(self.ws, pairs, name)

    def hub_search(self, query: str, limit: int = 20) -> dict:
        """Text-generation models on the hub with size, licence and whether LoRA/QLoRA fit here; offline, the cached
        ones and why (`studio.models.hub_browser.search`)."""
        from studio.models.hub_browser import search

        return search(query, self.ws, limit=limit)

    def hub_download(self, repo_id: str, progress=lambda done, total: None) -> str:
        """Download a hub model into the local cache; returns its folder."""
        from studio.models.hub_browser import download

        return str(download(repo_id, progress))

    def embedder_choices(self) -> list[str]:
        """Embedders a new RAG collection can be built with: the embedded MiniLM, then sentence-transformers models
        in the hub cache (a multilingual one, once downloaded, for documents in several languages)."""
        from studio.models.catalogue import list_models
        from studio.rag.embedder import DEFAULT_EMBEDDER

        cached = [m["name"] for m in list_models(self.ws) if m.get("source") == "hub cache"
                  and (Path(m["path"]) / "modules.json").is_file()]  # a sentence-transformers model
        return [DEFAULT_EMBEDDER, *cached]

    def model_choices(self) -> list[str]:
        from studio.models.catalogue import list_models

        return [m["name"] for m in list_models(self.ws) if m.get("kind") == "causal-lm"]

    def dataset_choices(self) -> list[str]:
        from studio.data import dataset_names

        return dataset_names(self.ws)

    def import_dataset_file(self, path: str) -> str:
        from studio.data import import_file

        return import_file(self.ws, Path(path))
