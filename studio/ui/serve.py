"""Serving the app: host checks, authentication, and the launch itself (`studio ui`, `python app.py`).

The studio binds loopback by default. Binding any other address exposes training jobs and files
to the network, so `check_host_auth` refuses it (`StudioError`) unless credentials are given:
either "user:password" or the path of a file with one `user:password` per line (blank lines and
`#` comments ignored). With credentials the engine switches to server mode (`studio.access`: roles
checked on the server for every call, paths kept inside the workspace and `--allow-dir` folders).
`ThrottledLogin` sits in front of Gradio's login route and refuses guesses while
`studio.login_throttle` says an account or an address is locked. `launch` opens the engine, builds the
app, applies the theme and CSS (Gradio 6 takes them at launch) and shuts the engine down when the server
stops.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable

from studio.access import Caller
from studio.errors import StudioError
from studio.login_throttle import LoginThrottle
from studio.paths import SERVED

log = logging.getLogger("studio.access")
MAX_LOGIN_BODY = 64 * 1024
# Gradio's login page says "Incorrect credentials" for any refusal, so the page says up front how throttling works.
LOGIN_MESSAGE = ("After 5 wrong passwords, further tries wait 1 s, 2 s, 4 s... (up to 15 minutes), the right "
                 "password too. / Tras 5 contraseñas erróneas, los intentos siguientes esperan 1 s, 2 s, 4 s... "
                 "(hasta 15 minutos), también con la contraseña correcta.")

Credentials = list[tuple[str, str]]


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _pair(text: str, where: str, line: int | None = None, path: str | None = None) -> tuple[str, str]:
    user, sep, password = text.strip().partition(":")
    if not sep or not user or not password:
        message = f"Authentication entry {where} must look like user:password with both parts non-empty."
        if line is not None:
            raise StudioError(message, field="auth", key="ui.auth_file_entry", line=line, path=path)
        raise StudioError(message, field="auth", key="ui.auth_entry")
    return user, password


def parse_auth(auth: str | None) -> Credentials | None:
    """Credentials from "user:password" or from a file of such lines; None when `auth` is empty."""
    if not auth:
        return None
    path = Path(os.path.expanduser(auth))
    if path.is_file():
        lines = [(i, ln.strip()) for i, ln in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)]
        creds = [_pair(ln, f"on line {i} of '{path}'", line=i, path=str(path))
                 for i, ln in lines if ln and not ln.startswith("#")]
        if not creds:
            raise StudioError(f"Authentication file '{path}' has no user:password line; add one.", field="auth",
                              key="ui.auth_file_empty", path=str(path))
        return creds
    if ":" not in auth and (os.sep in auth or auth.endswith((".txt", ".auth"))):
        raise StudioError(f"Authentication file '{auth}' does not exist; check the path.", field="auth",
                          key="ui.auth_file_missing", path=auth)
    return [_pair(auth, "'--auth'")]


def check_host_auth(host: str, auth: str | None) -> Credentials | None:
    """Parsed credentials; refuses a non-loopback host without them."""
    creds = parse_auth(auth)
    if not is_loopback(host) and not creds:
        raise StudioError(f"Binding to '{host}' makes the studio reachable from the network; add --auth "
                          "user:password (or a file of such lines), or keep --host 127.0.0.1.", field="auth",
                          key="ui.network_needs_auth", host=host)
    return creds


def authenticator(creds: Credentials, engine: Any) -> Callable[[str, str], bool]:
    """The login check: the --auth accounts (the studio's admins), then the annotator accounts an admin created in
    the Preferences tab (stored with scrypt hashes in the preference store)."""
    admins = dict(creds)

    def check(user: str, password: str) -> bool:
        if user in admins:
            return hmac.compare_digest(admins[user].encode(), (password or "").encode())
        try:
            return engine.prefs.check_password(user, password)
        except Exception:  # noqa: BLE001 - an engine without a preference store has no other accounts
            return False

    return check


class ThrottledLogin:
    """ASGI middleware: counts Gradio's login answers (400 wrong, 200 right) per account and client address and
    answers 429 with the wait while `throttle` has them locked, before the password is looked at."""

    def __init__(self, app: Any, throttle: LoginThrottle, audit: Any = None):
        self.app, self.throttle, self.audit = app, throttle, audit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or not scope["path"].rstrip("/").endswith(
                "/login"):
            await self.app(scope, receive, send)
            return
        messages, body = [], b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if not message.get("more_body") or len(body) > MAX_LOGIN_BODY:
                break
        if len(body) > MAX_LOGIN_BODY:
            await _answer(send, 413, "The login form is too large.")
            return
        from urllib.parse import parse_qs

        user = (parse_qs(body.decode("utf-8", "replace")).get("username") or [""])[0].strip()
        address = (scope.get("client") or ("?",))[0]
        wait = self.throttle.wait_s(user, address)
        if wait > 0:
            log.warning("login throttled for %r from %s (%.0f s)", user[:80], address, wait)
            if self.audit is not None:
                self.audit.record(Caller(user[:80], None), "login", "log in", "throttled", f"from {address}")
            await _answer(send, 429, f"Too many failed logins; try again in {math.ceil(wait)} s.")
            return

        async def replay() -> dict:
            return messages.pop(0) if messages else await receive()

        status: dict[str, int] = {}

        async def watch(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, replay, watch)
        if status.get("code") == 200:
            self.throttle.succeeded(user, address)
        elif status.get("code") == 400:
            self.throttle.failed(user, address)
            if self.audit is not None:
                self.audit.record(Caller(user[:80], None), "login", "log in", "wrong password", f"from {address}")


def confine_paths(workspace: Path | None, allow_dirs: list[str]) -> None:
    """Server mode for paths (`studio.paths`): the workspace, Gradio's upload folder and the allowed folders."""
    from gradio.utils import get_upload_folder

    for folder in allow_dirs:
        if not Path(folder).expanduser().is_dir():
            raise StudioError(f"--allow-dir {folder} is not a folder; give an existing folder.", field="allow_dir",
                              key="ui.allow_dir_missing", folder=str(folder))
    SERVED.confine([root for root in (workspace, get_upload_folder(), *allow_dirs) if root is not None])


async def _answer(send: Callable, code: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def launch(host: str = "127.0.0.1", port: int = 7860, auth: str | None = None, engine: Any = None,
           block: bool = True, throttle: LoginThrottle | None = None, allow_dirs: list[str] | None = None) -> Any:
    """Serve the studio. With block=False, return the running Blocks (the caller closes it). With `auth`, paths
    users name must lie in the workspace, the upload folder or one of `allow_dirs`."""
    from studio.ui.app import app_css, build_app, make_theme
    from studio.ui.i18n import Texts
    from studio.ui.prefs_tab import RANK_KEYS_JS

    creds = check_host_auth(host, auth)
    if block:
        stop_on_sigterm()
    own_engine = engine is None
    if own_engine:
        from studio.engine import Engine

        engine = Engine()
    app_kwargs: dict[str, Any] = {}
    demo = None
    try:
        if creds:
            from starlette.middleware import Middleware

            engine.access.serve_for_team({user for user, _ in creds})
            confine_paths(getattr(engine.ws, "home", None), allow_dirs or [])
            app_kwargs["middleware"] = [Middleware(ThrottledLogin, throttle=throttle or LoginThrottle(),
                                                   audit=engine.access.audit)]
        demo = build_app(engine)
        demo.on_close = [SERVED.release] if creds else []
        demo.queue(default_concurrency_limit=4)
        demo.launch(server_name=host, server_port=port, auth=authenticator(creds, engine) if creds else None,
                    auth_message=LOGIN_MESSAGE if creds else None, css=app_css(Texts.load()), head=RANK_KEYS_JS,
                    theme=make_theme(), footer_links=["api"], run_history=False, show_error=False,
                    prevent_thread_lock=not block, quiet=not block, app_kwargs=app_kwargs)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM before Gradio's own wait caught it: the same orderly stop
        if demo is not None:
            demo.close()
        block = True
    except BaseException:
        SERVED.release()
        if own_engine:
            engine.shutdown()
        raise
    if block:
        SERVED.release()
        if own_engine:
            engine.shutdown()
        return None
    return demo


def stop_on_sigterm() -> None:
    """SIGTERM (a service manager, `kill`, a test fixture) ends the server the way Ctrl-C does: Gradio closes it, then
    `launch` shuts the engine down (training asked to checkpoint and stop, then 'interrupted'; exports and indexing
    ended), so no worker outlives the app. Python's default for SIGTERM ends the process with no cleanup at all."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)
