"""Job rows for every kind of background work, in the workspace's SQLite `jobs` table.

Training jobs are queued, claimed and watched by `studio.jobs.manager.JobManager`; the other kinds
(export; later RAG indexing, preference candidates, the AI judge, evaluation) are started by their
service inside the app, which records them here so that `studio jobs`, every tab and a restarted app
see the same list. A row says what runs (kind, title, request as JSON), where (the worker's pid and the
watching app's `app_pid`), how far (phase words and a 0..1 progress), who asked (owner) and how it
ended (status, error sentence, result as JSON). States are the training ones: queued, running,
cancelling, completed, failed, cancelled, interrupted. A row left running by an app that is gone
becomes 'interrupted' when any studio process next looks (`recover`); `cancel` from another process
writes 'cancelling', which the watching app turns into a stop.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from typing import Any, Iterator

from studio.errors import StudioError
from studio.jobs.worker import pid_alive
from studio.phase import Phase, phase_columns
from studio.workspace import ACTIVE_STATES as ACTIVE
from studio.workspace import RUN_STATES, Workspace

KINDS = ("train", "export", "index", "generate", "judge", "evaluate", "serve")
ENDED = tuple(s for s in RUN_STATES if s not in ACTIVE)
PROGRESS_EVERY_S = 1.0  # progress rows are rewritten at most this often per job


class JobRecords:
    """Create, update, list and end job rows of one workspace (not for training: `JobManager` owns those)."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self._written: dict[int, float] = {}

    def create(self, kind: str, title: str, params: dict, owner: str | None = None, pid: int | None = None,
               status: str = "running") -> int:
        """A new row watched by this process: 'running' from now, or 'queued' until `start`. Its progress is unknown
        (None, shown as no percentage) until the job reports a fraction: a served model never does."""
        if kind not in KINDS:
            raise ValueError(f"unknown job kind {kind!r}")
        if status not in ("queued", "running"):
            raise ValueError(f"a job starts queued or running, not {status!r}")
        now = time.time()
        with self.ws.db() as conn:
            cur = conn.execute(
                "INSERT INTO jobs (kind, status, created_at, started_at, pid, title, phase, progress, owner, app_pid, "
                "params) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
                (kind, status, now, now if status == "running" else None, pid, title,
                 "starting" if status == "running" else None, owner, os.getpid(), json.dumps(params, default=str)))
            return int(cur.lastrowid)

    def start(self, job_id: int, pid: int | None = None) -> None:
        """A queued row begins (unless it was asked to stop meanwhile)."""
        with self.ws.db() as conn:
            conn.execute("UPDATE jobs SET status = 'running', started_at = ?, phase = 'starting', phase_key = NULL, "
                         "pid = ? WHERE id = ? AND status = 'queued'", (time.time(), pid or os.getpid(), job_id))

    def set_pid(self, job_id: int, pid: int) -> None:
        self.ws.update_job(job_id, pid=pid)

    def progress(self, job_id: int, fraction: float | None, phase: str, force: bool = False) -> None:
        """Record how far a job is (`fraction` None: not known, only the phase, a `studio.phase.Phase` to be worded
        in each page's language); rewrites the row at most once a second unless `force`."""
        now = time.monotonic()
        if not force and now - self._written.get(job_id, 0.0) < PROGRESS_EVERY_S:
            return
        self._written[job_id] = now
        with self.ws.db() as conn:
            columns = phase_columns(phase)
            conn.execute("UPDATE jobs SET progress = ?, phase = ?, phase_key = ?, phase_params = ? "
                         "WHERE id = ? AND status IN ('running', 'cancelling')",
                         (None if fraction is None else round(float(fraction), 4), columns["phase"],
                          columns["phase_key"], columns["phase_params"], job_id))

    def finish(self, job_id: int, status: str, error: str | StudioError | None = None,
               result: dict | None = None) -> None:
        if status not in ENDED:
            raise ValueError(f"{status!r} is not an end state")
        self._written.pop(job_id, None)
        values: dict[str, Any] = {"status": status, "finished_at": time.time(), "pid": None, **error_columns(error)}
        if status == "completed":
            values.update(progress=1.0, **phase_columns("done"))
        if result is not None:
            values["result"] = json.dumps(result, default=str)
        self.ws.update_job(job_id, **values)

    def get(self, job_id: int | str) -> dict:
        try:
            key = int(job_id)
        except (TypeError, ValueError):
            key = -1
        with self.ws.db() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (key,)).fetchone()
        if row is None:
            raise StudioError(f"There is no job '{job_id}'; `studio jobs` lists them.", field="job_id",
                              key="jobs.no_job", job_id=str(job_id))
        return describe(dict(row))

    def list(self, kind: str | None = None, active_only: bool = False) -> list[dict]:
        """Newest first. Training rows take their progress from their run (step of total steps)."""
        self.recover()
        rows = [describe(r) for r in reversed(self.ws.jobs(status=ACTIVE if active_only else None, kind=kind))]
        run_ids = sorted({r["run_id"] for r in rows if r["kind"] == "train" and r.get("run_id")})
        with self.ws.db() as conn:
            runs = {r["id"]: r for r in conn.execute(
                f"SELECT id, step, total_steps FROM runs WHERE id IN ({', '.join('?' for _ in run_ids)})", run_ids)}
        for row in rows:
            run = runs.get(row.get("run_id")) if row["kind"] == "train" else None
            if run and run["total_steps"]:
                row["progress"] = round((run["step"] or 0) / run["total_steps"], 4)
                if not row["phase"]:
                    step = Phase(f"step {run['step'] or 0} / {run['total_steps']}", "step", step=run["step"] or 0,
                                 total=run["total_steps"])
                    row.update(phase=str(step), phase_key=step.key, phase_params=step.params)
        return rows

    def cancel_asked(self, job_id: int) -> bool:
        with self.ws.db() as conn:
            row = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row) and row["status"] == "cancelling"

    def request_cancel(self, job_id: int | str) -> dict:
        """Ask the app that watches a running job to stop it; a job whose app is gone is marked interrupted."""
        job = self.get(job_id)
        if job["kind"] == "train":
            raise ValueError("training jobs are cancelled through JobManager.cancel")
        if job["status"] not in ACTIVE:
            raise StudioError(f"Job {job['id']} has already ended ({job['status']}); nothing to cancel.",
                              field="job_id", key="jobs.ended", job_id=str(job["id"]), status=job["status"])
        with self.ws.db() as conn:
            conn.execute("UPDATE jobs SET status = 'cancelling' WHERE id = ? AND status IN ('queued', 'running')",
                         (job["id"],))
        self.recover()
        return self.get(job["id"])

    def recover(self) -> list[int]:
        """Rows of every kind but training whose watching app is gone become 'interrupted'. Returns their ids."""
        gone = []
        for job in self.ws.jobs(status=ACTIVE):
            if job["kind"] == "train" or job["app_pid"] is None:
                continue
            if job["app_pid"] == os.getpid() or pid_alive(job["app_pid"]):
                continue
            gone.append(job["id"])  # its worker, if still alive, ends itself (`exit_with_parent`)
            self.finish(job["id"], "interrupted", error=interrupted_sentence(job["kind"], job["phase"], job["id"]))
        return gone


