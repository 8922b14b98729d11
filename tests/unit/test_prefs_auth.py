"""Logins with --auth: the --auth accounts are the admins; annotator accounts made in the Preferences tab log in with
their own password; only admins see task-set creation and export."""
from __future__ import annotations

from types import SimpleNamespace

from studio.prefs.service import PrefService
from studio.access import ADMIN, ANNOTATOR, AccessControl
from studio.ui.serve import authenticator


def test_admins_from_auth_and_annotators_from_the_store(workspace):
    prefs = PrefService(workspace)
    store = prefs.store
    prefs.add_annotator("luis", "tomate", role="annotator")
    prefs.add_annotator("eva", "pimiento", role="admin")
    prefs.add_annotator("sin-clave")
    check = authenticator([("ana", "s3cret")], SimpleNamespace(prefs=prefs))
    assert check("ana", "s3cret") and not check("ana", "wrong")
    assert check("luis", "tomate") and not check("luis", "s3cret")
    assert not check("sin-clave", "") and not check("nobody", "x")
    access = AccessControl(workspace.home / "audit.jsonl", lambda n: (store.annotator(n) or {}).get("role"))
    assert access.caller(True, None).role == ADMIN  # no accounts: the local user is the admin
    access.serve_for_team({"ana"})
    assert access.caller(True, "ana").role == ADMIN and access.caller(True, "eva").role == ADMIN
    assert access.caller(True, "luis").role == ANNOTATOR
    assert access.caller(True, "nobody").role is None and access.caller(True, None).role is None
    assert access.caller(False, "ana").role is None  # no request, no rights


def test_an_engine_without_a_preference_store_has_only_the_auth_accounts():
    check = authenticator([("ana", "s3cret")], SimpleNamespace())
    assert check("ana", "s3cret") and not check("luis", "tomate")
