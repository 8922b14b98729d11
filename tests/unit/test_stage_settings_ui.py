"""Stage-only settings in the Train tab (a distillation's teacher, DPO's beta, RL's reward) reach the recipe only for
their own stage, and the preference stages' metrics get their own chart panels."""
from __future__ import annotations

import gradio as gr

from studio.config import parse_recipe
from studio.ui.common import UiShared
from studio.ui.i18n import Localizer, Texts
from studio.ui.metric_charts import metric_series, panels_with_data
from studio.stages.base import stage_sections
from studio.ui.train_tab import build_train, recipe_dict
from tests.unit.fake_engine import FakeEngine


def test_only_the_picked_stage_s_settings_go_into_the_recipe():
    texts = Texts.load()
    with gr.Blocks() as demo:
        ui = UiShared(texts, Localizer(texts), gr.State("en"), demo)
        view = build_train(FakeEngine(), ui)
    values = {f.component: f.component.value for f in view.fields + [f for fs in view.method_fields.values()
                                                                     for f in fs]}
    values.update({view.method: "lora", view.dataset: "sample-format-tutor", view.name: "", view.model: "m",
                   view.stage: "dpo"})
    beta = next(f for f in view.fields if f.section == "dpo" and f.name == "beta")
    values[beta.component] = 0.25
    recipe = recipe_dict(view, values)
    assert recipe["stage"] == "dpo" and recipe["dpo"]["beta"] == 0.25
    assert not set(stage_sections()) - {"dpo"} & set(recipe)
    assert parse_recipe(recipe).section("dpo")["beta"] == 0.25


def test_preference_metrics_get_their_own_panels():
    events = [{"step": 1, "epoch": 0.5, "loss": 0.69, "rewards/chosen": 0.1, "rewards/rejected": -0.1,
               "rewards/margins": 0.2, "rewards/accuracies": 1.0},
              {"step": 2, "epoch": 1.0, "reward": 0.4, "kl": 0.01}]
    names = [name for name, _ in panels_with_data(metric_series(events))]
    assert names == ["pref_rewards", "pref_margin", "pref_accuracy", "reward", "kl"]


def test_devices_and_machines_are_set_in_the_form_and_reach_the_recipe():
    """`resources` fields sit under All settings: '2' or '0, 1' in the devices box, and back from a saved recipe."""
    from studio.ui.train_tab import form_values

    texts = Texts.load()
    with gr.Blocks() as demo:
        ui = UiShared(texts, Localizer(texts), gr.State("en"), demo)
        view = build_train(FakeEngine(), ui)
    fields = {(f.section, f.name): f for f in view.fields}
    assert {"devices", "strategy", "nodes", "node_rank", "master_addr", "master_port"} <= {
        name for section, name in fields if section == "resources"}
    values = {f.component: f.component.value for f in view.fields + [f for fs in view.method_fields.values()
                                                                     for f in fs]}
    values.update({view.method: "lora", view.dataset: "sample-format-tutor", view.name: "", view.model: "m",
                   view.stage: "sft"})
    assert parse_recipe(recipe_dict(view, values)).resources.world_size == 1  # the defaults: one device
    values[fields["resources", "devices"].component] = "0, 1"
    values[fields["resources", "strategy"].component] = "fsdp"
    recipe = parse_recipe(recipe_dict(view, values))
    assert recipe.resources.devices == [0, 1] and recipe.resources.strategy == "fsdp"
    shown = form_values(view, {"name": "r", "resources": {"devices": [0, 1]}})
    assert shown[fields["resources", "devices"].component] == "0, 1"
    values[fields["resources", "devices"].component] = "2"
    assert parse_recipe(recipe_dict(view, values)).resources.devices == 2
