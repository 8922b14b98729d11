"""Jobs that run on a background thread of the app, recorded in the same `jobs` table as every other kind.

RAG indexing (a local Chroma store belongs to one process) and the preference candidates and AI judge
(they answer with the models the app already holds) run on one thread per service rather than in a
worker process. `JobThread` gives them what training and export have: a row per job from the moment it
is queued (kind, title, request, owner), its phase and progress at most once a second, its end state
with the error sentence or the result, a cancel that works from another process (`studio jobs cancel`
writes 'cancelling'; the work sees it at its next `progress` call), and on shutdown the rows of
unfinished jobs marked 'interrupted' with the `studio jobs retry` hint (a killed app's rows are marked
by `JobRecords.recover` when the studio next looks).
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from studio.errors import StudioError
from studio.jobs.records import JobRecords, cancelled_sentence, interrupted_sentence

CANCEL_CHECK_S = 1.0  # how often a running job reads its row for a cancel asked from another process
_LIVE: dict[str, "ThreadJob"] = {}  # this process's unfinished thread jobs, by row id (any service)


class JobCancelled(Exception):
    """Raised inside the work by `JobThread.progress` once the job was asked to stop."""


@dataclass(kw_only=True)
class ThreadJob:
    """What every thread job shares; a service's job class adds its own counters."""

    id: str = ""
    kind: str = ""
    state: str = "queued"          # queued, running, completed, failed, cancelled, interrupted
    phase: str = ""
    started: float | None = None
    finished: float | None = None
    error: StudioError | None = None
    result: Any = None
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    def summary(self) -> dict | None:
        """What the job row keeps as its result (JSON)."""
        return self.result if isinstance(self.result, dict) else None


class JobThread:
    """One background thread of a service and the rows of the jobs it runs (in submission order)."""

    def __init__(self, ws: Any, name: str, failed: Callable[[ThreadJob, Exception], StudioError]):
        self.records = JobRecords(ws)
        self.jobs: dict[str, ThreadJob] = {}
        self._failed = failed  # the sentence for an unexpected exception
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._checked: dict[str, float] = {}
        self._closing = False

    def submit(self, job: ThreadJob, title: str, params: dict, work: Callable[..., Any], *args: Any,
               owner: str | None = None) -> str:
        """Record `job` as queued and run `work(job, *args)` on the thread; returns the job id (the row id)."""
        job.id = str(self.records.create(job.kind, title, params, owner=owner, status="queued"))
        self.jobs[job.id] = _LIVE[job.id] = job
        self._pool.submit(self._run, job, work, args)
        return job.id

    def _run(self, job: ThreadJob, work: Callable[..., Any], args: tuple) -> None:
        row = int(job.id)
        if self._closing:
            return
        job.state, job.started = "running", time.time()
        self.records.start(row)
        try:
            self._check(job, force=True)
            job.result, state = work(job, *args), "completed"
        except JobCancelled:
            state = "cancelled"
        except StudioError as error:
            job.error, state = error, "failed"
        except Exception as error:  # noqa: BLE001 - a failing job must end its row, not the thread
            job.error, state = self._failed(job, error), "failed"
        job.finished = time.time()
        if self._closing:  # on shutdown the row already says 'interrupted'
            state = "interrupted" if state == "cancelled" else state
        else:
            self.records.finish(row, state, error=job.error or (
                cancelled_sentence(job.kind) if state == "cancelled" else None), result=job.summary())
        job.state = state  # last: whoever waits on the job finds its row ended too
        _LIVE.pop(job.id, None)

    def progress(self, job: ThreadJob, fraction: float, phase: str) -> None:
        """Record how far `job` is; raises JobCancelled when it was asked to stop (here or from elsewhere)."""
        job.phase = phase
        self.records.progress(int(job.id), fraction, phase)
        self._check(job)

    def _check(self, job: ThreadJob, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._checked.get(job.id, 0.0) >= CANCEL_CHECK_S:
            self._checked[job.id] = now
            if self.records.cancel_asked(int(job.id)):
                job.cancel.set()
        if job.cancel.is_set() or self._closing:
            raise JobCancelled

    def get(self, job_id: str, missing: StudioError) -> ThreadJob:
        job = self.jobs.get(str(job_id))
        if job is None:
            raise missing
        return job

    def cancel(self, job_id: str) -> None:
        """Stop a job at its next progress call; a queued one never starts."""
        cancel(self.records, job_id)

    def wait(self, job_id: str, timeout: float) -> ThreadJob:
        job, deadline = self.jobs[str(job_id)], time.time() + timeout
        while job.active and time.time() < deadline:
            time.sleep(0.05)
        return job

    def shutdown(self) -> None:
        """Take no more work; unfinished jobs stop at their next progress call and their rows say 'interrupted'."""
        self._closing = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        for job in list(self.jobs.values()):
            if job.active:
                self.records.finish(int(job.id), "interrupted", error=interrupted_sentence(job.kind, job.phase, job.id))


def cancel(records: JobRecords, job_id: int | str) -> dict:
    """Ask a thread job to stop: a job of this process stops at its next progress call (its event), one of
    another process when it next reads its row. Returns the row."""
    job = _LIVE.get(str(job_id))
    if job is not None:
        job.cancel.set()
    return records.request_cancel(job_id)
