"""The job queue with a fake training target: order, cancel, resume, crashes and restarts.

Workers are real spawned processes running `tests.engine.fake_target:execute`, so these tests cover
the process boundary, the event queue, metrics.jsonl and SQLite, without loading any model.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from studio.errors import StudioError
from studio.jobs import JobManager, latest_checkpoint
from studio.workspace import Workspace, read_metrics

FAKE = "tests.engine.fake_target:execute"
ROOT = Path(__file__).resolve().parents[2]
# How long a test waits for an event at most: a bound, never a measurement. A process's first job waits for the
# fork server to import torch and transformers (`studio.jobs.processes`): 10-30 s on a busy 2-core machine.
WAIT_S = 180.0


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace.open(tmp_path / "home")


@pytest.fixture
def manager(ws):
    managers = []

    def make(**kwargs) -> JobManager:
        kwargs.setdefault("cancel_timeout", 20.0)
        kwargs.setdefault("poll_s", 0.05)
        m = JobManager(ws, target=FAKE, **kwargs).start()
        managers.append(m)
        return m

    yield make
    for m in managers:
        m.shutdown(kill_running=True, timeout=30)


def make_run(ws: Workspace, name: str, status: str = "queued", **fake) -> str:
    """A run row and directory as prepare_run leaves them, plus the fake target's settings."""
    run_id = ws.new_run_id(name)
    run_dir = ws.runs_dir / run_id
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "recipe.yaml").write_text(f"name: {name}\n")
    (run_dir / "fake.json").write_text(json.dumps(fake))
    ws.insert_run({"id": run_id, "name": name, "model": "fake", "stage": "sft", "method": "lora",
                   "dataset": "fake", "status": status, "run_dir": str(run_dir), "created_at": time.time()})
    return run_id


