"""Who may do what: the caller, the one policy table, and the audit log of what admins did.

The studio runs in one of two modes. Locally (no `--auth`) the one person at the keyboard owns the
workspace: every caller that reached the server through a request is that owner, an admin. In server
mode (`--auth`) the caller is the account the server session logged in (never a name the browser
sends): the `--auth` accounts are admins, accounts made in the Preferences tab have the role stored
with them, anything else has no rights. A call that arrives without a request has no rights in
either mode.

Every UI handler and API endpoint names the action it performs (`studio.ui.guard` reads it); the
`POLICY` table says which role may perform which action, and an action no role lists is an admin's.
`authorize` refuses with one sentence (`AccessDenied`). `AuditLog` appends who did what and when to
`STUDIO_HOME/audit.jsonl` (refusals too) and reads it back for the admin. Checking passwords and
throttling logins live in `studio.login_throttle` and `studio.ui.serve`.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from studio.errors import StudioError

log = logging.getLogger("studio.access")

ADMIN, ANNOTATOR = "admin", "annotator"
ROLES = (ADMIN, ANNOTATOR)

ACTIONS: dict[str, str] = {
    "page": "draw the page: language switch, which tabs this account sees",
    "rank": "rank answers in a task set and see one's own progress",
    "arena": "ask two hidden models in the arena and vote",
    "admin": "everything else: train, data, runs, evaluation, playground, RAG, exports, accounts, task sets",
}
"""The actions a handler can name; a handler that names none performs "admin"."""

POLICY: dict[str, frozenset[str]] = {
    ADMIN: frozenset(ACTIONS),
    ANNOTATOR: frozenset({"page", "rank", "arena"}),
}
"""role -> the actions it may perform. A caller without a role may perform none."""


@dataclass(frozen=True)
class Caller:
    """The person behind a request: `name` as logged in ("" locally or when unknown) and `role` (None: no rights)."""

    name: str
    role: str | None
    local: bool = False

    @property
    def label(self) -> str:
        return self.name or ("local user" if self.local else "anonymous")


NOBODY = Caller("", None)


def resolve_caller(has_request: bool, username: str | None, *, server_mode: bool, admins: set[str],
                   account_role: Callable[[str], str | None]) -> Caller:
    """The caller of one request. `account_role(name)` gives a stored account's role (None when unknown)."""
    if not has_request:
        return NOBODY
    if not server_mode:
        return Caller(username or "", ADMIN, local=True)
    if not username:
        return NOBODY
    if username in admins:
        return Caller(username, ADMIN)
    role = account_role(username)
    return Caller(username, role if role in POLICY else None)


def allowed(caller: Caller, action: str) -> bool:
    return action in POLICY.get(caller.role or "", frozenset())


class AccessDenied(StudioError):
    """A caller asked for something its role does not allow."""


def authorize(caller: Caller, action: str, what: str) -> None:
    """Raise `AccessDenied` unless `caller` may perform `action` (`what` names the handler, for the message)."""
    if allowed(caller, action):
        return
    if caller.role is None:
        raise AccessDenied("You are not logged in with an account that may use the studio; log in again.",
                           field="auth", key="access.not_logged_in", what=what)
    raise AccessDenied(f"Your account '{caller.name}' ({caller.role}) may not do this ({what}); ask an admin.",
                       field="auth", key="access.denied", user=caller.name, role=caller.role, what=what)


class AuditLog:
    """Append-only JSON lines: {"at", "user", "role", "action", "what", "outcome", "detail"}."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def record(self, caller: Caller, action: str, what: str, outcome: str, detail: str = "") -> None:
        entry = {"at": time.time(), "user": caller.label, "role": caller.role, "action": action, "what": what,
                 "outcome": outcome, "detail": detail[:300]}
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # one write of one line in append mode: lines from several processes never interleave
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)
                finally:
                    os.close(fd)
        except OSError:
            log.exception("could not write the audit log at %s", self.path)

    def entries(self, limit: int = 200, user: str | None = None) -> list[dict[str, Any]]:
        """The newest `limit` entries, newest first (optionally one user's)."""
        if not self.path.exists():
            return []
        out = []
        for line in reversed(self.path.read_text(encoding="utf-8", errors="replace").splitlines()):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            if user is None or entry.get("user") == user:
                out.append(entry)
                if len(out) >= limit:
                    break
        return out


class AccessControl:
    """One studio's mode, admins and audit log: `caller(...)` resolves a request's caller."""

    def __init__(self, audit_path: Path, account_role: Callable[[str], str | None]):
        self.server_mode = False
        self.admins: set[str] = set()
        self.audit = AuditLog(audit_path)
        self._account_role = account_role

    def serve_for_team(self, admins: set[str]) -> None:
        """Server mode: `admins` are the --auth accounts; everyone else needs an account stored with a role."""
        self.server_mode = True
        self.admins = set(admins)

    def caller(self, has_request: bool, username: str | None) -> Caller:
        return resolve_caller(has_request, username, server_mode=self.server_mode, admins=self.admins,
                              account_role=self._account_role)
