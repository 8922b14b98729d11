"""Logins with --auth: the --auth accounts are the admins; annotator accounts made in the Preferences tab log in with
their own password; only admins see task-set creation and export."""
from __future__ import annotations

from types import SimpleNamespace

from studio.prefs.store import PrefStore
from studio.ui.prefs_tab import is_admin
from studio.ui.serve import authenticator


def test_admins_from_auth_and_annotators_from_the_store(workspace):
    engine = SimpleNamespace(prefs=SimpleNamespace(store=PrefStore(workspace)), ui_admins={"ana"})
    engine.prefs.store.add_annotator("luis", "tomate", role="annotator")
    engine.prefs.store.add_annotator("eva", "pimiento", role="admin")
    engine.prefs.store.add_annotator("sin-clave")
    check = authenticator([("ana", "s3cret")], engine)
    assert check("ana", "s3cret") and not check("ana", "wrong")
    assert check("luis", "tomate") and not check("luis", "s3cret")
    assert not check("sin-clave", "") and not check("nobody", "x")
    assert is_admin(engine, SimpleNamespace(username="ana")) and is_admin(engine, SimpleNamespace(username="eva"))
    assert not is_admin(engine, SimpleNamespace(username="luis"))
    assert is_admin(engine, SimpleNamespace(username=None))  # no accounts: the local user is the admin


def test_an_engine_without_a_preference_store_has_only_the_auth_accounts():
    check = authenticator([("ana", "s3cret")], SimpleNamespace())
    assert check("ana", "s3cret") and not check("luis", "tomate")
