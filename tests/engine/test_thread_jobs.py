"""RAG indexing, preference candidates and the AI judge are job rows like training and export: listed by
`studio jobs`, cancelled from another process, marked interrupted when the app stops or is killed, and retried
by `studio jobs retry` (real Chroma, the fake embedder, a tiny random Llama)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from argparse import Namespace
from pathlib import Path

import pytest

from studio.jobs import threads
from studio.jobs.records import JobRecords
from studio.rag import embedder as embedders
from studio.rag.service import RagService
from tests.engine.test_jobs import ROOT, wait_for
from tests.rag_fixtures import FakeEmbedder
from tests.rag_pdf import make_pdf


def pdfs(folder: Path, count: int = 3) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [make_pdf(folder / f"manual-{i}.pdf", [f"Manual {i} page {n} covers part {i}{n}." for n in range(1, 5)])
            for i in range(count)]


class GatedEmbedder(FakeEmbedder):
    """The fake embedder whose first encode waits for the test (the job is then running, mid-file)."""

    def __init__(self):
        super().__init__()
        self.entered, self.gate = threading.Event(), threading.Event()

    def encode(self, texts):
        self.entered.set()
        self.gate.wait(60)
        return super().encode(texts)


def chunk_count(svc: RagService, name: str) -> int:
    return svc.store.client.get_collection(name).count()


def test_an_index_job_is_a_row_with_its_request_and_report(workspace, tmp_path):
    svc = RagService(workspace, embedder_loader=lambda name, ws: FakeEmbedder())
    job_id = svc.start_indexing("manuals", pdfs(tmp_path, 2), owner="ana")
    assert svc.wait(job_id).state == "completed"
    row = JobRecords(workspace).get(job_id)
    assert row["kind"] == "index" and row["status"] == "completed" and row["owner"] == "ana"
    assert row["title"] == "manuals <- manual-0.pdf, manual-1.pdf" and row["progress"] == 1.0
    assert row["result"]["added"] == ["manual-0.pdf", "manual-1.pdf"] and row["result"]["pages"] == 8
    assert row["params"]["collection"] == "manuals" and row["params"]["password"] is False
    assert not any((workspace.home / "rag" / "incoming").iterdir())  # the kept copies go once indexed


def test_a_cancel_from_another_process_stops_indexing_and_a_retry_finishes_without_duplicates(
        workspace, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(threads, "CANCEL_CHECK_S", 0.0)  # read the row at every progress call
    gated = GatedEmbedder()
    svc = RagService(workspace, embedder_loader=lambda name, ws: gated)
    files = pdfs(tmp_path)
    job_id = svc.start_indexing("manuals", files)
    assert gated.entered.wait(60)
    JobRecords(workspace).request_cancel(job_id)  # what `studio jobs cancel ID` does
    for f in files:
        f.unlink()  # the upload's temp files are gone: the retry reads the workspace's copies
    gated.gate.set()
    job = svc.wait(job_id)
    assert job.state == "cancelled" and job.pages_done == 4
    row = JobRecords(workspace).get(job_id)
    assert row["status"] == "cancelled" and row["error"] == "The index job was cancelled."

    from studio.cli_jobs import cmd_retry

    monkeypatch.setattr(embedders, "load_embedder", lambda name, ws: FakeEmbedder())
    assert cmd_retry(Namespace(job_id=job_id)) == 0
    retried = JobRecords(workspace).list(kind="index")[0]
    assert retried["id"] != int(job_id) and retried["status"] == "completed"
    assert retried["result"]["added"] == ["manual-0.pdf", "manual-1.pdf", "manual-2.pdf"]
    fresh = RagService(workspace, embedder_loader=lambda name, ws: FakeEmbedder())
    fresh.wait(fresh.start_indexing("manuals-once", pdfs(tmp_path / "again")))
    assert chunk_count(fresh, "manuals") == chunk_count(fresh, "manuals-once")  # the half-added file was redone
    assert '"status": "completed"' in capsys.readouterr().out


def test_stopping_the_app_marks_a_running_index_interrupted(workspace, tmp_path):
    gated = GatedEmbedder()
    svc = RagService(workspace, embedder_loader=lambda name, ws: gated)
    job_id = svc.start_indexing("manuals", pdfs(tmp_path, 1))
    assert gated.entered.wait(60)
    svc.shutdown()
    gated.gate.set()
    svc.wait(job_id)
    row = JobRecords(workspace).get(job_id)
    assert row["status"] == "interrupted" and f"studio jobs retry {job_id}" in row["error"]


KILLED_APP = textwrap.dedent("""
    import sys, threading
    from studio.rag.service import RagService
    from studio.workspace import Workspace
    from tests.rag_fixtures import FakeEmbedder

    class Stuck(FakeEmbedder):
        def encode(self, texts):
            print("encoding", flush=True)
            threading.Event().wait()

    svc = RagService(Workspace.open(), embedder_loader=lambda name, ws: Stuck())
    svc.start_indexing("manuals", [sys.argv[1]])
    threading.Event().wait()
