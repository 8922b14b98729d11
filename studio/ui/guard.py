"""The server-side check in front of every Gradio function: who calls, and may they.

`StudioBlocks` is the app's `gr.Blocks`; every event handler, page load, timer tick and named API
endpoint reaches the server through its `process_api`, so that is where the caller is resolved
from the server session (`gr.Request.username`, never a value the page sends) and checked against
`studio.access.POLICY` before the function runs. A handler states its action with `@allow("rank")`
(or `allow("page")(lambda ...)`); one that states none is an admin's. A refusal is a `gr.Error` with
one sentence, shown for a click and silent for what the page fires by itself (page load, timers,
value changes), and is logged; admin actions a person starts (clicks, submits, uploads, API calls)
go to the audit log with who and when.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import gradio as gr

from studio.access import AccessDenied, Caller, allowed, authorize

log = logging.getLogger("studio.access")

ACTION_ATTR = "studio_action"
# events a person fires on purpose; the others (load, tick, change, select, ...) the page fires by itself
DELIBERATE_EVENTS = frozenset({"click", "submit", "upload", "like", "retry", "undo", "edit", "stop"})


def allow(action: str) -> Callable[[Callable], Callable]:
    """Mark a handler as performing `action` (a key of `studio.access.ACTIONS`)."""
    def mark(fn: Callable) -> Callable:
        setattr(fn, ACTION_ATTR, action)
        return fn
    return mark


def action_of(block_fn: Any) -> str:
    """The action a registered function performs: its mark, "page" for Gradio's own cancel/validator plumbing,
    "admin" for everything unmarked."""
    if getattr(block_fn, "is_cancel_function", False) or getattr(block_fn, "is_validator_function", False):
        return "page"
    return getattr(block_fn.fn, ACTION_ATTR, "admin")


def caller_of(engine: Any, request: Any) -> Caller:
    """The caller behind a gr.Request (or a list of them, for batched functions); no request: nobody."""
    if isinstance(request, list):
        request = request[0] if request else None
    if request is None:
        return engine.access.caller(False, None)
    return engine.access.caller(True, getattr(request, "username", None))


def describe(blocks: gr.Blocks, block_fn: Any) -> str:
    """A readable name for the audit log: the API name, or the function and what triggered it."""
    if block_fn.api_name and block_fn.api_visibility != "private":
        return str(block_fn.api_name)
    triggers = []
    for block_id, event in block_fn.targets or []:
        block = blocks.blocks.get(block_id) if block_id is not None else None
        label = getattr(block, "elem_id", None) or getattr(block, "label", None) or type(block).__name__
        triggers.append(f"{label}.{event}")
    return f"{block_fn.name} ({', '.join(triggers)})" if triggers else str(block_fn.name)


def deliberate(block_fn: Any) -> bool:
    return not block_fn.targets or any(event in DELIBERATE_EVENTS for _, event in block_fn.targets)


class StudioBlocks(gr.Blocks):
    """gr.Blocks whose every function call is authorised first (see the module docstring)."""

    studio_engine: Any = None
    on_close: list[Callable[[], None]] | None = None

    def close(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().close(*args, **kwargs)
        finally:
            for release in self.on_close or []:
                release()

    def check_call(self, block_fn: Any, request: Any) -> None:
        """Raise gr.Error unless the caller of `request` may run `block_fn`; record admin actions and refusals."""
        if block_fn.fn is None:  # a JavaScript-only event: nothing runs here
            return
        access = self.studio_engine.access
        action = action_of(block_fn)
        caller = caller_of(self.studio_engine, request)
        if allowed(caller, action):
            # described only when recorded: timers call their handlers every second or two
            if action == "admin" and access.server_mode and deliberate(block_fn):
                access.audit.record(caller, action, describe(self, block_fn), "allowed")
            return
        what = describe(self, block_fn)
        try:
            authorize(caller, action, what)
        except AccessDenied as exc:
            log.warning("refused %s to %s (%s): %s", what, caller.label, caller.role, exc.key)
            if deliberate(block_fn):
                access.audit.record(caller, action, what, "refused")
            raise gr.Error(exc.message, visible=deliberate(block_fn), print_exception=False) from None

    async def process_api(self, block_fn: Any, inputs: list[Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        fn = self.fns[block_fn] if isinstance(block_fn, int) else block_fn
        request = kwargs["request"] if "request" in kwargs else (args[1] if len(args) > 1 else None)
        self.check_call(fn, request)
        return await super().process_api(block_fn, inputs, *args, **kwargs)


def may(engine: Any, request: Any, action: str) -> bool:
    """Whether the caller of `request` may perform `action` (for what a page shows; the guard still checks)."""
    return allowed(caller_of(engine, request), action)
