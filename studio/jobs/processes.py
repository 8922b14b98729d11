"""How the studio starts its worker processes (training and export jobs).

A worker is a fresh process so that a crash or an out-of-memory kill never takes the app down. Started
with "spawn", each one imports PyTorch, transformers and PEFT again: 6-15 s on a 2-core machine before a
job does any work, every time. On Linux without a GPU the studio starts workers from a fork server
instead ("forkserver"): one clean process, started with the first job, imports those libraries once
(`studio.jobs.preload`) and forks a worker per job, which then starts in well under a second with them
already loaded. The fork server never touches a GPU or a thread pool, so the fork is safe; on a machine
with an NVIDIA or AMD GPU (a CUDA driver initialised before a fork breaks the child) workers are
spawned as before. `STUDIO_START_METHOD=spawn|forkserver` overrides the choice.

A forked worker's environment is the fork server's, frozen when it started, so the app hands each
worker its own environment of the moment (`environment` / `adopt_environment`).
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
from pathlib import Path
from typing import Any

ENV = "STUDIO_START_METHOD"
PRELOAD = ["studio.jobs.preload"]
_context: Any = None


def gpu_present() -> bool:
    """An NVIDIA or AMD GPU's device files or tools on this machine (checked without importing torch)."""
    dev = Path("/dev")
    return (any(dev.glob("nvidia[0-9]*")) or (dev / "kfd").exists() or shutil.which("nvidia-smi") is not None
            or shutil.which("rocm-smi") is not None)


def start_method() -> str:
    """'forkserver' on Linux without a GPU, else 'spawn'; `STUDIO_START_METHOD` wins when it names either."""
    chosen = os.environ.get(ENV, "").strip().lower()
    if chosen in ("spawn", "forkserver"):
        return chosen
    return "forkserver" if sys.platform.startswith("linux") and not gpu_present() else "spawn"


def context() -> Any:
    """The multiprocessing context every worker of this process starts from (chosen once)."""
    global _context
    if _context is None:
        method = start_method()
        _context = multiprocessing.get_context(method)
        if method == "forkserver":
            _context.set_forkserver_preload(PRELOAD)
    return _context


def environment() -> dict[str, str]:
    """This process's environment now, for a worker to adopt."""
    return dict(os.environ)


def adopt_environment(environ: dict[str, str] | None) -> None:
    """Make the worker's environment the app's (a forked worker starts with the fork server's)."""
    if environ is None or environ == dict(os.environ):
        return
    for name in set(os.environ) - set(environ):
        del os.environ[name]
    os.environ.update(environ)
