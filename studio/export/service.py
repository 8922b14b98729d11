"""Exports as background jobs: each one in its own spawned process, watched by a thread of the app.

`ExportService.start(request)` checks the request in the app (so a bad one is refused at once, with no job),
then runs `studio.export.pipeline.run_export` in a worker process: loading, merging and quantising a model can
use gigabytes and crash in native code, and neither may take the app down. The worker sends progress events
through a queue; `job(id)` reads them as {state, fraction, message, seconds, result, error}. `cancel` stops the
worker (the staged folder it was writing is removed; the previous export stays). `exports()` lists the finished
exports whose manifest (export.json) is still on disk, newest first, from `STUDIO_HOME/exports/index.jsonl`.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import StudioError
from studio.export.pipeline import ExportRequest, check_request
from studio.export.source import ExportSource, resolve_source
from studio.export.staging import partial_dirs
from studio.jobs import processes
from studio.jobs.records import JobRecords

log = logging.getLogger(__name__)


@dataclass
class ExportJob:
    id: str
    request: dict
    state: str = "queued"        # queued, running, completed, failed, cancelled
    fraction: float = 0.0
    message: str = ""
    started: float = field(default_factory=time.time)
    finished: float | None = None
    result: dict | None = None
    error: str | None = None
    error_key: str | None = None
    error_params: dict = field(default_factory=dict)
    process: Any = None
    cancel_asked: bool = False

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    def as_dict(self) -> dict:
        end = self.finished or time.time()
        return {"id": self.id, "state": self.state, "fraction": round(self.fraction, 3), "message": self.message,
                "seconds": round(end - self.started, 1), "result": self.result, "error": self.error,
                "request": self.request}

    def failure(self) -> StudioError | None:
        if self.state == "cancelled":
            return StudioError("The export was cancelled; the previous export in that folder is unchanged.",
                               field="export", key="export.service.cancelled")
        if self.error is None:
            return None
        if self.error_key:
            return StudioError(self.error, field="export", key=self.error_key, **self.error_params)
        return StudioError(f"The export failed: {self.error}", field="export", key="export.service.failed",
                           reason=self.error)


def _worker(request: dict, home: str, events: Any, app_pid: int | None = None, environ: dict | None = None) -> None:
    """Process entry: run one export and report progress, then the manifest or the error."""
    processes.adopt_environment(environ)
    os.environ["STUDIO_HOME"] = home
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from studio.jobs.worker import exit_with_parent

    exit_with_parent(0.0, parent=app_pid)  # nobody would read an orphan's export: it ends with the app
    from studio.export.pipeline import run_export
    from studio.workspace import Workspace

    try:
        manifest = run_export(Workspace.open(home), ExportRequest.from_dict(request),
                              progress=lambda fraction, message: events.put(("progress", fraction, message)))
        events.put(("done", manifest))
    except StudioError as error:
        events.put(("error", error.message, error.key, {k: str(v) for k, v in error.params.items()}))
    except BaseException as error:  # noqa: BLE001 - the app must hear why the worker ended
        log.exception("Export failed")
        events.put(("error", f"{type(error).__name__}: {error}", None, {}))


class ExportService:
    def __init__(self, ws: Any):
        self.ws = ws
        self._jobs: dict[str, ExportJob] = {}
        self._ctx = processes.context()
        self._lock = threading.Lock()
        self.records = JobRecords(ws)
        self.records.recover()  # exports left running by an app that is gone: interrupted, offered for retry

    @property
    def index_path(self) -> Path:
        return self.ws.home / "exports" / "index.jsonl"

    # --- planning (no weights loaded) ------------------------------------------------------------------
    def source(self, spec: str) -> ExportSource:
        """The run or model `spec` names, checked for export (`studio.export.source.resolve_source`)."""
        return resolve_source(self.ws, spec)

    def check(self, request: ExportRequest | dict) -> tuple[ExportRequest, ExportSource]:
        """The request completed with its default folder and checked, as `start` would (StudioError if refused)."""
        return check_request(self.ws, ExportRequest.from_dict(request) if isinstance(request, dict) else request)

    # --- jobs --------------------------------------------------------------------------------------
    def start(self, request: ExportRequest | dict, owner: str | None = None) -> str:
        """Check the request here (StudioError at once), then export in a worker process; returns the job id (its
        row in the workspace's jobs table, so `studio jobs` lists it)."""
        if isinstance(request, dict):
            request = ExportRequest.from_dict(request)
        request, _ = check_request(self.ws, request)
        out = Path(request.out)
        with self._lock:
            busy = [j for j in self._jobs.values() if j.active and j.request.get("out") == str(out)]
            if busy:
                raise StudioError(f"An export to {out} is already running; wait for it or choose another folder.",
                                  field="out", key="export.service.busy", out=str(out))
            row = self.records.create("export", f"{request.source} -> {request.format} in {out}", asdict(request),
                                      owner=owner)
            job = ExportJob(id=str(row), request=asdict(request), state="running", message="starting")
            self._jobs[job.id] = job
        events = self._ctx.Queue()
        job.process = self._ctx.Process(target=_worker, args=(asdict(request), str(self.ws.home), events, os.getpid(),
                                                          processes.environment()),
                                        daemon=True, name=f"studio-export-{job.id}")
        job.process.start()
        self.records.set_pid(row, job.process.pid)
        threading.Thread(target=self._watch, args=(job, events), daemon=True).start()
        return job.id

    def _watch(self, job: ExportJob, events: Any) -> None:
        import queue

        row, checked = int(job.id), time.monotonic()
        while True:
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                if job.process.is_alive():
                    if time.monotonic() - checked >= 1.0:  # `studio jobs cancel` from another process
                        checked = time.monotonic()
                        if not job.cancel_asked and self.records.cancel_asked(row):
                            self.cancel(job.id)
                    continue
                try:  # the last events may arrive just after the process ended
                    event = events.get(timeout=1.0)
                except queue.Empty:
                    self._ended_silently(job)
                    return
            if event[0] == "progress":
                job.fraction, job.message = float(event[1]), event[2]
                self.records.progress(row, job.fraction, job.message)
            elif event[0] == "done":
                job.result, job.state, job.fraction, job.message = event[1], "completed", 1.0, "done"
                self._record(event[1])
                break
            elif event[0] == "error":
                job.error, job.error_key, job.error_params = event[1], event[2], event[3]
                job.state = "cancelled" if job.cancel_asked else "failed"
                break
        job.finished = time.time()
        self._finish_row(job)
        job.process.join(timeout=10)

    def _finish_row(self, job: ExportJob) -> None:
        failure = job.failure()
        result = {"path": job.result.get("path")} if job.result else None
        self.records.finish(int(job.id), job.state, error=failure, result=result)

    def _ended_silently(self, job: ExportJob) -> None:
        code = job.process.exitcode
        job.finished = time.time()
        if job.cancel_asked:
            job.state = "cancelled"
        else:
            job.state = "failed"
            how = "ran out of memory or was killed" if code in (-9, 137) else f"exited with code {code}"
            job.error = f"the export process {how} before it finished; the previous export is unchanged"
        for leftover in partial_dirs(Path(job.request["out"])):
            shutil.rmtree(leftover, ignore_errors=True)
        self._finish_row(job)

    def _record(self, manifest: dict) -> None:
        self.index_path.parent.mkdir(parents=True, exist_ok=True)
        with self.index_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"path": manifest["path"], "created": manifest["created"]}) + "\n")

    def _job(self, job_id: str) -> ExportJob:
        job = self._jobs.get(job_id)
        if job is None:
            raise StudioError(f"There is no export job '{job_id}'.", field="export", key="export.service.no_job",
                              job_id=job_id)
        return job

    def job(self, job_id: str) -> dict:
        """{id, state, fraction, message, seconds, result, error, request}; a job this app did not start (another
        process's, or one from before a restart) is read from its row."""
        if str(job_id) in self._jobs:
            return self._job(str(job_id)).as_dict()
        row = self.records.get(job_id)
        return {"id": str(row["id"]), "state": row["status"], "fraction": row["progress"] or 0.0,
                "message": row["phase"] or "", "seconds": row["seconds"], "result": row["result"],
                "error": row["error"], "request": row["params"]}

    def running(self) -> list[dict]:
        """This app's exports still running, newest first (a reopened page picks its bar up again)."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.active]
        return [j.as_dict() for j in sorted(jobs, key=lambda j: j.started, reverse=True)]

    def failure(self, job_id: str) -> StudioError | None:
        if str(job_id) not in self._jobs:
            row = self.records.get(job_id)
            return StudioError(row["error"], field="export", key="export.service.failed_before",
                               reason=row["error"]) if row["error"] else None
        return self._job(str(job_id)).failure()

    def wait(self, job_id: str, timeout: float = 3600) -> dict:
        job, deadline = self._job(job_id), time.time() + timeout
        while job.active and time.time() < deadline:
            time.sleep(0.1)
        return job.as_dict()

    def cancel(self, job_id: str) -> None:
        """Stop the export; its half-written folder is removed and the previous export stays."""
        job = self._job(job_id)
        if job.active and job.process is not None:
            job.cancel_asked = True
            job.process.terminate()

    def shutdown(self) -> None:
        for job in self._jobs.values():
            if job.active and job.process is not None:
                job.cancel_asked = True
                job.process.terminate()

    # --- finished exports ----------------------------------------------------------------------------
    def exports(self) -> list[dict]:
        """Manifests of the exports still on disk, newest first (one per folder)."""
        seen: dict[str, dict] = {}
        default = self.ws.home / "exports"
        paths = [p.parent for p in default.glob("*/export.json")] if default.is_dir() else []
        if self.index_path.exists():
            for line in self.index_path.read_text(encoding="utf-8").splitlines():
                try:
                    paths.append(Path(json.loads(line)["path"]))
                except (ValueError, KeyError):
                    continue
        for folder in paths:
            manifest = read_manifest(folder)
            if manifest is not None:
                seen[str(folder.resolve())] = manifest
        return sorted(seen.values(), key=lambda m: m.get("created", 0), reverse=True)


def read_manifest(folder: Path) -> dict | None:
    path = Path(folder) / "export.json"
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    report = Path(folder) / "report.json"
    if report.exists():
        try:
            manifest["report"] = json.loads(report.read_text(encoding="utf-8"))
        except ValueError:
            manifest["report"] = None
    return manifest
