"""The Create form's per-candidate settings reach `PrefService.start_generation`: each of the first K slot rows
gives its candidate's model (when several are picked), temperature, top-p, max new tokens and seed."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from studio.prefs.service import MAX_K
from studio.ui.common import UiShared
from studio.ui.i18n import Localizer, Texts
from studio.ui.prefs_admin import SLOT_FIELDS, build_create


class RecordingPrefs:
    def __init__(self):
        self.started = []

    def load_prompts(self, source, value):
        return [{"prompt": line, "system": ""} for line in value.splitlines()]

    def start_generation(self, name, prompts, targets, k, settings, **kw):
        self.started.append((name, targets, settings))
        return "job-1"


def _on_generate():
    """The Create form alone, bound to a recording service: (service, the Generate button's handler)."""
    texts = Texts.load()
    engine = SimpleNamespace(prefs=RecordingPrefs())
    with gr.Blocks() as demo:
        build_create(engine, UiShared(texts, Localizer(texts), gr.State("en"), demo))
    [fn] = [f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "on_generate"]
    return engine.prefs, fn


def _slot_values(**columns) -> list:
    """The slot inputs as the form sends them: field by field, MAX_K rows each."""
    return [columns.get(name, [None] * MAX_K)[j] for name in SLOT_FIELDS for j in range(MAX_K)]


def test_each_slot_row_sets_its_candidate():
    prefs, on_generate = _on_generate()
    values = _slot_values(model=["m2", "m1", "m2", "m1", "m1", "m1"], temperature=[0.1, 0.5, 0.9, 1, 1, 1],
                          top_p=[0.5, 0.9, 1.0, 0.9, 0.9, 0.9], max_new_tokens=[8.0, 16.0, 32.0, 96, 96, 96],
                          seed=[3, None, 7, 0, 0, 0])
    out = on_generate(SimpleNamespace(username=None), "en", "round", "typed", "Q1\nQ2", None, None, ["m1", "m2"], 3,
                      1, "", *values)
    assert out[0] == "job-1"
    [(name, targets, settings)] = prefs.started
    assert name == "round" and targets == ["m2", "m1", "m2"]
    assert [(s.temperature, s.top_p, s.max_new_tokens, s.seed) for s in settings] == [
        (0.1, 0.5, 8, 3), (0.5, 0.9, 16, 1), (0.9, 1.0, 32, 7)]  # an empty seed keeps the default (the slot number)


def test_with_one_model_the_hidden_slot_models_are_ignored_and_bad_values_are_refused():
    prefs, on_generate = _on_generate()
    values = _slot_values(model=["stale"] * MAX_K, temperature=[0.7, 3.0] + [1.0] * 4)
    out = on_generate(None, "en", "round", "typed", "Q1", None, None, ["m1"], 2, 1, "", *values)
    assert out[0] is None and "'slot 2.temperature' must be at most 2.0" in out[2] and prefs.started == []
    values = _slot_values(model=["stale"] * MAX_K)
    on_generate(None, "en", "round", "typed", "Q1", None, None, ["m1"], 2, 1, "", *values)
    assert prefs.started[0][1] == ["m1", "m1"]
