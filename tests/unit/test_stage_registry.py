"""Adding a stage touches its own module and the locale files only: the recipe parser, the Train tab, the memory
estimate, the Evaluate tab and the preference sources read what they need from the stage's class."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import pytest

from studio.config import parse_recipe, recipe_to_dict
from studio.errors import StudioError
from studio.settings import setting
from studio.stages import STAGES
from studio.stages.base import Stage, capability, stage_sections, stages_where

BASE = {"name": "t", "data": {"dataset": "sample-format-tutor"}}


@dataclass
class ToySettings:
    strength: float = setting(1.0, help="How strongly the toy stage pulls.", min=0.0, max=10.0)


class Toy(Stage):
    title = "Toy stage"
    settings_cls = ToySettings
    task = "seq2seq"
    generates = True
    evaluation = "generation"


@pytest.fixture
def toy(monkeypatch):
    """The toy stage registered for one test, the way `@STAGES.register("toy")` in its own module would."""
    monkeypatch.setitem(STAGES._items, "toy", Toy)
    monkeypatch.setattr(Toy, "name", "toy", raising=False)
    return Toy


def test_a_new_stage_s_section_is_parsed_by_its_own_class(toy):
    recipe = parse_recipe({**BASE, "stage": "toy", "toy": {"strength": 2.5}})
    assert toy.settings(recipe).strength == 2.5
    assert recipe_to_dict(recipe)["toy"] == {"strength": 2.5}
    assert parse_recipe(recipe_to_dict(recipe)).section("toy") == {"strength": 2.5}
    assert toy.settings(parse_recipe({**BASE, "stage": "toy"})).strength == 1.0  # the section may be left out
    with pytest.raises(StudioError, match=r"'toy.strength' .*at most 10"):
        toy.settings(parse_recipe({**BASE, "stage": "toy", "toy": {"strength": 99}}))
    with pytest.raises(StudioError, match="'toy' must be a mapping"):
        parse_recipe({**BASE, "stage": "toy", "toy": 3})


def test_a_section_no_stage_reads_is_refused_naming_it():
    with pytest.raises(StudioError, match="Unknown key 'toy'"):
        parse_recipe({**BASE, "toy": {"strength": 2.5}})


def test_an_unknown_key_s_sentence_lists_the_method_and_every_stage_section(toy):
    with pytest.raises(StudioError) as caught:
        parse_recipe({**BASE, "tooy": {"strength": 2.5}})
    known = caught.value.params["known"].split(", ")
    assert {"method", "toy", *stage_sections()} <= set(known) and "train" in known


def test_a_new_stage_s_capabilities_reach_every_reader(toy):
    from studio.evaluation import evaluated
    from studio.memory import task_of

    assert stage_sections()["toy"] is ToySettings
    assert task_of("toy") == "seq2seq"
    assert evaluated("toy")
    assert "toy" in stages_where(generates=True)


def test_the_train_tab_draws_a_new_stage_s_settings_and_sends_them_only_for_it(toy):
    from studio.ui.common import UiShared
    from studio.ui.i18n import Localizer, Texts
    from studio.ui.train_tab import build_train, recipe_dict
    from tests.unit.fake_engine import FakeEngine

    texts = Texts.load()
    with gr.Blocks() as demo:
        view = build_train(FakeEngine(), UiShared(texts, Localizer(texts), gr.State("en"), demo))
    strength = next(f for f in view.fields if f.section == "toy" and f.name == "strength")
    values = {f.component: f.component.value for f in view.fields + [f for fs in view.method_fields.values()
                                                                     for f in fs]}
    values.update({view.method: "lora", view.dataset: "sample-format-tutor", view.name: "", view.model: "m"})
    values[strength.component] = 4.0
    assert recipe_dict(view, {**values, view.stage: "toy"})["toy"] == {"strength": 4.0}
    assert "toy" not in recipe_dict(view, {**values, view.stage: "sft"})


def test_the_built_in_stages_say_what_they_are():
    from studio.memory import task_of

    assert set(stage_sections()) == {"distill", "dpo", "kto", "orpo", "rl"}
    assert set(stages_where(evaluation="generation")) == {"sft", "cpt", "distill"}
    assert stages_where(evaluation="classification") == ("classify",)
    assert set(stages_where(generates=True)) == {"sft", "cpt", "distill", "dpo", "kto", "orpo", "rl"}
    assert {name: task_of(name) for name in ("sft", "classify", "reward", "seq2seq")} == {
        "sft": "causal", "classify": "classify", "reward": "classify", "seq2seq": "seq2seq"}
    assert capability("no-such-stage", "generates") is None and task_of(None) == "causal"


def test_a_method_that_cannot_merge_says_why_on_its_own_class(monkeypatch):
    from studio.export.source import ExportSource
    from studio.methods import METHODS
    from studio.methods.base import Method

    class Toy(Method):
        not_mergeable_why = "its toy layers are not weight updates"

    monkeypatch.setitem(METHODS._items, "toy", Toy)
    assert ExportSource(spec="x", name="x", base="m", method="toy").why_not_mergeable() == Toy.not_mergeable_why
    adapters = [cls for _, cls in METHODS.items() if not cls.mergeable and cls.result_kind == "adapter"]
    assert len(adapters) >= 5
    assert all(cls.not_mergeable_why != Method.not_mergeable_why for cls in adapters)


def test_opening_a_run_shows_its_recipe_in_the_train_form():
    from studio.config import parse_recipe, recipe_to_dict
    from studio.ui.common import UiShared
    from studio.ui.i18n import Localizer, Texts
    from studio.ui.train_tab import build_train, form_values, recipe_dict
    from tests.unit.fake_engine import FakeEngine

    texts = Texts.load()
    with gr.Blocks() as demo:
        view = build_train(FakeEngine(), UiShared(texts, Localizer(texts), gr.State("en"), demo))
    recipe = recipe_to_dict(parse_recipe({**BASE, "name": "tuned", "stage": "dpo", "dpo": {"beta": 0.3},
                                          "method": {"name": "lora", "r": 8}, "train": {"lr": 5e-3}}))
    widgets = view.fields + [f for fs in view.method_fields.values() for f in fs]
    values = {f.component: f.component.value for f in widgets}
    values.update(form_values(view, recipe))
    shown = recipe_dict(view, values)
    assert (shown["name"], shown["stage"], shown["model"]) == ("tuned", "dpo", recipe["model"])
    assert shown["train"]["lr"] == 5e-3 and shown["method"]["r"] == 8 and shown["dpo"]["beta"] == 0.3
    assert shown["data"]["dataset"] == recipe["data"]["dataset"]
