"""The job queue: runs each training job in its own spawned worker process, watched by a supervising thread.

`JobManager` turns a prepared run (row, directory and recipe.yaml already made by
`studio.training.prepare_run`) into a queued job, starts queued jobs side by side as long as the devices
they ask for are free (`studio.jobs.devices`: each GPU, or the CPU as one), appends the workers' progress
events to the run's `metrics.jsonl`, keeps the
run's SQLite row current, and records how each job ended, including a worker that died without a
word (SIGKILL from the out-of-memory killer, a segfault). SQLite is the only shared state: a CLI
training in the foreground and the app's manager see and respect each other's jobs, claim queued
jobs atomically, and cancel each other's runs by writing 'cancelling'. On start, runs left running
by a dead process become 'interrupted' and can be resumed from their last checkpoint. What a job
does (loading, training, checkpoints) is the target's business; the worker process side lives in
`studio.jobs.worker`.
"""
from __future__ import annotations

import atexit
import logging
import multiprocessing.util  # noqa: F401 - registers its exit hook before ours (see start)
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from studio.errors import StudioError
from studio.jobs import devices as _devices
from studio.jobs import processes, worker
from studio.jobs.runfiles import (SKIP_EVALUATION, append_log_line, append_metrics, checkpoint_step, estimate_eta,
                                  follow_metrics, latest_checkpoint, recent_metrics, rewind_metrics, tail_lines)
from studio.jobs.records import error_columns
from studio.phase import phase_columns, phase_text
from studio.jobs.worker import exit_reason, pid_alive
from studio.workspace import ACTIVE_STATES, Workspace

log = logging.getLogger(__name__)

RUNNING = ("running", "cancelling")
KILL_GRACE_S = 5.0  # between SIGTERM and SIGKILL
EXIT_GRACE_S = 30.0  # a worker that reported its result but does not exit is ended after this


@dataclass
class _Worker:
    """One running job as the supervisor sees it."""

    job_id: int
    run_id: str
    run_dir: Path
    process: Any
    events: Any
    stop: Any
    outcome: dict | None = None
    outcome_at: float | None = None
    stop_asked_at: float | None = None
    closing: bool = False  # stopped because the studio is closing: 'interrupted', not 'cancelled'
    terminated_at: float | None = None
    last: dict = field(default_factory=dict)  # latest step / total_steps / loss, for the runs row


