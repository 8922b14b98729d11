"""Issue 16's 'done when': an app killed (SIGKILL) while a training, an export and an indexing job run leaves, once
a studio looks again, three jobs marked interrupted and no worker process; each is then resumed or retried.
(Fake training target, tiny random Llama for the export, the fake embedder for indexing.)"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from argparse import Namespace

from studio.cli import main
from studio.jobs import JobManager
from studio.jobs.worker import pid_alive
from studio.rag import embedder as embedders
from tests.engine.test_export_core import finished
from tests.engine.test_jobs import FAKE, ROOT, make_run, wait_for
from tests.engine.test_thread_jobs import pdfs
from tests.processes import descendants
from tests.rag_fixtures import FakeEmbedder

# transformers' lazy imports raced once between the indexing thread and the main thread ("cannot import name
# 'TrainerCallback'"), so the app script imports what both use before it starts the thread.
APP = textwrap.dedent("""
    import os, signal, sys, threading, time, traceback
    from transformers import AutoTokenizer, TrainerCallback  # noqa: F401 - first imports on one thread (see below)
    from studio.export.service import ExportService
    from studio.jobs import JobManager
    from studio.rag.service import RagService
    from studio.workspace import Workspace
    from tests.rag_fixtures import FakeEmbedder

    class Stuck(FakeEmbedder):
        def encode(self, texts):
            threading.Event().wait()

    try:
        run_id, source, pdf, out = sys.argv[1:5]
        ws = Workspace.open()
        rag = RagService(ws, embedder_loader=lambda name, ws: Stuck())
        job = rag.job(rag.start_indexing("manuals", [pdf]))
        while job.state != "running":
            assert job.active, f"indexing ended {job.state}: {job.error}"
            time.sleep(0.05)
        manager = JobManager(ws, target=sys.argv[5], poll_s=0.05).start()
        manager.submit(run_id)
        while (ws.get_run(run_id)["step"] or 0) < 2:
            assert ws.get_run(run_id)["status"] in ("queued", "running"), ws.get_run(run_id)
            time.sleep(0.05)
        exports = ExportService(ws)
        export = exports.start({"source": source, "format": "merged", "out": out, "report": False})
        held = exports._jobs[export].process.pid
        os.kill(held, signal.SIGSTOP)  # held mid-export, so it is still running when the app is killed
        print("ready", held, flush=True)
    except BaseException:
        print("app failed: " + traceback.format_exc().replace(chr(10), " | "), flush=True)
        os._exit(1)
    threading.Event().wait()
""")



def jobs_json(capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["jobs", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_killed_app_leaves_three_interrupted_jobs_no_orphan_and_each_runs_again(
        workspace, tiny_llama_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STUDIO_HOME", str(workspace.home))
    source = finished(workspace, tiny_llama_dir, "lora", max_steps=1)
    run_id = make_run(workspace, "long", steps=500, every=1000, sleep=0.2)  # about 100 s: still running when killed
    pdf = pdfs(tmp_path, 1)[0]
    app = subprocess.Popen([sys.executable, "-c", APP, run_id, f"run:{source}", str(pdf), str(tmp_path / "merged"),
                            FAKE], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                           text=True)
    held = None
    try:
        ready, held = app.stdout.readline().split()
        assert ready == "ready"
        workers = descendants(app.pid)
    finally:
        app.send_signal(signal.SIGKILL)
        app.wait()
        if held:
            os.kill(int(held), signal.SIGCONT)  # the export goes on, finds the app gone and ends
    training = workspace.get_run(run_id)["pid"]
    assert training in workers and int(held) in workers  # (indexing is a thread of the app)
    wait_for(lambda: not any(pid_alive(pid) for pid in workers), timeout=120)  # no orphan: each ends by itself

    JobManager(workspace).recover()  # what a studio does when it starts
    jobs = {job["kind"]: job for job in jobs_json(capsys) if job["kind"] != "train" or job["run_id"] == run_id}
    assert {kind: job["status"] for kind, job in jobs.items()} == {
        "train": "interrupted", "export": "interrupted", "index": "interrupted"}, {k: j["error"] for k, j in jobs.items()}

    monkeypatch.setattr(embedders, "load_embedder", lambda name, ws: FakeEmbedder())
    from studio.cli_jobs import cmd_retry

    assert cmd_retry(Namespace(job_id=str(jobs["index"]["id"]))) == 0
    assert cmd_retry(Namespace(job_id=str(jobs["export"]["id"]))) == 0
    assert (tmp_path / "merged" / "model.safetensors").exists()
    manager = JobManager(workspace, target=FAKE, poll_s=0.05).start()
    try:
        manager.resume(run_id)
        assert workspace.get_run(run_id)["status"] in ("queued", "running")
        manager.cancel(run_id)
        manager.wait(run_id, timeout=60)
    finally:
        manager.shutdown(kill_running=True, timeout=30)
    statuses = [(job["kind"], job["status"]) for job in jobs_json(capsys)]
    assert ("index", "completed") in statuses and ("export", "completed") in statuses
