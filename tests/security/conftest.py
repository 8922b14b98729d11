"""A studio served with --auth on a free loopback port, and a raw HTTP client that logs in and calls any
registered Gradio function by its index, the way an attacker with a session cookie could."""
from __future__ import annotations

import json
import socket
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from studio.engine import Engine
from studio.login_throttle import LoginThrottle
from studio.workspace import Workspace

ADMIN, ADMIN_PASSWORD = "ana", "s3cret-admin"
ANNOTATOR, ANNOTATOR_PASSWORD = "luis", "tomate-verde"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Served:
    demo: Any
    engine: Engine
    url: str
    clock: FakeClock

    def client(self, user: str | None = None, password: str | None = None) -> "RawClient":
        client = RawClient(self, httpx.Client(base_url=self.url, timeout=120))
        if user is not None:
            answer = client.http.post("/login", data={"username": user, "password": password})
            assert answer.status_code == 200, answer.text
        return client


class RawClient:
    """Calls a function through /gradio_api/queue/join and reads its result from the event stream."""

    def __init__(self, served: Served, http: httpx.Client):
        self.served, self.http = served, http
        self.session = uuid.uuid4().hex
        self.components = None

    def default_inputs(self, fn_index: int) -> list[Any]:
        if self.components is None:
            self.components = {c["id"]: c for c in self.http.get("/config").json()["components"]}
        block_fn = self.served.demo.fns[fn_index]
        return [self.components.get(b._id, {}).get("props", {}).get("value") for b in block_fn.inputs]

    def join(self, fn_index: int, data: list[Any] | None = None) -> httpx.Response:
        body = {"data": self.default_inputs(fn_index) if data is None else data, "fn_index": fn_index,
                "session_hash": self.session, "trigger_id": None, "event_data": None}
        return self.http.post("/gradio_api/queue/join", json=body)

    def call(self, fn_index: int, data: list[Any] | None = None) -> dict[str, Any]:
        """The process_completed message: {"success": bool, "output": {...}}."""
        answer = self.join(fn_index, data)
        answer.raise_for_status()
        event = answer.json()["event_id"]
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": self.session}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    if message.get("msg") == "process_completed" and message.get("event_id") == event:
                        return message
        raise AssertionError(f"no result for function {fn_index}")


def fn_index(demo: Any, elem_id: str, event: str) -> int:
    """The index of the function that `event` on the component `elem_id` triggers."""
    for index, block_fn in demo.fns.items():
        for block_id, name in block_fn.targets or []:
            if name == event and getattr(demo.blocks.get(block_id), "elem_id", None) == elem_id:
                return index
    raise KeyError(f"{elem_id}.{event}")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from studio.ui import launch

    ws = Workspace.open(tmp_path_factory.mktemp("team-studio"))
    engine = Engine(ws, start_jobs=False)
    engine.prefs.store.add_annotator(ANNOTATOR, ANNOTATOR_PASSWORD, role="annotator")
    clock = FakeClock()
    port = free_port()
    demo = launch(host="127.0.0.1", port=port, auth=f"{ADMIN}:{ADMIN_PASSWORD}", engine=engine, block=False,
                  throttle=LoginThrottle(clock=clock))
    try:
        yield Served(demo, engine, f"http://127.0.0.1:{port}", clock)
    finally:
        demo.close()
        engine.shutdown()