def wait_for(predicate, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def calls(ws: Workspace, run_id: str) -> list[dict]:
    path = ws.runs_dir / run_id / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_jobs_run_one_at_a_time_in_submission_order(ws, manager):
    m = manager()
    first, second = make_run(ws, "first", steps=4), make_run(ws, "second", steps=3)
    m.submit(first)
    m.submit(second)
    assert m.queue_position(second) == 1
    followed = [e["step"] for e in m.follow(second, poll_s=0.05)]
    a, b = m.wait(first, timeout=WAIT_S), m.wait(second, timeout=WAIT_S)

    assert (a["status"], b["status"]) == ("completed", "completed")
    assert a["finished_at"] <= b["started_at"]
    assert followed == [1, 2, 3]
    metrics = read_metrics(Path(a["run_dir"]))
    assert [e["step"] for e in metrics] == [1, 2, 3, 4]
    assert all("time" in e and "loss" in e for e in metrics)
    assert (a["step"], a["total_steps"], a["final_loss"]) == (4, 4, 0.5)
    assert a["result_dir"] == str(Path(a["run_dir"]) / "adapter") and a["pid"] is None
    status = m.status(first)
    assert status["queue_position"] is None and status["tokens_per_s"] == 1004.0
    assert "fake training from step 0" in status["log_tail"]


def test_cancelling_a_queued_job_never_starts_it(ws, manager):
    m = manager()
    busy, waiting = make_run(ws, "busy", steps=200), make_run(ws, "waiting", steps=2)
    m.submit(busy)
    m.submit(waiting)
    assert m.cancel(waiting) == "cancelled"
    assert ws.get_run(waiting)["status"] == "cancelled"
    m.cancel(busy)
    assert m.wait(busy, timeout=WAIT_S)["status"] == "cancelled"
    time.sleep(0.3)
    assert calls(ws, waiting) == [] and ws.get_run(waiting)["status"] == "cancelled"
    assert [j["status"] for j in ws.jobs()] == ["cancelled", "cancelled"]


def test_cancel_leaves_a_resumable_checkpoint(ws, manager):
    m = manager()
    run_id = make_run(ws, "long", steps=200, every=50)
    m.submit(run_id)
    wait_for(lambda: (ws.get_run(run_id)["step"] or 0) >= 3)
    status = m.status(run_id)
    assert status["status"] == "running" and status["eta_s"] > 0 and status["pid"]
    assert m.cancel(run_id) == "cancelling"
    run = m.wait(run_id, timeout=WAIT_S)

    assert run["status"] == "cancelled" and run["error"] is None and run["finished_at"]
    ckpt = latest_checkpoint(Path(run["run_dir"]))
    assert ckpt is not None and ckpt.name == f"checkpoint-{run['step']}"


def test_ctrl_c_reaching_the_worker_leaves_the_decision_to_the_app(ws, manager):
    m = manager()
    run_id = make_run(ws, "interrupted-terminal", steps=500)
    m.submit(run_id)
    pid = wait_for(lambda: (ws.get_run(run_id)["step"] or 0) >= 1 and ws.get_run(run_id)["pid"])
    os.kill(pid, signal.SIGINT)
    step = ws.get_run(run_id)["step"]
    wait_for(lambda: ws.get_run(run_id)["step"] > step + 2)
    assert ws.get_run(run_id)["status"] == "running"
    m.cancel(run_id)
    assert m.wait(run_id, timeout=WAIT_S)["status"] == "cancelled"


def test_resume_continues_from_checkpoint_step(ws, manager):
    m = manager()
    run_id = make_run(ws, "resumable", steps=8, every=3, sleep=0.15)
    m.submit(run_id)
    wait_for(lambda: (ws.get_run(run_id)["step"] or 0) >= 4)  # past checkpoint-3: the stop writes a later one
    m.cancel(run_id)
    stopped = m.wait(run_id, timeout=WAIT_S)
    ckpt = latest_checkpoint(Path(stopped["run_dir"]))

    m.resume(run_id)
    run = m.wait(run_id, timeout=WAIT_S)
    assert run["status"] == "completed" and run["step"] == 8
    assert calls(ws, run_id)[-1] == {"resume_from": str(ckpt), "start": int(ckpt.name.split("-")[1])}
    assert [e["step"] for e in read_metrics(Path(run["run_dir"]))] == list(range(1, 9))


def test_sigkilled_worker_leaves_app_alive_and_run_failed(ws, manager):
    m = manager()
    doomed, next_up = make_run(ws, "doomed", steps=500), make_run(ws, "next", steps=2)
    m.submit(doomed)
    m.submit(next_up)
    pid = wait_for(lambda: (ws.get_run(doomed)["step"] or 0) >= 2 and ws.get_run(doomed)["pid"])
    os.kill(pid, signal.SIGKILL)
    run = m.wait(doomed, timeout=WAIT_S)

    assert run["status"] == "failed"
    assert "signal 9 (SIGKILL)" in run["error"] and "out of memory" in run["error"]
    assert "SIGKILL" in (Path(run["run_dir"]) / "train.log").read_text()
    assert m.wait(next_up, timeout=WAIT_S)["status"] == "completed"


def test_crash_in_target_fails_the_run_with_a_pointer_to_the_log(ws, manager):
    m = manager()
    run_id = make_run(ws, "crash", steps=5, fail_at=2)
    m.submit(run_id)
    run = m.wait(run_id, timeout=WAIT_S)
    assert run["status"] == "failed"
    assert run["error"] == "Training failed: RuntimeError: boom at step 2 (see train.log)"
    log_text = (Path(run["run_dir"]) / "train.log").read_text()
    assert "Traceback" in log_text and "boom at step 2" in log_text
    assert "fake target on stdout" in log_text and "fake target on fd 2" in log_text


def test_studio_error_in_target_reaches_the_run_word_for_word(ws, manager):
    m = manager()
    run_id = make_run(ws, "bad-data", steps=5, fail_at=1, mode="studio_error")
    m.submit(run_id)
    run = m.wait(run_id, timeout=WAIT_S)
    assert (run["status"], run["error"]) == (
        "failed", "The dataset 'x' has no 'messages' column; pick a chat dataset.")


def test_cancel_during_a_slow_step_waits_for_it_and_keeps_a_checkpoint(ws, manager):
    m = manager(cancel_timeout=0.2)  # far shorter than a step: only closing the studio uses this deadline
    run_id = make_run(ws, "slow", steps=50, sleep=1.5, every=1000)
    m.submit(run_id)
    wait_for(lambda: (ws.get_run(run_id)["step"] or 0) >= 1)
    assert m.cancel(run_id) == "cancelling"
    run = m.wait(run_id, timeout=60)
    assert run["status"] == "cancelled" and run["error"] is None
    assert latest_checkpoint(Path(run["run_dir"])).name == f"checkpoint-{run['step']}"


def test_an_evaluation_between_steps_shows_as_the_runs_phase(ws, manager):
    m = manager()
    run_id = make_run(ws, "evaluating", steps=500, every=1000, sleep=0.2, phase_at=2)
    m.submit(run_id)
    wait_for(lambda: m.status(run_id)["phase"] == "evaluating 2/16")
    from studio.ui.charts import progress_html
    from studio.ui.i18n import Texts

    assert "Evaluating: batch 2 of 16" in progress_html(m.status(run_id), Texts.load(), "en")
    assert "Evaluando: lote 2 de 16" in progress_html(m.status(run_id), Texts.load(), "es")
    m.cancel(run_id)
    assert m.wait(run_id, timeout=WAIT_S)["status"] == "cancelled" and m.status(run_id)["phase"] is None


def test_a_worker_that_ignores_stop_runs_on_until_force_stop(ws, manager):
    m = manager(cancel_timeout=0.2)
    run_id = make_run(ws, "stubborn", steps=5000, sleep=0.3, every=2, mode="ignore_stop")
    m.submit(run_id)
    wait_for(lambda: (ws.get_run(run_id)["step"] or 0) >= 1)
    m.cancel(run_id)
    asked_at = ws.get_run(run_id)["step"]
    wait_for(lambda: ws.get_run(run_id)["step"] >= asked_at + 4)  # well past cancel_timeout: not killed
    assert ws.get_run(run_id)["status"] == "cancelling"
    JobManager(ws, target=FAKE).cancel(run_id, force=True)  # the second, explicit action (here: another process)
    run = m.wait(run_id, timeout=WAIT_S)
    assert run["status"] == "cancelled" and "stopped by force; resume it from step" in run["error"]


def test_another_manager_can_cancel_a_run_it_does_not_own(ws, manager):
    owner = manager()
    run_id = make_run(ws, "owned", steps=500)
    owner.submit(run_id)
    wait_for(lambda: (ws.get_run(run_id)["step"] or 0) >= 1)
    JobManager(ws, target=FAKE).cancel(run_id)  # e.g. `studio` CLI while the UI owns the worker
    assert owner.wait(run_id, timeout=WAIT_S)["status"] == "cancelled"


def test_finished_unknown_and_checkpointless_runs_give_clear_errors(ws):
    m = JobManager(ws, target=FAKE)  # never started: these calls need no supervisor
    done = make_run(ws, "done", status="completed")
    with pytest.raises(StudioError, match=rf"Run {done} already finished \(completed\); there is nothing to cancel"):
        m.cancel(done)
    with pytest.raises(StudioError, match="nothing to resume"):
        m.resume(done)
    with pytest.raises(StudioError, match="There is no run 'nope'"):
        m.cancel("nope")
    failed = make_run(ws, "failed-early", status="failed")
    with pytest.raises(StudioError, match="no checkpoint to resume from"):
        m.resume(failed)


def test_restart_marks_running_job_interrupted(ws, manager):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer exists, as after the app crashed with its worker
    crashed = make_run(ws, "crashed", status="running")
    ws.update_run(crashed, pid=gone.pid, step=5, started_at=time.time())
    job = ws.insert_job(crashed, "train")
    ws.update_job(job, status="running", pid=gone.pid, started_at=time.time())
    (ws.runs_dir / crashed / "checkpoints" / "checkpoint-4").mkdir()
    left_queued = make_run(ws, "left-queued", steps=2)
    ws.insert_job(left_queued, "train")

    m = manager()
    run = ws.get_run(crashed)
    assert run["status"] == "interrupted" and "continue from step 4" in run["error"]
    assert ws.jobs()[0]["status"] == "interrupted"
    assert m.wait(left_queued, timeout=WAIT_S)["status"] == "completed"


def test_killed_app_leaves_its_worker_checkpointed_and_the_run_interrupted(ws, manager):
    run_id = make_run(ws, "orphan", steps=500, every=1000)
    app = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from studio.jobs import JobManager
        from studio.workspace import Workspace
        m = JobManager(Workspace.open({str(ws.home)!r}), target={FAKE!r}, poll_s=0.05).start()
        m.submit({run_id!r})
        time.sleep(600)  # killed by the test once its worker is at step 2
    """)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        worker_pid = wait_for(lambda: (ws.get_run(run_id)["step"] or 0) >= 2 and ws.get_run(run_id)["pid"])
    finally:
        app.kill()
        app.wait()
    wait_for(lambda: latest_checkpoint(ws.runs_dir / run_id))
    from studio.jobs.worker import pid_alive
    wait_for(lambda: not pid_alive(worker_pid))

    manager()
    run = ws.get_run(run_id)
    assert run["status"] == "interrupted" and "resume it" in run["error"]


def test_exiting_the_app_stops_its_workers_and_leaves_runs_resumable(ws):
    run_id = make_run(ws, "closed", steps=500, every=1000)
    app = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from studio.jobs import JobManager
        from studio.workspace import Workspace
        ws = Workspace.open({str(ws.home)!r})
        m = JobManager(ws, target={FAKE!r}, poll_s=0.05).start()
        m.submit({run_id!r})
        while (ws.get_run({run_id!r})["step"] or 0) < 2:
            time.sleep(0.05)
    """)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=WAIT_S)  # exits without shutdown()

    assert app.returncode == 0
    run = ws.get_run(run_id)
    assert run["status"] == "interrupted" and "The studio was closed" in run["error"]
    assert latest_checkpoint(Path(run["run_dir"])).name == f"checkpoint-{run['step']}"


