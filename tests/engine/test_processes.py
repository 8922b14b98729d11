"""How workers start (`studio.jobs.processes`): from a fork server that imported the heavy libraries once, with
the app's environment of the moment, and knowing when the app that started them is gone."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from studio.jobs import processes
from studio.jobs.worker import parent_watch


def report(queue, environ, names):
    processes.adopt_environment(environ)
    queue.put({"env": {n: os.environ.get(n) for n in names}, "torch": "torch" in sys.modules,
               "gone": parent_watch(None)()})


@pytest.mark.parametrize("chosen, expected", [("spawn", "spawn"), ("forkserver", "forkserver"), ("", None)])
def test_the_start_method_is_forkserver_without_a_gpu_unless_set(monkeypatch, chosen, expected):
    monkeypatch.setenv(processes.ENV, chosen)
    no_gpu = "forkserver" if sys.platform.startswith("linux") and not processes.gpu_present() else "spawn"
    assert processes.start_method() == (expected or no_gpu)


def test_a_forked_worker_has_the_libraries_loaded_and_the_apps_environment_of_now(monkeypatch):
    if processes.start_method() != "forkserver":
        pytest.skip("workers are spawned on this machine")
    ctx = processes.context()
    queue = ctx.Queue()
    first = ctx.Process(target=report, args=(queue, processes.environment(), ["STUDIO_LATE"]))
    first.start()  # starts the fork server (if no job did yet) with this environment
    assert queue.get(timeout=300)["env"] == {"STUDIO_LATE": None}
    first.join()
    monkeypatch.setenv("STUDIO_LATE", "set after the fork server started")
    monkeypatch.delenv("HOME", raising=False)
    second = ctx.Process(target=report, args=(queue, processes.environment(), ["STUDIO_LATE", "HOME"]))
    second.start()
    seen = queue.get(timeout=120)
    second.join()
    assert seen == {"env": {"STUDIO_LATE": "set after the fork server started", "HOME": None}, "torch": True,
                    "gone": False}


def test_a_worker_knows_when_the_app_is_gone():
    assert parent_watch(os.getpid())() is False  # our parent is alive, and so are we
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert parent_watch(int(done.stdout))() is True  # an app pid that has ended
