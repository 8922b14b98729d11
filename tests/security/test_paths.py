"""In server mode no path outside the workspace and the allowed folders is opened, and a forbidden path reads
exactly like a missing one (no existence oracle)."""
from __future__ import annotations

import os

import pytest
from gradio_client import Client

from studio.errors import StudioError
from studio.paths import SERVED, user_path

from .conftest import ADMIN, ADMIN_PASSWORD


@pytest.fixture()
def policy():
    """This process's path policy, put back as it was afterwards (a served studio may be up meanwhile)."""
    before = SERVED.roots
    try:
        yield SERVED
    finally:
        SERVED.roots = before


@pytest.fixture()
def confined(tmp_path, policy):
    inside, outside = tmp_path / "workspace", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    policy.confine([inside])
    return inside, outside


def _message(value: str, field: str = "data.dataset") -> str:
    with pytest.raises(StudioError) as caught:
        user_path(value, field)
    return caught.value.message.replace(value, "<path>")


def test_paths_outside_the_allowed_folders_read_like_missing_ones(confined):
    inside, outside = confined
    (inside / "mine.jsonl").write_text("{}\n")
    (outside / "secret.jsonl").write_text("{}\n")
    assert user_path(str(inside / "mine.jsonl"), "data.dataset") == inside / "mine.jsonl"
    forbidden = _message(str(outside / "secret.jsonl"))
    assert forbidden == _message(str(inside / "missing.jsonl")) == _message("/etc/passwd")
    assert _message("/proc/self/environ") == forbidden and "--allow-dir" in forbidden
    assert _message(str(inside / ".." / "elsewhere" / "secret.jsonl")) == forbidden


def test_a_link_inside_that_points_outside_is_refused(confined):
    inside, outside = confined
    (outside / "secret.jsonl").write_text("{}\n")
    os.symlink(outside / "secret.jsonl", inside / "innocent.jsonl")
    os.symlink(outside, inside / "folder-link")
    with pytest.raises(StudioError, match="not a file or folder this studio can use"):
        user_path(str(inside / "innocent.jsonl"), "data.dataset")
    with pytest.raises(StudioError, match="not a file or folder this studio can use"):
        user_path(str(inside / "folder-link" / "new-export"), "out", must_exist=False)


def test_new_folders_may_be_made_only_inside(confined):
    inside, outside = confined
    assert user_path(str(inside / "exports" / "a"), "out", must_exist=False) == inside / "exports" / "a"
    with pytest.raises(StudioError):
        user_path(str(outside / "a"), "out", must_exist=False)


def test_locally_any_path_is_the_users_own(policy):
    policy.release()
    assert user_path("/etc/passwd", "data.dataset").name == "passwd"


RECIPE = "name: probe\nmodel: {model}\nstage: sft\nmethod: {{name: lora}}\ndata: {{dataset: '{dataset}'}}\n"


def test_a_recipe_sent_to_the_server_cannot_open_server_files(served, tmp_path):
    admin = Client(served.url, auth=(ADMIN, ADMIN_PASSWORD), verbose=False)
    answers = {}
    for dataset in ("/etc/passwd", "/proc/self/environ", str(tmp_path / "missing.jsonl")):
        with pytest.raises(Exception) as caught:
            admin.predict(RECIPE.format(model="smollm2-135m-instruct", dataset=dataset), api_name="/train_start")
        answers[dataset] = str(caught.value).replace(dataset, "<path>")
    assert len(set(answers.values())) == 1 and "not a file or folder this studio can use" in answers["/etc/passwd"]
    with pytest.raises(Exception, match="not a file or folder this studio can use"):
        admin.predict(RECIPE.format(model="/etc", dataset="sample-format-tutor"), api_name="/train_start")
    assert served.engine.ws.list_runs() == []


def test_exports_read_and_write_only_allowed_folders(confined):
    from studio.export.pipeline import ExportRequest, check_request
    from studio.workspace import Workspace

    inside, outside = confined
    ws = Workspace.open(inside)
    (outside / "calib.txt").write_text("some text\n")
    request = lambda **kw: ExportRequest.from_dict({"source": "smollm2-135m-instruct", "format": "merged", **kw})  # noqa: E731
    for field, value in (("out", str(outside / "export")), ("heldout", "/etc/passwd"),
                         ("heldout", str(inside / "missing.txt")), ("out", "/proc/self/x")):
        with pytest.raises(StudioError, match="not a file or folder this studio can use") as caught:
            check_request(ws, request(**{field: value}))
        assert caught.value.field == field
    with pytest.raises(StudioError, match="not a file or folder this studio can use"):
        check_request(ws, request(format="int8", calibration=str(outside / "calib.txt")))
    checked, _ = check_request(ws, request(out=str(inside / "exports" / "mine")))
    assert checked.out == str(inside / "exports" / "mine")
