"""The worker process: runs one job's target function with its output captured and its events sent home.

`main` is what the supervisor spawns. It points the process's stdout and stderr (the file
descriptors, so a native crash trace lands there too) at the run's `train.log`, imports the target
by dotted path ("package.module:function") and calls it with `emit` and `should_stop`. Progress
events travel through a multiprocessing queue to the supervisor, which owns `metrics.jsonl` and
SQLite; log events are written straight to `train.log`. The last message is always
`{"type": "done", **result}` or `{"type": "error", "message", "traceback"}` unless the process is
killed; `exit_reason` words what a silent death means and `pid_alive` tells a live worker from a
gone one. This module stays light on imports: every job pays them at spawn time, and heavy
libraries belong to the target.
"""
from __future__ import annotations

import faulthandler
import importlib
import logging
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("studio.jobs.worker")
ORPHAN_GRACE_S = 300.0  # an orphaned training worker's time to reach its next step and checkpoint


def load_target(dotted: str) -> Callable[..., dict]:
    """'pkg.module:function' (or 'pkg.module.function') -> the function."""
    module_name, _, attr = dotted.partition(":")
    if not attr:
        module_name, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


def failure_message(exc: BaseException) -> str:
    """What the person sees: a StudioError's own sentence, anything else named with a pointer to the log."""
    from studio.errors import StudioError

    if isinstance(exc, StudioError):
        return exc.message
    return f"Training failed: {type(exc).__name__}: {exc} (see train.log)"


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie nobody reaped (an orphan under a container's init) is as dead as can be
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def exit_reason(exitcode: int | None) -> str:
    """Why a worker that never reported a result ended, in words a person can act on."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        if -exitcode == signal.SIGKILL:
            return ("The training process was killed by signal 9 (SIGKILL) — often the system ran out of memory; "
                    "try a smaller batch size or max_length.")
        return f"The training process ended on signal {-exitcode} ({name}); see train.log."
    return f"The training process exited with code {exitcode} without reporting a result; see train.log."


def parent_watch(app_pid: int | None) -> Callable[[], bool]:
    """A check that says whether the app that started this process is gone. The process's own parent is the app
    (spawned) or the studio's fork server (forked, `studio.jobs.processes`), which ends with the app: either
    way, a changed parent means the app is gone, and so does a dead `app_pid`."""
    first = os.getppid()

    def gone() -> bool:
        return os.getppid() != first or (app_pid is not None and app_pid != first and not pid_alive(app_pid))

    return gone


def exit_with_parent(grace_s: float, poll_s: float = 1.0, on_orphan: Callable[[], None] | None = None,
                     parent: int | None = None) -> None:
    """Watch, from a daemon thread, for the process that spawned this one (`parent`, passed by the spawner since
    it may be gone before this runs) to go: killed, crashed, closed without a word. Then call `on_orphan` (a
    job's cue to stop cleanly) and, if the process still runs `grace_s` later, end it: a worker never goes on
    unseen after the app that owns it is gone."""
    import threading

    gone = parent_watch(parent)

    def watch() -> None:
        while not gone():
            time.sleep(poll_s)
        log.warning("The studio process %s is gone; this worker stops (hard stop in %.0f s).", parent, grace_s)
        if on_orphan is not None:
            on_orphan()
        time.sleep(grace_s)
        log.error("Still running %.0f s after the studio went; ending the worker.", grace_s)
        logging.shutdown()
        os._exit(3)

    threading.Thread(target=watch, name="studio-orphan-watch", daemon=True).start()


def capture_output(log_path: Path) -> None:
    stream = open(log_path, "a", buffering=1, encoding="utf-8", errors="replace")
    for std in (sys.stdout, sys.stderr):
        if std is not None:
            std.flush()
    # dup2 rather than reassigning sys.stdout only: C extensions and a segfault write to fds 1 and 2.
    os.dup2(stream.fileno(), 1)
    os.dup2(stream.fileno(), 2)
    sys.stdout = sys.stderr = stream
    faulthandler.enable(stream)
    logging.basicConfig(stream=stream, level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(target: str, run_dir: str, home: str, resume_from: str | None, events: Any, stop: Any,
         app_pid: int | None = None, visible_devices: str | None = None, environ: dict | None = None) -> None:
    """Process entry. `events` is a multiprocessing Queue, `stop` a multiprocessing Event, `app_pid` the process
    that started this one, `visible_devices` the GPUs this job may use (CUDA_VISIBLE_DEVICES, set before anything
    touches CUDA), `environ` the app's environment (`studio.jobs.processes`)."""
    from studio.jobs.processes import adopt_environment

    adopt_environment(environ)
    if visible_devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible_devices
    run_dir_path = Path(run_dir)
    capture_output(run_dir_path / "train.log")
    os.environ["STUDIO_HOME"] = str(home)
    parent_gone = parent_watch(app_pid)
    # Ctrl-C in a terminal reaches the whole process group; the app decides (cancel, or checkpoint on exit).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # An orphan checkpoints at its next step (`should_stop`); one stuck in a step is ended after the grace.
    exit_with_parent(ORPHAN_GRACE_S, parent=app_pid)

    def emit(event: dict) -> None:
        if event.get("type") == "log":
            log.info("%s", event.get("message", ""))
        else:
            events.put({"time": round(time.time(), 3), **event})

    def should_stop() -> bool:
        # An orphan (the app died under it) checkpoints and stops rather than train unseen.
        return stop.is_set() or parent_gone()

    log.info("Job started: pid %s, target %s, resume_from %s", os.getpid(), target, resume_from)
    try:
        fn = load_target(target)
        result = fn(run_dir=run_dir_path, home=Path(home), resume_from=Path(resume_from) if resume_from else None,
                    emit=emit, should_stop=should_stop)
        result = {k: (str(v) if isinstance(v, Path) else v) for k, v in (result or {}).items()}
        log.info("Job finished: %s", result)
        events.put({**result, "type": "done"})
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the supervisor must hear why
        log.error("Job failed:\n%s", traceback.format_exc())
        events.put({"type": "error", "message": failure_message(exc), "traceback": traceback.format_exc(),
                    "key": getattr(exc, "key", None), "params": getattr(exc, "params", None)})
    finally:
        events.close()
        if not parent_gone():
            events.join_thread()  # flush the queue before the process ends
        else:
            events.cancel_join_thread()  # nobody reads any more: a full pipe would hang the exit
        logging.shutdown()
