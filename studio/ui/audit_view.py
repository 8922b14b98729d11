"""The admin's view of the audit log (inside Preferences -> Create, under the accounts): who did what, when, and
what was refused. Reads `studio.access.AuditLog`; the same rows print with `studio audit`."""
from __future__ import annotations

import time
from typing import Any

import gradio as gr

from studio.ui.common import UiShared

COLUMNS = ("when", "user", "role", "action", "what", "outcome")


def audit_rows(entries: list[dict]) -> list[list]:
    return [[time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.get("at", 0))), e.get("user", ""),
             e.get("role") or "-", e.get("action", ""), e.get("what", ""),
             e.get("outcome", "") + (f" ({e['detail']})" if e.get("detail") else "")] for e in entries]


def build_audit(engine: Any, ui: UiShared) -> None:
    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    with loc.label(gr.Accordion(texts.t(lang, "audit.title"), open=False), "audit.title"):
        loc.value(gr.Markdown(texts.t(lang, "audit.explain")), "audit.explain")
        table = gr.Dataframe(headers=list(COLUMNS), value=[], interactive=False, wrap=True,
                             elem_id="studio-audit-table")
        refresh = loc.value(gr.Button(texts.t(lang, "audit.refresh"), size="sm", elem_id="studio-audit-refresh"),
                            "audit.refresh")
    def show_audit_log():
        return audit_rows(engine.audit_entries(limit=500))

    refresh.click(show_audit_log, None, [table], api_visibility="private")