def check_retryable(job: dict) -> None:
    """Only an interrupted, failed or cancelled job runs again (StudioError naming the job otherwise)."""
    if job["status"] not in ("interrupted", "failed", "cancelled"):
        raise StudioError(f"Job {job['id']} is {job['status']}; only an interrupted, failed or cancelled job can be "
                          "retried.", field="job_id", key="jobs.not_retryable", job_id=str(job["id"]),
                          kind=job["kind"], why=job["status"])


def interrupted_sentence(kind: str, phase: str | None, job_id: int | str) -> StudioError:
    return StudioError(f"The studio stopped while this {kind} job was at '{phase or 'start'}'; retry it with "
                       f"`studio jobs retry {job_id}` or from its tab.", key="jobs.interrupted", kind=kind,
                       phase=phase or "start", job_id=str(job_id))


def cancelled_sentence(kind: str) -> StudioError:
    return StudioError(f"The {kind} job was cancelled.", key="jobs.cancelled", kind=kind)


def error_columns(error: str | StudioError | None) -> dict[str, Any]:
    """A jobs row's error columns: the English sentence and, for a StudioError, its key and values (JSON), so the
    Jobs panel words it in the page's language."""
    if isinstance(error, StudioError):
        return {"error": error.message, "error_key": error.key,
                "error_params": json.dumps(error.params, default=str) if error.key else None}
    return {"error": error, "error_key": None, "error_params": None}


def describe(row: dict) -> dict:
    """A job row as the CLI's --json and the UI show it: JSON columns parsed, seconds so far or in all."""
    out = dict(row)
    for key in ("params", "result", "error_params", "phase_params"):
        if out.get(key):
            try:
                out[key] = json.loads(out[key])
            except ValueError:
                pass
    start, end = out.get("started_at"), out.get("finished_at") or time.time()
    out["seconds"] = round(end - start, 1) if start else None
    if out["kind"] == "train" and not out.get("title"):
        out["title"] = out.get("run_id")
    return out


class ForegroundJob:
    """A job this very process runs (a `studio` command in the terminal): its row, progress and end."""

    def __init__(self, records: JobRecords, row: int):
        self.records, self.id, self.result = records, row, None

    def progress(self, fraction: float | None, phase: str) -> None:
        self.records.progress(self.id, fraction, phase)
        if self.records.cancel_asked(self.id):
            raise KeyboardInterrupt  # `studio jobs cancel` from elsewhere: stop as Ctrl-C would


@contextmanager
def foreground(ws: Workspace, kind: str, title: str, params: dict, owner: str | None = None) -> Iterator[ForegroundJob]:
    """Record work done in this process as a job: completed, failed (with the error sentence) or cancelled
    (Ctrl-C, or `studio jobs cancel`), so `studio jobs` shows terminal work beside the app's."""
    records = JobRecords(ws)
    job = ForegroundJob(records, records.create(kind, title, params, owner=owner or _user(), pid=os.getpid()))
    try:
        yield job
    except KeyboardInterrupt:
        records.finish(job.id, "cancelled", error=cancelled_sentence(kind))
        raise
    except StudioError as exc:
        records.finish(job.id, "failed", error=exc)
        raise
    except BaseException as exc:
        records.finish(job.id, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    records.finish(job.id, "completed", result=job.result)


def _user() -> str | None:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
