"""Roles are enforced on the server: every registered Gradio function, called by raw HTTP as an annotator, runs
only when `studio.access.POLICY` lets annotators perform its action; without a request nothing runs; without
a login nothing is reachable; annotators rank under their login name whatever the page sends."""
from __future__ import annotations

import asyncio
import json

import gradio as gr
import pytest

from studio.access import ANNOTATOR as ANNOTATOR_ROLE
from studio.access import POLICY
from studio.ui.guard import action_of

from .conftest import ADMIN, ADMIN_PASSWORD, ANNOTATOR, ANNOTATOR_PASSWORD, fn_index

REFUSED = "may not do this"


def _refused(message: dict) -> bool:
    return not message.get("success") and REFUSED in str((message.get("output") or {}).get("error", ""))


def test_every_function_refuses_an_annotator_unless_the_policy_allows_it(served):
    annotator = served.client(ANNOTATOR, ANNOTATOR_PASSWORD)
    demo = served.demo
    assert len(demo.fns) > 100  # the whole app, not a hand list
    wrong = []
    allowed_seen = 0
    for index, block_fn in demo.fns.items():
        if block_fn.fn is None:
            continue
        allowed = action_of(block_fn) in POLICY[ANNOTATOR_ROLE]
        allowed_seen += allowed
        message = annotator.call(index)
        if _refused(message) == allowed:
            wrong.append(f"{index} {block_fn.name} {block_fn.targets}: allowed={allowed}, answer={message.get('output')}")
    assert wrong == []
    assert allowed_seen >= 8  # ranking, the arena and the page's own plumbing stay usable


def test_refusals_of_clicks_are_audited_and_admin_clicks_are_recorded(served):
    annotator = served.client(ANNOTATOR, ANNOTATOR_PASSWORD)
    delete = fn_index(served.demo, "studio-runs-delete", "click") if _has(served, "studio-runs-delete") else None
    add_account = next(i for i, f in served.demo.fns.items() if f.name == "on_account")
    assert _refused(annotator.call(add_account, [None, "mallory", "pw", "admin"]))
    assert served.engine.prefs.store.annotator("mallory") is None  # no admin was created
    admin = served.client(ADMIN, ADMIN_PASSWORD)
    assert admin.call(add_account, ["en", "nora", "pw-nora", "annotator"])["success"]
    assert served.engine.prefs.store.annotator("nora")["role"] == "annotator"
    entries = served.engine.access.audit.entries()
    assert any(e["user"] == ANNOTATOR and e["outcome"] == "refused" and "on_account" in e["what"] for e in entries)
    assert any(e["user"] == ADMIN and e["outcome"] == "allowed" and "on_account" in e["what"] for e in entries)
    if delete is not None:
        assert _refused(annotator.call(delete))


def _has(served, elem_id: str) -> bool:
    return any(getattr(b, "elem_id", None) == elem_id for b in served.demo.blocks.values())


def test_a_call_without_a_request_has_no_rights(served):
    demo = served.demo

    async def call_all() -> list[str]:
        ran = []
        for index, block_fn in demo.fns.items():
            if block_fn.fn is None:
                continue
            try:
                await demo.process_api(block_fn, [None] * len(block_fn.inputs), request=None)
                ran.append(f"{index} {block_fn.name}")
            except gr.Error as exc:
                assert "log in again" in exc.message
        return ran

    assert asyncio.run(call_all()) == []


def test_anonymous_http_clients_reach_no_function(served):
    anonymous = served.client()
    codes = {anonymous.join(index, [None] * len(f.inputs)).status_code for index, f in served.demo.fns.items()}
    assert codes == {401}


def test_named_api_endpoints_refuse_an_annotator(served):
    from gradio_client import Client

    annotator = Client(served.url, auth=(ANNOTATOR, ANNOTATOR_PASSWORD), verbose=False)
    for api_name, args in (("/train_start", ("name: x\nmodel: smollm2-135m-instruct\n",)),
                           ("/run_status", ("x",)), ("/train_cancel", ("x",)), ("/train_resume", ("x",))):
        with pytest.raises(Exception, match=REFUSED):
            annotator.predict(*args, api_name=api_name)
    assert served.engine.ws.list_runs() == []


def test_an_annotator_sees_only_preferences(served):
    annotator = served.client(ANNOTATOR, ANNOTATOR_PASSWORD)
    parts = next(i for i, f in served.demo.fns.items() if f.name == "parts_for")
    n = (len(served.demo.fns[parts].outputs) - 1) // 2
    assert n >= 9  # every admin tab's contents and the two admin sub-tabs of Preferences
    updates = annotator.call(parts, [])["output"]["data"]
    assert [u.get("visible") for u in updates[:2 * n]] == [False] * n + [True] * n
    assert updates[-1].get("selected") == "prefs"
    # An admin's page is built showing every part and no notice, and the load changes nothing on it.
    outputs = served.demo.fns[parts].outputs
    assert [block.visible for block in outputs[:2 * n]] == [True] * n + [False] * n
    admin = served.client(ADMIN, ADMIN_PASSWORD).call(parts, [])["output"]["data"]
    assert all("visible" not in u and "selected" not in u for u in admin), admin[:3]


def test_an_annotator_ranks_under_their_login_name_whatever_the_page_sends(served):
    store = served.engine.prefs.store
    store.create_task_set("forgery", [{"prompt": "Capital of France?", "candidates": ["Paris", "Lyon"]}])
    annotator = served.client(ANNOTATOR, ANNOTATOR_PASSWORD)
    start = fn_index(served.demo, "studio-prefs-start", "click")
    submit = fn_index(served.demo, "studio-prefs-submit", "click")
    refresh = next(i for i, f in served.demo.fns.items() if f.name == "refresh" and action_of(f) == "rank")
    assert annotator.call(refresh, [None, "maria"])["success"]  # the page load fills the task-set choices
    started = annotator.call(start, ["en", "forgery", "maria"])
    assert started["success"], started
    # inputs: lang, task set, annotator (forged), item (server-side state), ranking, rationale, flag reason
    answer = annotator.call(submit, ["en", "forgery", "maria", None, "1 > 2", "", ""])
    assert answer["success"], answer
    rankings = store.rankings("forgery")
    names = {r["annotator"] for item in rankings for r in item["rankings"]}
    assert names == {ANNOTATOR}, json.dumps(rankings)[:500]


def test_the_admin_reads_the_audit_log_in_the_page_and_the_terminal(served, monkeypatch, capsys):
    from studio.cli import main

    admin, annotator = served.client(ADMIN, ADMIN_PASSWORD), served.client(ANNOTATOR, ANNOTATOR_PASSWORD)
    show = fn_index(served.demo, "studio-audit-refresh", "click")
    assert _refused(annotator.call(show, []))
    rows = admin.call(show, [])["output"]["data"][0]["data"]
    assert any(row[1] == ANNOTATOR and row[5] == "refused" for row in rows)
    monkeypatch.setenv("STUDIO_HOME", str(served.engine.ws.home))
    assert main(["audit", "--json", "--user", ANNOTATOR]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert entries and all(e["user"] == ANNOTATOR for e in entries)
