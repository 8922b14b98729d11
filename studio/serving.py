"""Serve a run or a model over an OpenAI-compatible API (`studio serve`, the Runs tab's Serve button).

The server is transformers' own (`transformers serve`: `/v1/chat/completions` with streaming, `/v1/models`),
pinned to one model folder and listening on a private local port. In front of it the studio runs a small
proxy on the port the user chose: it checks the API key when one is set, lets clients name the model as
`/v1/models` lists it (the run's name), and passes everything else through, streams included. A LoRA-style
run is served merged into its base (written once into the run's `served/` folder, float32, so answers match the
playground's); a full fine-tune, an alias or a local folder is served as it is.
"""
import hmac
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from studio.errors import StudioError

FIELD = "serve"
READY_TIMEOUT_S = 600  # loading a large model from disk on a slow machine
SERVED = "served"  # the merged copy of an adapter run, inside its run folder


def check_port(host: str, port: int) -> None:
    """Refuse a port something else already listens on (or one out of range), before any model loads."""
    if not 0 < port < 65536:
        raise StudioError(f"'port' {port} is not a port number; pick one between 1024 and 65535, e.g. 8000.",
                          field="port", key="serve.bad_port", port=port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            raise StudioError(f"Port {port} on {host} is already taken; pick another one (e.g. {port + 1}) or "
                              "stop what uses it.", field="port", key="serve.port_taken", port=port,
                              host=host, other=port + 1) from None


def check_servable(ws, spec: str):
    """The export source `spec` names, refused unless it is a finished run or a model that writes text (nothing is
    loaded: what the page checks before it starts a server)."""
    from studio.export.source import CAUSAL, resolve_source

    source = resolve_source(ws, spec)  # a run that is not finished, or a model that is missing, is refused here
    if source.head != CAUSAL:
        raise StudioError(f"'{spec}' is a {source.head} model; only models that write text can be served.",
                          field=FIELD, key="serve.not_causal", spec=spec, head=source.head)
    if source.is_run and source.result_kind != "model" and not source.mergeable:
        raise StudioError(f"Method '{source.method}' cannot be merged into the base weights, so its run cannot be "
                          f"served: {source.why_not_mergeable()}.", field=FIELD, key="serve.not_mergeable",
                          method=source.method, why=source.why_not_mergeable())
    return source


def served_model(ws, spec: str, progress: Callable[[str], Any] = lambda phase: None) -> tuple[Path | str, str]:
    """(the folder or hub id the server loads, the name clients use) for `spec`: a finished run or a model."""
    from studio.export.source import load_source
    from studio.models.catalogue import resolve_model
    from studio.models.refs import run_spec

    source = check_servable(ws, spec)
    if not source.is_run:
        return resolve_model(source.base, ws), source.spec
    name = run_spec(source.run["id"])
    if source.result_kind == "model":
        return source.result_dir, name
    folder = Path(source.run["run_dir"]) / SERVED
    if not (folder / "config.json").is_file():
        from studio.export.merge import save_merged

        progress("merging the adapter into its base")
        model, tokenizer = load_source(ws, source)  # refuses a method that cannot merge, with its reason
        tmp = folder.with_name(SERVED + ".tmp")
        save_merged(model, tokenizer, tmp, source, dtype="fp32")
        tmp.rename(folder)
    return folder, name


def server_command(model: Path | str, port: int) -> list[str]:
    """transformers' OpenAI-compatible server, pinned to `model`, on a private local port."""
    return [sys.executable, "-c", "import sys; from transformers.cli.transformers import main; sys.exit(main())",
            "serve", str(model), "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]


def last_line(log: Path) -> str:
    """The server log's last non-blank line (what a failed server said last), or '' when it wrote nothing."""
    from studio.jobs.runfiles import tail_lines

    return next((line for line in reversed(tail_lines(log)) if line.strip()), "")


def wait_ready(child: subprocess.Popen, port: int, log: Path, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until the child server answers /v1/models; a child that exits first is refused with its last log line."""
    import httpx

    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        if child.poll() is not None:
            last = last_line(log)
            raise StudioError(f"The model could not be served: {last or 'the server exited'}.", field=FIELD,
                              key="serve.failed", why=last or "exited")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise StudioError(f"The model server did not answer within {timeout_s:.0f} s; see {log}.", field=FIELD,
                      key="serve.timeout", seconds=int(timeout_s), log=str(log))


def proxy_app(upstream: str, model: str, name: str, api_key: str | None):
    """The studio's front: API key, the model's name, and everything else passed to `upstream` as it streams.
    (This module has no `from __future__ import annotations`: FastAPI reads the handlers' `Request` hints.)"""
    import httpx
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.background import BackgroundTask

    app = FastAPI(title="Fine-tuning Studio server")
    client = httpx.AsyncClient(base_url=upstream, timeout=None)

    def refused(request: Request) -> JSONResponse | None:
        if api_key and not hmac.compare_digest(request.headers.get("authorization", ""), f"Bearer {api_key}"):
            return JSONResponse({"error": {"message": "Missing or wrong API key: send 'Authorization: Bearer "
                                           "<key>'.", "type": "invalid_request_error", "code": "invalid_api_key"}},
                                status_code=401)
        return None

    @app.get("/v1/models")
    async def models(request: Request):
        return refused(request) or {"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "fine-tuning-studio"}]}

    @app.api_route("/v1/{path:path}", methods=["GET", "POST"])
    async def forward(path: str, request: Request):
        if (no := refused(request)) is not None:
            return no
        body = await request.body()
        if body and request.headers.get("content-type", "").startswith("application/json"):
            payload = json.loads(body)
            if isinstance(payload, dict) and payload.get("model") in (None, name, model):
                payload["model"] = model
            elif isinstance(payload, dict):
                return JSONResponse({"error": {"message": f"This server serves '{name}', not "
                                               f"'{payload.get('model')}'.", "type": "invalid_request_error",
                                               "code": "model_not_found"}}, status_code=404)
            body = json.dumps(payload).encode()
        upstream_request = client.build_request(request.method, f"/v1/{path}", content=body,
                                                headers={"content-type": request.headers.get("content-type",
                                                                                             "application/json")})
        response = await client.send(upstream_request, stream=True)
        return StreamingResponse(response.aiter_raw(), status_code=response.status_code,
                                 media_type=response.headers.get("content-type"),
                                 background=BackgroundTask(response.aclose))

    app.router.on_shutdown.append(client.aclose)
    return app


def _die_with_parent() -> None:
    """In the model server's process before it starts (Linux): SIGTERM it when the studio process serving it dies,
    however it dies, so no server is left behind."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Server:
    """One served model: the transformers server child and the proxy in this process."""

    def __init__(self, ws, spec: str, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
                 progress: Callable[[str], Any] = lambda phase: None):
        check_port(host, port)
        self.host, self.port, self.api_key = host, port, api_key or None
        self.folder, self.name = served_model(ws, spec, progress)
        from studio.distributed import free_port

        self.private_port = free_port()
        self.log = Path(ws.home) / "logs" / f"serve-{port}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.child: subprocess.Popen | None = None
        self.progress = progress

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start_model(self) -> None:
        self.progress("loading the model")
        with open(self.log, "w", encoding="utf-8") as out:
            self.child = subprocess.Popen(server_command(self.folder, self.private_port), stdout=out,
                                          stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        try:
            wait_ready(self.child, self.private_port, self.log)
        except BaseException:
            self.stop()
            raise

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Serve until `should_stop()` says so (checked every second) or the model server dies; then stop both."""
        import uvicorn

        self.start_model()
        app = proxy_app(f"http://127.0.0.1:{self.private_port}", str(self.folder), self.name, self.api_key)
        config = uvicorn.Config(app, host=self.host, port=self.port, log_level="warning",
                                callback_notify=self._notify(should_stop), timeout_notify=1)
        self.server = uvicorn.Server(config)
        self.progress(f"serving at {self.url}")
        try:
            self.server.run()
        finally:
            died = self.child is not None and self.child.poll() is not None
            self.stop()
        if died:
            last = last_line(self.log)
            raise StudioError(f"The model server stopped: {last or 'it exited'}.", field=FIELD, key="serve.died",
                              why=last or "exited")

    def _notify(self, should_stop: Callable[[], bool]):
        async def check() -> None:
            if should_stop() or (self.child is not None and self.child.poll() is not None):
                self.server.should_exit = True
        return check

    def stop(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()


def start_background(ws, spec: str, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
                     wait_s: float = 120) -> tuple[subprocess.Popen, dict]:
    """Serve `spec` from a `studio serve` process of its own (the app's Serve button): checked here first, so a taken
    port or an unfinished run is refused at once; the process records its serve job and ends when this process
    does. Returns (the process, its job row)."""
    import os

    from studio.jobs.records import JobRecords

    check_port(host, port)
    check_servable(ws, spec)
    env = dict(os.environ, STUDIO_HOME=str(ws.home))
    env.pop("STUDIO_SERVE_API_KEY", None)
    if api_key:
        env["STUDIO_SERVE_API_KEY"] = api_key
    child = subprocess.Popen([sys.executable, "-m", "studio.cli", "serve", spec, "--host", host, "--port", str(port),
                              "--watch-pid", str(os.getpid())], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    records = JobRecords(ws)
    began = time.monotonic()
    while time.monotonic() - began < wait_s:
        rows = [j for j in records.list(kind="serve") if j.get("pid") == child.pid or
                (j.get("app_pid") == child.pid)]
        if rows:
            return child, rows[0]
        if child.poll() is not None:
            break
        time.sleep(0.2)
    raise StudioError(f"The server process for '{spec}' did not start; run `studio serve {spec}` in a terminal to "
                      "see why.", field=FIELD, key="serve.no_start", spec=spec)
