"""`studio serve`: a finished LoRA run (merged into its base) answers the OpenAI client, streamed, with the same greedy
text as the playground; an API key is enforced; a taken port and an unfinished run are refused with a sentence.
transformers' own server runs in a child process, the studio's proxy in a thread here."""
from __future__ import annotations

import socket
import threading

import pytest

from studio.errors import StudioError
from studio.evaluation import resolve_target
from studio.generation import GenerationSettings, ModelPool, stream_chat
from studio.serving import Server, check_port, served_model
from tests.engine.test_training import run_in_process, tiny_recipe

pytestmark = pytest.mark.slow  # a model server process starts (transformers' imports: 10-30 s on 2 cores)
openai = pytest.importorskip("openai")
MESSAGES = [{"role": "user", "content": "Name a colour."}]
TOKENS = 8


class Running:
    """A Server running in a thread until the test ends."""

    def __init__(self, server: Server):
        self.server, self.stop, self.error = server, threading.Event(), None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.server.run(should_stop=self.stop.is_set)
        except BaseException as exc:  # noqa: BLE001 (reported by the test)
            self.error = exc

    def __enter__(self):
        started = threading.Event()
        progress = self.server.progress
        self.server.progress = lambda phase: (progress(phase), phase.startswith("serving") and started.set())
        self.thread.start()
        while not started.wait(1):
            assert self.thread.is_alive(), self.error
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(120)
        assert not self.thread.is_alive()
        assert self.server.child.poll() is not None  # the model server ended with the proxy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_served_lora_run_streams_the_playground_s_greedy_answer(workspace, tiny_llama_dir):
    run_id, _, result = run_in_process(workspace, tiny_recipe(tiny_llama_dir, "lora"))
    workspace.update_run(run_id, status="completed", result_dir=result["result_dir"])  # what the job manager does
    target = resolve_target(workspace, f"run:{run_id}")
    greedy = GenerationSettings(do_sample=False, repetition_penalty=1.0, max_new_tokens=TOKENS)
    playground = ""
    for playground in stream_chat(workspace, target.model, target.run_id, MESSAGES, greedy, ModelPool(workspace)):
        pass

    port = free_port()
    with Running(Server(workspace, f"run:{run_id}", port=port, api_key="sekret")) as running:
        assert running.server.name == f"run:{run_id}" and running.server.folder.name == "served"
        client = openai.OpenAI(base_url=running.server.url, api_key="sekret")
        assert [m.id for m in client.models.list()] == [f"run:{run_id}"]
        stream = client.chat.completions.create(model=f"run:{run_id}", messages=MESSAGES, max_tokens=TOKENS,
                                                temperature=0, stream=True)
        pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
        assert len([p for p in pieces if p]) > 1  # streamed piece by piece
        assert "".join(pieces) == playground
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=running.server.url, api_key="wrong").models.list()
        with pytest.raises(StudioError, match=f"Port {port} on 127.0.0.1 is already taken"):
            check_port("127.0.0.1", port)


def test_a_run_without_a_result_cannot_be_served(workspace, tiny_llama_dir):
    from studio.training import prepare_run

    run_id = prepare_run(workspace, tiny_recipe(tiny_llama_dir, "lora"))  # queued, never trained
    with pytest.raises(StudioError, match="wait until it completes"):
        served_model(workspace, f"run:{run_id}")


def test_the_page_s_serve_starts_a_job_that_cancel_stops_without_leftovers(workspace, tiny_llama_dir):
    import time

    from studio.engine import Engine
    from studio.jobs.worker import pid_alive
    from tests.processes import descendants

    run_id, _, result = run_in_process(workspace, tiny_recipe(tiny_llama_dir, "lora"))
    workspace.update_run(run_id, status="completed", result_dir=result["result_dir"])
    engine = Engine(workspace, start_jobs=False)
    port = free_port()
    job = engine.serve(f"run:{run_id}", port)
    assert job["kind"] == "serve" and job["status"] == "running"
    deadline = time.monotonic() + 300
    while not (engine.job_list(kind="serve")[0]["phase"] or "").startswith("serving at"):
        assert time.monotonic() < deadline and engine.job_list(kind="serve")[0]["status"] == "running"
        time.sleep(0.5)
    reply = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none").chat.completions.create(
        model=f"run:{run_id}", messages=MESSAGES, max_tokens=4, temperature=0)
    assert reply.choices[0].message.content
    with pytest.raises(StudioError, match="already taken"):  # refused before any process starts
        engine.serve(f"run:{run_id}", port)
    server_pids = descendants(engine._servers[0].pid) + [engine._servers[0].pid]
    engine.cancel_job(job["id"])
    engine._servers[0].wait(120)
    assert engine.job_list(kind="serve")[0]["status"] == "cancelled"
    deadline = time.monotonic() + 60
    while any(pid_alive(p) for p in server_pids):  # the model server ends with the studio process serving it
        assert time.monotonic() < deadline
        time.sleep(0.5)
    engine.shutdown()


def test_a_server_that_exits_at_start_is_refused_with_its_last_log_line(tmp_path):
    import subprocess
    import sys

    from studio.serving import wait_ready

    log = tmp_path / "server.log"
    with open(log, "w") as out:
        child = subprocess.Popen([sys.executable, "-c", "print('loading'); print('OSError: no model here'); print()"],
                                 stdout=out, stderr=subprocess.STDOUT)
        child.wait()
    with pytest.raises(StudioError) as info:
        wait_ready(child, port=1, log=log)
    assert info.value.key == "serve.failed"
    assert str(info.value) == "The model could not be served: OSError: no model here."
