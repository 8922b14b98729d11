"""Every kind of background work is a row of the workspace's jobs table: exports from the app and from the
terminal, training jobs, `studio jobs` list/show/cancel/retry, and what a killed app leaves behind."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from studio.cli import main
from studio.errors import StudioError
from studio.export.service import ExportService
from studio.jobs import JobManager
from studio.jobs.records import JobRecords, foreground
from studio.jobs.runfiles import SKIP_EVALUATION
from studio.jobs.worker import pid_alive

from tests.engine.test_export_core import finished
from tests.engine.test_jobs import FAKE, ROOT, make_run, wait_for


@pytest.fixture
def lora_run(workspace, tiny_llama_dir) -> str:
    return finished(workspace, tiny_llama_dir, "lora", max_steps=1)


def jobs_json(capsys, *args: str) -> list[dict]:
    capsys.readouterr()
    assert main(["jobs", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_exports_from_the_app_and_the_terminal_are_jobs_that_studio_jobs_lists(workspace, lora_run, tmp_path,
                                                                              capsys):
    service = ExportService(workspace)
    app_job = service.wait(service.start({"source": lora_run, "format": "adapter", "out": str(tmp_path / "a")},
                                         owner="ana"), timeout=300)
    assert app_job["state"] == "completed"
    assert main(["export", lora_run, "--format", "adapter", "--out", str(tmp_path / "b")]) == 0
    assert main(["export", "run:missing", "--format", "merged"]) == 1

    failed, terminal, from_app = jobs_json(capsys)  # newest first
    assert from_app["id"] == int(app_job["id"]) and from_app["kind"] == "export" and from_app["owner"] == "ana"
    assert from_app["status"] == "completed" and from_app["progress"] == 1.0
    assert from_app["result"]["path"] == str((tmp_path / "a").resolve())
    assert from_app["params"]["format"] == "adapter" and from_app["app_pid"] == os.getpid()
    assert terminal["status"] == "completed" and terminal["result"]["path"] == str((tmp_path / "b").resolve())
    assert failed["status"] == "failed" and "Run 'missing' does not exist" in failed["error"]
    assert main(["jobs", "show", str(failed["id"])]) == 0
    assert "status: failed" in capsys.readouterr().out
    # The app reads a job it did not start (here: the terminal's) from its row.
    assert service.job(str(terminal["id"]))["state"] == "completed"
    assert jobs_json(capsys, "--active") == []


def test_a_killed_app_leaves_its_export_interrupted_with_no_worker_and_retry_runs_it(workspace, lora_run, tmp_path,
                                                                                      capsys):
    out = tmp_path / "merged"
    app = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, signal
        from studio.export.service import ExportService
        from studio.workspace import Workspace
        service = ExportService(Workspace.open({str(workspace.home)!r}))
        service.start({{"source": {lora_run!r}, "format": "merged", "dtype": "fp32", "out": {str(out)!r}}})
        os.kill(os.getpid(), signal.SIGKILL)  # the app dies the moment its export worker is started
    """)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert app.returncode == -9
    [row] = workspace.jobs(kind="export")
    wait_for(lambda: not pid_alive(row["pid"]), timeout=60)  # the orphaned worker ended itself
    [job] = jobs_json(capsys)
    assert job["status"] == "interrupted" and f"studio jobs retry {job['id']}" in job["error"]
    assert not out.exists()

    assert main(["jobs", "retry", str(job["id"])]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(str(out.resolve()))
    again, _ = jobs_json(capsys)
    assert again["status"] == "completed" and again["params"]["out"] == str(out.resolve())
    assert main(["jobs", "retry", str(again["id"])]) == 1
    assert "only an interrupted, failed or cancelled job can be retried" in capsys.readouterr().err


def test_a_job_that_reports_no_fraction_shows_no_percentage(workspace, capsys):
    """A served model has a phase ('serving at ...') but no fraction: neither the row nor `studio jobs` says 0%."""
    with foreground(workspace, "serve", "run:x on :8000", {"source": "run:x"}) as job:
        assert JobRecords(workspace).get(job.id)["progress"] is None
        job.records.progress(job.id, None, "serving at http://127.0.0.1:8000", force=True)
        [row] = jobs_json(capsys)
        assert row["progress"] is None and row["phase"] == "serving at http://127.0.0.1:8000"
        capsys.readouterr()
        assert main(["jobs"]) == 0
        assert "%" not in capsys.readouterr().out


def test_cancel_from_another_process_stops_a_terminal_job_and_ended_jobs_say_so(workspace, capsys):
    records = JobRecords(workspace)
    with pytest.raises(KeyboardInterrupt):
        with foreground(workspace, "export", "a long export", {"source": "x"}) as job:
            job.progress(0.1, "writing layer 1/30")
            assert main(["jobs", "cancel", str(job.id)]) == 0
            job.progress(0.2, "writing layer 2/30")  # the next progress report is where it stops
    ended = records.get(job.id)
    assert ended["status"] == "cancelled" and ended["phase"] == "writing layer 1/30"
    assert main(["jobs", "cancel", str(job.id)]) == 1
    assert "has already ended (cancelled)" in capsys.readouterr().err
    with pytest.raises(StudioError) as info:
        records.get("nope")
    assert info.value.key == "jobs.no_job"


def test_training_jobs_are_listed_with_their_step_and_cancelled_through_studio_jobs(workspace, capsys):
    manager = JobManager(workspace, target=FAKE, poll_s=0.05, cancel_timeout=20).start()
    try:
        run_id = make_run(workspace, "listed", steps=500, every=1000)
        manager.submit(run_id)
        wait_for(lambda: (workspace.get_run(run_id)["step"] or 0) >= 2)
        [job] = jobs_json(capsys, "--kind", "train")
        assert job["title"] == run_id and job["status"] == "running" and job["phase"].startswith("step ")
        assert 0 < job["progress"] < 1
        assert main(["jobs", "skip-eval", str(job["id"])]) == 0  # the worker cuts its next evaluation short
        assert (Path(workspace.get_run(run_id)["run_dir"]) / SKIP_EVALUATION).exists()
        assert main(["jobs", "cancel", str(job["id"])]) == 0
        assert manager.wait(run_id, timeout=60)["status"] == "cancelled"
        assert main(["jobs", "skip-eval", str(job["id"])]) == 1
        assert "is cancelled; only a running run's evaluation can be skipped" in capsys.readouterr().err
        [job] = jobs_json(capsys)
        assert job["status"] == "cancelled"
    finally:
        manager.shutdown(kill_running=True, timeout=30)


def test_a_job_row_left_running_by_a_dead_app_becomes_interrupted(workspace):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    records = JobRecords(workspace)
    row = records.create("export", "left behind", {"source": "x"})
    workspace.update_job(row, app_pid=gone.pid, phase="writing layer 12/30")
    assert records.recover() == [row]
    job = records.get(row)
    assert job["status"] == "interrupted" and "writing layer 12/30" in job["error"]
    assert Path(workspace.db_path).exists()