""")


def test_a_killed_app_leaves_its_index_job_interrupted_and_retryable(workspace, tmp_path, monkeypatch):
    pdf = pdfs(tmp_path, 1)[0]
    env = {**os.environ, "STUDIO_HOME": str(workspace.home), "PYTHONPATH": str(ROOT)}
    app = subprocess.Popen([sys.executable, "-c", KILLED_APP, str(pdf)], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                           text=True)
    try:
        assert app.stdout.readline().strip() == "encoding"
    finally:
        app.send_signal(signal.SIGKILL)
        app.wait()
    records = JobRecords(workspace)
    wait_for(lambda: records.list(kind="index")[0]["status"] == "interrupted")
    [row] = records.list(kind="index")
    assert "studio jobs retry" in row["error"] and row["pid"] is None

    from studio.cli_jobs import cmd_retry

    monkeypatch.setattr(embedders, "load_embedder", lambda name, ws: FakeEmbedder())
    assert cmd_retry(Namespace(job_id=str(row["id"]))) == 0
    assert records.list(kind="index")[0]["status"] == "completed"
    assert RagService(workspace).store.manifest("manuals")["files"]["manual-0.pdf"]["pages"] == 4


def test_a_generation_job_is_retried_from_its_row(workspace, tiny_llama_dir, monkeypatch):
    from studio.generation import GenerationSettings
    from studio.prefs.service import PrefService

    svc = PrefService(workspace)
    short = [GenerationSettings(max_new_tokens=3, do_sample=False), GenerationSettings(max_new_tokens=4, seed=1)]
    gate = threading.Event()
    svc.jobs._pool.submit(gate.wait, 60)  # the generation stays queued until the cancel
    job_id = svc.start_generation("round-1", ["Say hi.", "Say bye."], [str(tiny_llama_dir)], 2, short,
                                  created_by="ana")
    svc.cancel(job_id)
    gate.set()
    assert svc.wait(job_id)["state"] == "cancelled"
    row = JobRecords(workspace).get(job_id)
    assert row["kind"] == "generate" and row["owner"] == "ana" and row["params"]["k"] == 2

    from studio.cli_jobs import cmd_retry

    assert cmd_retry(Namespace(job_id=job_id)) == 0
    done = JobRecords(workspace).list(kind="generate")[0]
    assert done["status"] == "completed" and done["result"]["name"] == "round-1" and done["result"]["items"] == 2
    assert [s["name"] for s in PrefService(workspace).task_sets()] == ["round-1"]


def test_a_password_protected_index_is_not_retried_without_its_password(workspace):
    from studio.errors import StudioError
    from studio.jobs.retry import restart

    row = {"id": 7, "kind": "index", "params": {"collection": "x", "paths": [], "names": [], "password": True}}
    with pytest.raises(StudioError, match="passwords are not kept") as info:
        restart(workspace, row)
    assert info.value.key == "jobs.retry_password"


def test_the_app_cancels_and_retries_any_job_through_the_engine(workspace, tmp_path):
    from studio.engine import Engine
    from studio.errors import StudioError

    engine = Engine(workspace, start_jobs=False)
    gated = GatedEmbedder()
    engine._rag = RagService(workspace, embedder_loader=lambda name, ws: gated)
    job_id = engine.rag.start_indexing("manuals", pdfs(tmp_path, 2))
    assert gated.entered.wait(60)
    with pytest.raises(StudioError) as info:
        engine.retry_job(job_id)  # still running
    assert info.value.key == "jobs.not_retryable"
    assert engine.cancel_job(job_id)["status"] == "cancelling"
    gated.gate.set()
    assert engine.rag.wait(job_id).state == "cancelled"
    again = engine.retry_job(job_id)
    assert again["kind"] == "index" and engine.rag.wait(again["job_id"]).state == "completed"
    listed = engine.job_list(kind="index")
    assert [j["status"] for j in listed] == ["completed", "cancelled"]
    engine.shutdown()