class JobManager:
    """Queue, start, watch, cancel and resume training jobs for one workspace.

    Run states: queued -> running -> completed | failed | cancelled; running -> cancelling ->
    cancelled (graceful stop with a checkpoint, or a hard kill after `cancel_timeout`); queued ->
    cancelled; running -> interrupted when the studio closes or dies under it. failed, cancelled and
    interrupted runs with a checkpoint can be resumed (queued again with `resume_from`).
    """

    def __init__(self, ws: Workspace, target: str = "studio.training:execute", max_concurrent: int | None = None,
                 cancel_timeout: float = 60.0, poll_s: float = 0.2, devices: list[str] | None = None):
        self.ws = ws
        self.target = target
        self._device_list = devices  # found on first use: `studio runs` need not import torch
        self._max_concurrent = max_concurrent
        self.cancel_timeout = cancel_timeout
        self.poll_s = poll_s
        self._ctx = processes.context()
        self._lock = threading.Lock()
        self._workers: dict[int, _Worker] = {}
        self._wake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._dead_seen: dict[int, float] = {}  # other processes' jobs whose worker pid looked dead
        self._last_sweep = 0.0

    @property
    def devices(self) -> list[str]:
        """The devices jobs share: GPU indices, or ["cpu"] (`studio.jobs.devices.detect`)."""
        if self._device_list is None:
            self._device_list = _devices.detect()
        return self._device_list

    @property
    def max_concurrent(self) -> int:
        return self._max_concurrent or len(self.devices)

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> "JobManager":
        if self._thread is None:
            self.recover()
            self._thread = threading.Thread(target=self._supervise, name="studio-jobs", daemon=True)
            self._thread.start()
            # atexit runs last-registered first: multiprocessing.util (imported above) registered its
            # hook that joins every worker already, so ours asks them to stop before that join waits.
            atexit.register(self._at_exit)
        return self

    def shutdown(self, wait: bool = True, kill_running: bool = False, timeout: float | None = None) -> None:
        """Stop starting jobs (queued ones stay queued for the next manager). Running workers are left
        to finish while the supervisor records them, or with `kill_running` asked to checkpoint and stop,
        hard-killed after `cancel_timeout`, their runs becoming 'interrupted' (resumable)."""
        self._closing = True
        if kill_running:
            with self._lock:
                for w in self._workers.values():
                    w.closing = True
                    self._ask_stop(w)
        self._wake.set()
        if wait and self._thread is not None:
            self._thread.join(timeout)
        atexit.unregister(self._at_exit)

    def _at_exit(self) -> None:
        # Without this, multiprocessing's own exit hook would wait for every worker to finish training.
        if self._thread is not None and self._thread.is_alive():
            self.shutdown(wait=True, kill_running=True, timeout=self.cancel_timeout + 2 * KILL_GRACE_S)

    def recover(self) -> list[str]:
        """Runs left running/cancelling by a process that is gone become 'interrupted'. Returns their ids."""
        now, gone = time.time(), []
        for job in self.ws.jobs(status=RUNNING, kind="train"):
            if job["id"] not in self._workers and not self._looks_alive(job["pid"], job["started_at"], now):
                gone.append(job["run_id"])
                self._finish_job(job["id"], job["run_id"], "interrupted", self._interrupted_message(job["run_id"]))
        for run in self.ws.list_runs():
            if run["status"] in RUNNING and run["id"] not in gone and not self._looks_alive(
                    run["pid"], run["started_at"], now):
                gone.append(run["id"])
                self._finish_job(None, run["id"], "interrupted", self._interrupted_message(run["id"]))
        return gone

    # --- requests ---------------------------------------------------------------------------
    def submit(self, run_id: str, resume_from: str | Path | None = None) -> int:
        run = self._get_run(run_id)
        if run["status"] in RUNNING or self._latest_job(run_id, ("queued",)):
            raise StudioError(f"Run '{run_id}' is already {run['status']}; wait for it or cancel it first.",
                              field="run_id", key="job.already_active", run_id=run_id, status=run["status"])
        # Row first, job second: a manager that claims the job at once then moves the row to 'running'.
        self.ws.update_run(run_id, status="queued", error=None, finished_at=None, pid=None)
        job_id = self.ws.insert_job(run_id, "train", str(resume_from) if resume_from else None)
        self._wake.set()
        return job_id

    def resume(self, run_id: str) -> int:
        run = self._get_run(run_id)
        if run["status"] in ACTIVE_STATES:
            raise StudioError(f"Run '{run_id}' is {run['status']}; wait for it or cancel it before resuming.",
                              field="run_id", key="job.resume_active", run_id=run_id, status=run["status"])
        if run["status"] == "completed":
            raise StudioError(f"Run '{run_id}' already completed; there is nothing to resume. "
                              "Start a new run to train further.", field="run_id",
                              key="job.resume_completed", run_id=run_id)
        ckpt = latest_checkpoint(Path(run["run_dir"]))
        if ckpt is None:
            raise StudioError(f"Run '{run_id}' has no checkpoint to resume from (it stopped before saving one); "
                              "start it again as a new run.", field="run_id",
                              key="job.resume_no_checkpoint", run_id=run_id)
        return self.submit(run_id, resume_from=ckpt)

    def cancel(self, run_id: str, force: bool = False) -> str:
        """Cancel a queued run at once, or ask a running one to stop after its current step (it writes a
        checkpoint first, however long the step takes). `force` ends a running one now, losing the work since
        its last checkpoint. Returns the run's new status."""
        now = time.time()
        with self.ws.db() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
                if row is None:
                    raise StudioError(f"There is no run '{run_id}'; pick one from the Runs list.", field="run_id",
                                      key="job.no_run", run_id=run_id)
                status = row["status"]
                if status == "queued":
                    new = "cancelled"
                    conn.execute("UPDATE jobs SET status = 'cancelled', finished_at = ? "
                                 "WHERE run_id = ? AND status = 'queued'", (now, run_id))
                    conn.execute("UPDATE runs SET status = 'cancelled', finished_at = ? WHERE id = ?", (now, run_id))
                elif status in RUNNING:
                    new = "cancelling"
                    conn.execute("UPDATE jobs SET status = 'cancelling' WHERE run_id = ? AND status = 'running'",
                                 (run_id,))
                    conn.execute("UPDATE runs SET status = 'cancelling' WHERE id = ?", (run_id,))
                else:
                    raise StudioError(f"Run {run_id} already finished ({status}); there is nothing to cancel.",
                                      field="run_id", key="job.cancel_finished", run_id=run_id, status=status)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        if new == "cancelling":
            with self._lock:
                mine = [w for w in self._workers.values() if w.run_id == run_id]
                for w in mine:
                    self._ask_stop(w)
                    if force:
                        self._terminate(w, "force stop asked")
            if force and not mine:  # another process's worker: its supervisor records how it ended
                pid = self.ws.get_run(run_id)["pid"]
                if pid and pid_alive(pid):
                    os.kill(pid, signal.SIGTERM)
            self._wake.set()
        return new

    def skip_evaluation(self, run_id: str) -> None:
        """Cut the evaluation a running run is doing short (after the batch in progress); its partial scores are
        not charted and training goes on. Asked between evaluations, it is dropped when the next one ends."""
        run = self.ws.get_run(run_id)
        if run is None:
            raise StudioError(f"There is no run '{run_id}'; pick one from the Runs list.", field="run_id",
                              key="job.no_run", run_id=run_id)
        if run["status"] != "running":
            raise StudioError(f"Run {run_id} is {run['status']}; only a running run's evaluation can be skipped.",
                              field="run_id", key="job.skip_not_running", run_id=run_id, status=run["status"])
        (Path(run["run_dir"]) / SKIP_EVALUATION).touch()

    # --- views ------------------------------------------------------------------------------
    def queue_position(self, run_id: str) -> int | None:
        """How many jobs are ahead of this run's queued job (running ones included); None if not queued."""
        job = self._latest_job(run_id, ("queued",))
        if job is None:
            return None
        with self.ws.db() as conn:
            row = conn.execute("SELECT COUNT(*) AS n FROM jobs WHERE kind = ? AND (status IN ('running', "
                               "'cancelling') OR (status = 'queued' AND id < ?))", (job["kind"], job["id"])).fetchone()
        return int(row["n"])

    def queued_behind(self, run_id: str) -> str | None:
        """The run this queued run waits for (the oldest job ahead of it, usually the one running); None if not
        queued."""
        job = self._latest_job(run_id, ("queued",))
        if job is None:
            return None
        with self.ws.db() as conn:
            row = conn.execute("SELECT run_id FROM jobs WHERE kind = ? AND (status IN ('running', 'cancelling') OR "
                               "(status = 'queued' AND id < ?)) ORDER BY status = 'queued', id LIMIT 1",
                               (job["kind"], job["id"])).fetchone()
        return row["run_id"] if row else None

    def status(self, run_id: str) -> dict:
        """The runs row plus queue_position, eta_s, tokens_per_s and log_tail (last 20 lines of train.log)."""
        run = self._get_run(run_id)
        run_dir = Path(run["run_dir"])
        events = recent_metrics(run_dir)
        job = self._latest_job(run_id) or {}
        since = job.get("started_at") or 0.0
        eta = estimate_eta(events, since, run["step"] or 0, run["total_steps"]) if run["status"] in RUNNING else None
        speeds = [e["tokens_per_s"] for e in events if e.get("tokens_per_s") is not None]
        log_lines = tail_lines(run_dir / "train.log", 16384)[-20:]
        return {**run, "phase": job.get("phase") if run["status"] in RUNNING else None,
                "queue_position": self.queue_position(run_id), "eta_s": eta,
                "tokens_per_s": speeds[-1] if speeds else None, "log_tail": "\n".join(log_lines)}

    def wait(self, run_id: str, timeout: float | None = None, poll_s: float = 0.1) -> dict:
        """Block until the run leaves the active states; returns its row. TimeoutError after `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self._get_run(run_id)
            if run["status"] not in ACTIVE_STATES:
                return run
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {run['status']} after {timeout} s")
            time.sleep(poll_s)

    def follow(self, run_id: str, poll_s: float = 0.5) -> Iterator[dict]:
        """Yield each metrics.jsonl event as it is written, ending once the run is no longer active."""
        run_dir = Path(self._get_run(run_id)["run_dir"])
        yield from follow_metrics(run_dir, lambda: self._get_run(run_id)["status"] in ACTIVE_STATES, poll_s)

    # --- supervisor -------------------------------------------------------------------------
    def _supervise(self) -> None:
        while True:
            try:
                self._tick()
            except Exception:  # the supervisor must outlive any one bad tick (disk full, a locked db)
                log.exception("job supervisor tick failed")
            with self._lock:
                busy = bool(self._workers)
            if self._closing and not busy:
                return
            self._wake.wait(self.poll_s if busy else 1.0)
            self._wake.clear()

    def _tick(self) -> None:
        with self._lock:
            workers = list(self._workers.values())
        self._notice_cancels(workers)
        for w in workers:
            self._drain(w)
            if w.process.exitcode is not None:
                self._drain(w)
                self._reap(w)
            else:
                self._enforce_deadlines(w)
        if time.time() - self._last_sweep > 5.0:
            self._sweep_foreign_jobs()
        while not self._closing and self._start_next():
            pass

    def _ask_stop(self, w: _Worker) -> None:
        w.stop.set()
        if w.stop_asked_at is None:
            w.stop_asked_at = time.time()

    def _notice_cancels(self, workers: list[_Worker]) -> None:
        # Another process (the UI while a CLI trains, or the reverse) cancels by writing 'cancelling'.
        waiting = [w for w in workers if w.stop_asked_at is None]
        if not waiting:
            return
        marks = ", ".join("?" for _ in waiting)
        with self.ws.db() as conn:
            rows = conn.execute(f"SELECT id, status FROM runs WHERE id IN ({marks})",
                                [w.run_id for w in waiting]).fetchall()
        status = {r["id"]: r["status"] for r in rows}
        for w in waiting:
            if status.get(w.run_id, "cancelling") == "cancelling":  # a deleted row also stops its job
                self._ask_stop(w)

    def _drain(self, w: _Worker) -> None:
        metrics = []
        while True:
            try:
                event = w.events.get_nowait()
            except (queue.Empty, EOFError, OSError):
                break
            kind = event.pop("type", "progress")
            if kind in ("done", "error"):
                w.outcome, w.outcome_at = {"type": kind, **event}, time.time()
            elif kind == "phase":  # evaluating / generating samples between steps, or back to training (None)
                self.ws.update_job(w.job_id, **phase_columns(phase_text(event)))
            elif kind != "log" and "step" in event:  # the worker writes log events to train.log itself
                event.setdefault("time", round(time.time(), 3))
                metrics.append(event)
                w.last.update({k: event[k] for k in ("step", "total_steps", "loss") if event.get(k) is not None})
        append_metrics(w.run_dir, metrics)
        if metrics:
            values = {k: w.last[k] for k in ("step", "total_steps") if k in w.last}
            if "loss" in w.last:
                values["final_loss"] = w.last["loss"]
            self.ws.update_run(w.run_id, **values)

    def _enforce_deadlines(self, w: _Worker) -> None:
        now = time.time()
        if w.terminated_at is not None:
            if now - w.terminated_at > KILL_GRACE_S:
                w.process.kill()
            return
        # A person's cancel waits for the step to end (the checkpoint is the point); closing the studio cannot.
        stop_due = w.closing and w.stop_asked_at is not None and now - w.stop_asked_at > self.cancel_timeout
        exit_due = w.outcome_at is not None and now - w.outcome_at > EXIT_GRACE_S
        if stop_due or exit_due:
            self._terminate(w, "the studio is closing" if stop_due else "it reported its result but did not exit")

    def _terminate(self, w: _Worker, why: str) -> None:
        if w.terminated_at is None:
            append_log_line(w.run_dir, f"stopping the training process by force (pid {w.process.pid}): {why}")
            w.process.terminate()
            w.terminated_at = time.time()

    def _reap(self, w: _Worker) -> None:
        outcome, error, result_dir, final_loss = w.outcome or {}, None, None, w.last.get("loss")
        if outcome.get("type") == "done":
            stopped = bool(outcome.get("stopped"))
            status = ("interrupted" if w.closing else "cancelled") if stopped else "completed"
            if w.closing and stopped:
                error = self._interrupted_message(w.run_id, closing=True)
            result_dir = outcome.get("result_dir")
            if outcome.get("final_loss") is not None:
                final_loss = outcome["final_loss"]
        elif outcome.get("type") == "error":
            status, error = "failed", outcome.get("message") or "Training failed (see train.log)."
            if outcome.get("key"):  # a StudioError in the worker: the Jobs panel words it in the page's language
                error = StudioError(error, key=outcome["key"], **(outcome.get("params") or {}))
        elif w.stop_asked_at is not None and (w.terminated_at is not None or not w.closing):
            status = "interrupted" if w.closing else "cancelled"
            ckpt = latest_checkpoint(w.run_dir)
            kept = (f"resume it from step {checkpoint_step(ckpt)}" if ckpt else "it had no checkpoint yet")
            error = (f"The run did not stop within {self.cancel_timeout:g} s of the studio closing, so it was "
                     f"stopped by force; {kept}." if w.closing else f"The run was stopped by force; {kept}.")
        else:
            status, error = "failed", exit_reason(w.process.exitcode)
        self._finish_job(w.job_id, w.run_id, status, error, result_dir=result_dir, final_loss=final_loss)
        append_log_line(w.run_dir, f"run {status}" + (f": {error}" if error else ""))
        with self._lock:
            self._workers.pop(w.job_id, None)
        w.events.close()
        w.process.close()

    def _start_next(self) -> bool:
        """Claim the oldest queued job if the devices it asks for are free (atomically, across processes: the jobs
        table says which devices each running job holds) and spawn it on them."""
        claimed = _devices.claim_next(self.ws, self.devices, self.max_concurrent)
        if claimed in (None, "taken"):
            return claimed == "taken"  # none fits its devices now, or another process took it: try the next one
        job, run, given = claimed
        run_dir = Path(run["run_dir"])
        try:
            if job["resume_from"]:
                step = checkpoint_step(Path(job["resume_from"]))
                rewind_metrics(run_dir, step)
                self.ws.update_run(job["run_id"], step=step)
            events, stop = self._ctx.Queue(), self._ctx.Event()
            process = self._ctx.Process(target=worker.main, name=f"studio-job-{job['id']}", args=(
                self.target, str(run_dir), str(self.ws.home), job["resume_from"], events, stop, os.getpid(),
                _devices.visible(given), processes.environment()))
            process.start()
        except Exception as exc:
            log.exception("could not start job %s", job["id"])
            self._finish_job(job["id"], job["run_id"], "failed",
                             f"Could not start the training process: {type(exc).__name__}: {exc}.")
            return True
        with self._lock:
            self._workers[job["id"]] = _Worker(job["id"], job["run_id"], run_dir, process, events, stop)
        self.ws.update_job(job["id"], pid=process.pid)
        self.ws.update_run(job["run_id"], pid=process.pid)
        return True

    def _sweep_foreign_jobs(self) -> None:
        """Jobs of another process whose worker has been gone for two sweeps become 'interrupted'."""
        now, seen = time.time(), {}
        self._last_sweep = now
        with self._lock:
            mine = set(self._workers)
        for job in self.ws.jobs(status=RUNNING, kind="train"):
            if job["id"] in mine or self._looks_alive(job["pid"], job["started_at"], now):
                continue
            first = self._dead_seen.get(job["id"], now)
            seen[job["id"]] = first
            if now - first >= 4.0:
                self._finish_job(job["id"], job["run_id"], "interrupted", self._interrupted_message(job["run_id"]),
                                 only_if_active=True)
        self._dead_seen = seen

    # --- helpers ----------------------------------------------------------------------------
    @staticmethod
    def _looks_alive(pid: int | None, started_at: float | None, now: float) -> bool:
        # A job claimed a moment ago may not have its worker's pid written yet.
        return pid_alive(pid) if pid else (started_at or 0) > now - 60

    def _finish_job(self, job_id: int | None, run_id: str, status: str, error: str | StudioError | None,
                    only_if_active: bool = False, **run_values: Any) -> None:
        now = time.time()
        guard = " AND status IN ('running', 'cancelling')" if only_if_active else ""
        columns = error_columns(error)
        values = {"status": status, "finished_at": now, "error": columns["error"], "pid": None,
                  **{k: v for k, v in run_values.items() if v is not None}}
        sets = ", ".join(f"{k} = ?" for k in values)
        with self.ws.db() as conn:
            conn.execute(f"UPDATE runs SET {sets} WHERE id = ?{guard}", (*values.values(), run_id))
            if job_id is not None:
                conn.execute("UPDATE jobs SET status = ?, finished_at = ?, error = ?, error_key = ?, error_params = ? "
                             f"WHERE id = ?{guard}", (status, now, columns["error"], columns["error_key"],
                                                      columns["error_params"], job_id))

    def _interrupted_message(self, run_id: str, closing: bool = False) -> StudioError:
        run = self.ws.get_run(run_id)
        ckpt = latest_checkpoint(Path(run["run_dir"])) if run else None
        why, how = ("The studio was closed", "closed") if closing else ("The studio stopped", "stopped")
        if ckpt is None:
            return StudioError(f"{why} while this run was training, before its first checkpoint; start it again.",
                               key=f"jobs.run_{how}_early")
        step = checkpoint_step(ckpt)
        return StudioError(f"{why} while this run was training; resume it to continue from step {step}.",
                           key=f"jobs.run_{how}", step=step)

    def _get_run(self, run_id: str) -> dict:
        run = self.ws.get_run(run_id)
        if run is None:
            raise StudioError(f"There is no run '{run_id}'; pick one from the Runs list.", field="run_id",
                              key="job.no_run", run_id=run_id)
        return run

    def _latest_job(self, run_id: str, status: tuple[str, ...] | None = None) -> dict | None:
        sql, args = "SELECT * FROM jobs WHERE run_id = ?", [run_id]
        if status:
            sql += f" AND status IN ({', '.join('?' for _ in status)})"
            args += list(status)
        with self.ws.db() as conn:
            row = conn.execute(sql + " ORDER BY id DESC LIMIT 1", args).fetchone()
        return dict(row) if row else None
