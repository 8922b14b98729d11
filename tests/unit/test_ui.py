"""The UI's contracts without a browser: named API endpoints, host/auth rules, and complete translations."""
from __future__ import annotations

import dataclasses
import json
import socket

import pytest

from studio.errors import StudioError
from studio.ui.serve import check_host_auth, parse_auth

RECIPE = """
name: api-run
model: smollm2-135m-instruct
method: {name: lora, r: 8}
data: {dataset: sample-chat}
train: {max_steps: 3}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served_fake_app():
    from fake_engine import FakeEngine

    from studio.ui import launch

    engine = FakeEngine()
    port = _free_port()
    demo = launch(host="127.0.0.1", port=port, engine=engine, block=False)
    try:
        yield engine, f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def test_named_endpoints_start_watch_cancel_and_resume_a_run(served_fake_app):
    from gradio_client import Client

    engine, url = served_fake_app
    client = Client(url, verbose=False)
    endpoints = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert endpoints == {"/train_start", "/run_status", "/train_cancel", "/train_resume"}
    run_id = client.predict(RECIPE, api_name="/train_start")
    assert run_id == "run-1" and engine.runs[run_id]["name"] == "api-run"
    status = client.predict(run_id, api_name="/run_status")
    assert status["id"] == run_id and status["status"] in ("queued", "running")
    assert client.predict(run_id, api_name="/train_cancel") == "cancelled"
    assert client.predict(run_id, api_name="/train_resume") in ("queued", "running")
    assert [c[0] for c in engine.calls] == ["start", "cancel", "resume"]


def test_endpoint_errors_carry_the_studio_error_sentence(served_fake_app):
    from gradio_client import Client

    _, url = served_fake_app
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="Unknown key 'train.bogus'"):
        client.predict(RECIPE.replace("max_steps: 3}", "max_steps: 3, bogus: 1}"), api_name="/train_start")
    with pytest.raises(Exception, match="no run 'nope'"):
        client.predict("nope", api_name="/run_status")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_hosts_need_no_auth(host):
    assert check_host_auth(host, None) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "studio.example.org"])
def test_network_hosts_without_auth_are_refused(host):
    with pytest.raises(StudioError, match="--auth"):
        check_host_auth(host, None)


def test_auth_comes_from_a_string_or_a_file(tmp_path):
    assert check_host_auth("0.0.0.0", "ana:s3cret:x") == [("ana", "s3cret:x")]
    path = tmp_path / "users.txt"
    path.write_text("# team\nana:one\n\nbo:two\n", encoding="utf-8")
    assert parse_auth(str(path)) == [("ana", "one"), ("bo", "two")]
    with pytest.raises(StudioError, match="user:password"):
        parse_auth("justaname")
    path.write_text("ana:\n", encoding="utf-8")
    with pytest.raises(StudioError, match="line 1"):
        parse_auth(str(path))


def _settings_classes():
    from studio.config import DataConfig, Recipe, TrainConfig
    from studio.data.cleaning import CleaningConfig, SplitConfig
    from studio.generation import GenerationSettings
    from studio.methods import METHODS

    yield "recipe", Recipe
    yield "data", DataConfig
    yield "train", TrainConfig
    yield "gen", GenerationSettings
    yield "cleaning", CleaningConfig
    yield "split", SplitConfig
    for name, method in METHODS.items():
        yield name, method.settings_cls
    from studio.stages.base import stage_sections

    yield from stage_sections().items()


def test_every_settings_field_has_a_label_and_spanish_help():
    from studio.ui.i18n import LOCALES_DIR

    en = json.loads((LOCALES_DIR / "en.json").read_text(encoding="utf-8"))
    es = json.loads((LOCALES_DIR / "es.json").read_text(encoding="utf-8"))
    missing = []
    for section, cls in _settings_classes():
        for f in dataclasses.fields(cls):
            if not f.init or f.metadata.get("internal"):
                continue
            for key, table in ((f"field.{section}.{f.name}.label", en), (f"field.{section}.{f.name}.label", es),
                               (f"field.{section}.{f.name}.help", es)):
                if key not in table:
                    missing.append(key)
    assert missing == []


def test_every_method_and_stage_has_a_spanish_title():
    from studio.methods import METHODS
    from studio.ui.i18n import LOCALES_DIR

    es = json.loads((LOCALES_DIR / "es.json").read_text(encoding="utf-8"))
    from studio.stages import STAGES

    missing = [f"method.{name}.{part}" for name in METHODS.names() for part in ("title", "summary")
               if f"method.{name}.{part}" not in es]
    missing += [f"stage.{name}.title" for name in STAGES.names() if f"stage.{name}.title" not in es]
    assert missing == []


def test_both_locales_have_the_same_keys_apart_from_field_help_and_method_names():
    from studio.ui.i18n import LOCALES_DIR

    en = set(json.loads((LOCALES_DIR / "en.json").read_text(encoding="utf-8")))
    es = set(json.loads((LOCALES_DIR / "es.json").read_text(encoding="utf-8")))
    extra_es = {k for k in es - en if not (k.endswith(".help") or k.startswith("method."))}
    assert en - es == set() and extra_es == set()


def test_a_served_app_with_auth_refuses_anonymous_clients():
    from fake_engine import FakeEngine
    from gradio_client import Client

    from studio.ui import launch

    port = _free_port()
    demo = launch(host="127.0.0.1", port=port, auth="ana:pw", engine=FakeEngine(), block=False)
    try:
        url = f"http://127.0.0.1:{port}/"
        with pytest.raises(Exception):
            Client(url, verbose=False).predict(RECIPE, api_name="/train_start")
        assert Client(url, auth=("ana", "pw"), verbose=False).predict(RECIPE, api_name="/train_start") == "run-1"
    finally:
        demo.close()


KEYED_ERRORS = ("StudioError", "AccessDenied")  # StudioError and its subclasses raised with a key


def _keyed_errors() -> list[tuple[str, str, set[str]]]:
    """(file:line, key, keyword names) of every `StudioError(..., key="...", name=value...)` in the package."""
    import ast
    from pathlib import Path

    import studio

    found = []
    for path in Path(studio.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in KEYED_ERRORS:
                kw = {k.arg: k.value for k in node.keywords if k.arg}
                if isinstance(kw.get("key"), ast.Constant):
                    found.append((f"{path.name}:{node.lineno}", kw["key"].value, set(kw) - {"key", "field"}))
    return found


def test_every_keyed_error_has_a_spanish_sentence_that_its_values_fill():
    import string

    from studio.ui.i18n import Texts

    es = Texts.load().locales["es"]
    keyed = _keyed_errors()
    assert len(keyed) >= 3
    problems = []
    for where, key, names in keyed:
        template = es.get(f"error.{key}")
        if template is None:
            problems.append(f"{where}: no es entry error.{key}")
            continue
        wanted = {f for _, f, _, _ in string.Formatter().parse(template) if f}
        if not wanted <= names:
            problems.append(f"{where}: error.{key} uses {sorted(wanted - names)} that the raise does not pass")
    assert problems == []


def _keyed_phases() -> list[tuple[str, str, set[str]]]:
    """(file:line, key, keyword names) of every `Phase(english, "key", name=value...)` with a literal key."""
    import ast
    from pathlib import Path

    import studio

    found = []
    for path in Path(studio.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Phase" and len(node.args) > 1 \
                    and isinstance(node.args[1], ast.Constant):
                found.append((f"{path.name}:{node.lineno}", node.args[1].value, {k.arg for k in node.keywords}))
    return found


def test_every_keyed_phase_has_a_spanish_sentence_that_its_values_fill():
    import string

    from studio.ui.i18n import Texts

    es = Texts.load().locales["es"]
    keyed = _keyed_phases()
    assert len(keyed) >= 15
    problems = []
    for where, key, names in keyed:
        template = es.get(f"phase.{key}")
        if template is None:
            problems.append(f"{where}: no es entry phase.{key}")
            continue
        wanted = {f for _, f, _, _ in string.Formatter().parse(template) if f}
        if not wanted <= names:
            problems.append(f"{where}: phase.{key} uses {sorted(wanted - names)} that the Phase does not pass")
    for name in ("evaluating", "generating"):  # the training worker's phases (studio.phase.phase_text)
        assert f"phase.{name}" in es
    assert problems == []


def test_a_phase_reads_in_spanish_through_a_pickle_and_a_job_row():
    import pickle

    from studio.phase import Phase, phase_columns
    from studio.ui.i18n import Texts

    texts = Texts.load()
    phase = pickle.loads(pickle.dumps(Phase("page 3 of 10", "page", done=3, total=10)))
    assert phase == "page 3 of 10" and texts.phase("es", phase) == "página 3 de 10"
    assert texts.phase("en", phase) == "page 3 of 10"
    columns = phase_columns(phase)
    assert texts.phase("es", columns["phase"], columns["phase_key"], json.loads(columns["phase_params"])) == \
        "página 3 de 10"
    assert texts.phase("es", "done") == "terminado" and texts.phase("es", "unkeyed words") == "unkeyed words"


def test_a_keyed_error_reads_in_spanish_and_an_unkeyed_one_stays_english():
    from studio.errors import StudioError
    from studio.methods import METHODS
    from studio.ui.i18n import Texts

    texts = Texts.load()
    with pytest.raises(StudioError) as info:
        METHODS.get("prompt_tuning").check(METHODS.get("prompt_tuning").settings_cls(), "classify", "bert")
    assert texts.error("es", info.value) == "El método 'prompt_tuning' no sirve para la etapa 'classify'; sirve para sft, dpo, kto, rl."
    assert texts.error("en", info.value) == info.value.message
    plain = StudioError("Something English.", field="x")
    assert texts.error("es", plain) == "Something English."


def test_the_train_tab_offers_skip_evaluation_only_while_a_running_run_evaluates():
    from studio.ui.i18n import Texts
    from studio.ui.train_tab import cancel_button, skip_eval_button

    assert skip_eval_button({"status": "running", "phase": "evaluating 5/16"})["visible"] is True
    assert skip_eval_button({"status": "running", "phase": "generating 0/4"})["visible"] is False
    assert skip_eval_button({"status": "running", "phase": None})["visible"] is False
    assert skip_eval_button({"status": "cancelling", "phase": "evaluating 5/16"})["visible"] is False
    assert skip_eval_button(None)["visible"] is False
    texts = Texts.load()
    assert cancel_button("cancelling", texts, "es")["value"] == "Forzar parada"
    assert cancel_button("running", texts, "en")["interactive"] is True
    assert texts.t("es", "train.skip_eval") == "Saltar evaluación"


def test_a_watched_run_resends_only_what_changed_and_everything_after_a_forced_redraw():
    import gradio as gr

    from studio.ui.i18n import Texts
    from studio.ui.train_tab import live_updates

    texts = Texts.load()
    status = {"status": "running", "step": 3, "max_steps": 10, "metrics": [{"step": 1, "loss": 2.0}],
              "samples": [], "log_tail": "step 1", "phase": None}
    first = live_updates(status, -1, texts, "en")
    progress, chart, metrics, confusion, samples, log, timer, cancel, seen, skip, note = first
    assert all(update is not gr.skip() for update in first)
    assert seen["points"] == 1
    again = live_updates(status, seen, texts, "en")  # nothing moved: nothing is sent but what the page keeps
    assert [update == gr.skip() for update in again] == [True] * 8 + [False, True, True]
    moved = dict(status, step=4, metrics=status["metrics"] + [{"step": 2, "loss": 1.5}])
    progress, chart, metrics, confusion, samples, log, timer, cancel, seen, skip, note = live_updates(
        moved, again[8], texts, "en")
    assert "4" in progress and chart != gr.skip() and log == "step 1" and timer == gr.skip() and cancel == gr.skip()
    ended = live_updates(dict(moved, status="completed"), seen, texts, "en")
    assert ended[6] != gr.skip() and ended[7]["interactive"] is False  # the timer stops, cancel turns off
    assert all(update != gr.skip() for update in live_updates(moved, -1, texts, "en"))
