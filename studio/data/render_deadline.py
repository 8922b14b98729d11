"""A time limit for Python code that runs in the caller's thread: `run_with_deadline(seconds, fn, ...)`.

One daemon watchdog thread keeps the deadlines of the calls in flight; when one passes, it raises
`DeadlineExceeded` inside the thread that is still running (`PyThreadState_SetAsyncExc`), so the work
stops at its next Python instruction even if nobody waits for its result any more (a browser tab that
was closed). A single C call that never returns to Python is not interrupted; the template sandbox
keeps those small. Arming costs a lock and a set insert, so it can wrap every rendered example.

The exception is delivered at most once per call and never after `run_with_deadline` returns: the
watchdog injects only while holding its lock and only into calls not yet marked done; a call marks
itself done, waits out a scan in progress, and clears an injected exception that has not arrived yet.
What to do about a timeout (wording it for people) is the caller's job.
"""
from __future__ import annotations

import ctypes
import os
import threading
import time
from typing import Any, Callable, TypeVar

T = TypeVar("T")


class DeadlineExceeded(BaseException):
    """Raised in a thread whose call ran past its deadline. A BaseException, so no `except Exception`
    in the code being run (Jinja's runtime, a filter) can swallow it."""


try:  # CPython only; elsewhere there is no time limit rather than a crash
    _SET_ASYNC_EXC = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
        ("PyThreadState_SetAsyncExc", ctypes.pythonapi))
    _CLEAR_ASYNC_EXC = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
        ("PyThreadState_SetAsyncExc", ctypes.pythonapi))
except (AttributeError, TypeError):  # pragma: no cover
    _SET_ASYNC_EXC = _CLEAR_ASYNC_EXC = None


class _Call:
    """One call in flight. `done` is set by its own thread, `fired` by the watchdog."""

    __slots__ = ("deadline", "thread_id", "done", "fired")

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds
        self.thread_id = threading.get_ident()
        self.done = False
        self.fired = False


class _Watchdog:
    # While calls keep coming it wakes at least every _TICK seconds, so arming a call with a longer
    # limit never has to wake it (waking it for every call would cost a thread switch each time).
    _TICK = 1.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._calls: set[_Call] = set()
        self._wake_at = float("inf")
        self._armed_since_scan = False
        self._thread: threading.Thread | None = None

    def arm(self, call: _Call) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="render-deadline", daemon=True)
                self._thread.start()
            if call.deadline < self._wake_at:
                self._wake.notify()  # before the insert: this call cannot be interrupted until it is armed
            self._armed_since_scan = True
            self._calls.add(call)

    def disarm(self, call: _Call) -> None:
        call.done = True  # the watchdog fires no call marked done ...
        with self._lock:  # ... and a scan that read it before this line has finished once we hold the lock
            self._calls.discard(call)
        if call.fired:
            _CLEAR_ASYNC_EXC(call.thread_id, None)  # injected but not raised yet: drop it

    def _watch(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                wake_at = now + self._TICK if self._armed_since_scan or self._calls else float("inf")
                self._armed_since_scan = False
                for call in self._calls:
                    if call.done or call.fired:
                        continue
                    if call.deadline <= now:
                        call.fired = True
                        _SET_ASYNC_EXC(call.thread_id, DeadlineExceeded)
                    else:
                        wake_at = min(wake_at, call.deadline)
                self._wake_at = wake_at
                self._wake.wait(None if wake_at == float("inf") else wake_at - now)


_WATCHDOG = _Watchdog()
_LOCAL = threading.local()


def _forget_after_fork() -> None:
    # The child has no watchdog thread, maybe a lock held by a thread that did not come along, and no
    # call in flight even if it was forked from inside one.
    _WATCHDOG.__init__()
    _LOCAL.active = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def run_with_deadline(seconds: float, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)`, or DeadlineExceeded raised in this thread once `seconds` have passed.

    A call made while this thread already runs under a deadline runs under that outer one.
    """
    if _SET_ASYNC_EXC is None or getattr(_LOCAL, "active", False):
        return fn(*args)
    call = _Call(seconds)
    _LOCAL.active = True
    try:
        try:
            _WATCHDOG.arm(call)
            return fn(*args)
        finally:
            _WATCHDOG.disarm(call)
    except DeadlineExceeded:
        # It may have arrived inside the first disarm and cut it short; a second one cannot come.
        _WATCHDOG.disarm(call)
        raise
    finally:
        _LOCAL.active = False