def test_a_worker_stuck_in_a_step_ends_soon_after_its_app_is_killed(tmp_path):
    """`exit_with_parent`: the orphan is told (its cue to checkpoint), then ended after the grace, whatever it does."""
    marks = tmp_path / "marks"
    marks.mkdir()
    worker = tmp_path / "worker.py"
    worker.write_text(textwrap.dedent(f"""
        import os, time
        from pathlib import Path
        from studio.jobs.worker import exit_with_parent
        marks = Path({str(marks)!r})
        exit_with_parent(0.5, poll_s=0.05, on_orphan=lambda: (marks / "told").write_text("1"))
        (marks / "pid").write_text(str(os.getpid()))
        while True:
            time.sleep(1)  # a step that never ends
    """))
    app = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time\n"
                            f"subprocess.Popen([sys.executable, {str(worker)!r}])\ntime.sleep(120)"],
                           cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        worker_pid = int(wait_for(lambda: (marks / "pid").exists() and (marks / "pid").read_text(), timeout=60))
    finally:
        app.kill()
        app.wait()
    from studio.jobs.worker import pid_alive

    wait_for(lambda: not pid_alive(worker_pid), timeout=60)
    assert (marks / "told").read_text() == "1"


def test_sigterm_on_the_served_studio_interrupts_its_training_and_leaves_no_worker(ws):
    run_id = make_run(ws, "served", steps=500, every=1000)
    app = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import socket
        from studio.engine import Engine
        from studio.ui.serve import launch
        from studio.workspace import Workspace
        engine = Engine(Workspace.open({str(ws.home)!r}), start_jobs=False)
        engine.jobs.target, engine.jobs.poll_s = {FAKE!r}, 0.05
        engine.jobs.start().submit({run_id!r})
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        print("port", port, flush=True)
        launch(port=port, engine=engine)
        engine.shutdown()
        print("closed cleanly")
    """)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "GRADIO_ANALYTICS_ENABLED": "False"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        port = next(int(line.split()[1]) for line in app.stdout if line.startswith("port "))
        worker_pid = wait_for(lambda: (ws.get_run(run_id)["step"] or 0) >= 2 and ws.get_run(run_id)["pid"],
                              timeout=120)
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/"), timeout=180)
        app.send_signal(signal.SIGTERM)  # as a service manager or a test fixture stops the studio
        out, _ = app.communicate(timeout=120)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    assert app.returncode == 0 and "closed cleanly" in out, out[-2000:]
    from studio.jobs.worker import pid_alive

    assert not pid_alive(worker_pid)
    run = ws.get_run(run_id)
    assert run["status"] == "interrupted" and "resume it" in run["error"]
    assert latest_checkpoint(Path(run["run_dir"])).name == f"checkpoint-{run['step']}"


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_small_jobs_run_side_by_side_on_free_devices_and_a_bigger_one_waits_for_two(ws, manager):
    """A machine with two GPUs (simulated: the manager is told its devices): two one-device jobs run at once, each
    seeing only its own GPU; a job asking for both waits until both are free, and the jobs table says who held what."""
    m = manager(devices=["0", "1"])
    a, b = make_run(ws, "a", steps=400, sleep=0.05), make_run(ws, "b", steps=400, sleep=0.05)
    big = make_run(ws, "big", steps=2)
    (ws.runs_dir / big / "recipe.yaml").write_text("name: big\ndata: {dataset: fake}\nresources: {devices: 2}\n")
    for run in (a, b, big):
        m.submit(run)
    wait_for(lambda: m.status(a)["status"] == "running" and m.status(b)["status"] == "running")
    assert m.status(big)["status"] == "queued"
    held = {j["run_id"]: j["devices"] for j in ws.jobs(kind="train")}
    assert sorted([held[a], held[b]]) == ["0", "1"] and held[big] is None
    wait_for(lambda: calls(ws, a) and calls(ws, b))
    assert {calls(ws, a)[0]["visible"], calls(ws, b)[0]["visible"]} == {"0", "1"}
    m.cancel(a)
    m.wait(a, timeout=WAIT_S)
    assert m.status(big)["status"] == "queued"  # one device free is not enough for it
    m.cancel(b)
    done = m.wait(big, timeout=WAIT_S)
    assert done["status"] == "completed" and calls(ws, big)[0]["visible"] == "0,1"
    assert {j["run_id"]: j["devices"] for j in ws.jobs(kind="train")}[big] == "0,1"


def test_on_a_cpu_machine_jobs_take_turns(ws, manager):
    m = manager(devices=["cpu"])
    first, second = make_run(ws, "first", steps=3), make_run(ws, "second", steps=2)
    m.submit(first)
    m.submit(second)
    a, b = m.wait(first, timeout=WAIT_S), m.wait(second, timeout=WAIT_S)
    assert a["finished_at"] <= b["started_at"]
    assert calls(ws, first)[0].get("visible") == os.environ.get("CUDA_VISIBLE_DEVICES")  # the CPU: nothing to confine
