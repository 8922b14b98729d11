"""The Train tab's Simple mode: pick a goal and a dataset, and the studio fills the full form for this machine.

A goal (teach a format, extract JSON, classify, summarise, prefer better answers, learn from documents) and a
dataset (the goal's sample, any studio dataset, or a file uploaded here) go to `Engine.guide`, which returns the
goal's preset recipe with that dataset, the method the memory estimate says fits, the top three methods and why.
The recipe is written into the full form (hidden in Simple mode, shown by "All settings"), so Start trains exactly
what the form shows and every setting stays editable. The three methods that fit the goal come first, the rest
under "More methods". This module only draws and wires; the choice is `studio.guide`'s.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from studio.data import SAMPLES
from studio.errors import StudioError
from studio.methods import METHODS
from studio.ui.common import error_notice, error_text

DEFAULT_GOAL = "format"
UPLOAD_TYPES = [".csv", ".jsonl", ".json", ".xlsx", ".parquet", ".txt", ".md"]


@dataclass
class GuideView:
    panel: gr.Column
    goal: gr.Radio
    dataset: gr.Dropdown
    upload: gr.UploadButton
    why: gr.Markdown
    method: gr.Radio
    more: gr.Dropdown
    plan: gr.State


def _title(texts: Any, lang: str, name: str | None) -> str:
    return texts.method_title(lang, METHODS.get(name)) if name in METHODS else (name or "")


def goal_choices(texts: Any, lang: str, goals: dict) -> list[tuple[str, str]]:
    return [(preset.title.get(lang) or preset.title["en"], goal) for goal, preset in goals.items()]


def why_markdown(texts: Any, lang: str, plan: dict | None) -> str:
    """The goal's title, the preset's sentence and the memory sentence, in `lang`."""
    if not plan:
        return ""
    params = {**plan["why_params"], "method": _title(texts, lang, plan["method"]),
              "wanted": _title(texts, lang, plan.get("switched"))}
    return texts.t(lang, "guide.why", title=plan["title"].get(lang) or plan["title"]["en"],
                   why=plan["preset_why"].get(lang) or plan["preset_why"]["en"],
                   memory=texts.t(lang, plan["why_key"], **params))


def method_updates(texts: Any, lang: str, plan: dict | None) -> tuple[dict, dict]:
    """(radio, more) updates: the top three methods, the chosen one selected; the others under More methods."""
    top = (plan or {}).get("top") or []
    chosen = (plan or {}).get("method")
    radio = gr.update(choices=[(_title(texts, lang, n), n) for n in top], value=chosen if chosen in top else None)
    rest = [(_title(texts, lang, n), n) for n in METHODS.names() if n not in top]
    more = gr.update(choices=rest, value=chosen if chosen and chosen not in top else None)
    return radio, more


def build_guide(engine: Any, ui: Any) -> GuideView:
    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    t = lambda key, **kw: texts.t(lang, key, **kw)  # noqa: E731
    goals = engine.guide_goals()
    with gr.Column(visible=True, elem_id="studio-guide") as panel:
        goal = gr.Radio(choices=goal_choices(texts, lang, goals), value=DEFAULT_GOAL, label=t("guide.goal.label"),
                        info=t("guide.goal.info"), elem_id="studio-guide-goal")
        loc.add(goal, lambda lg: gr.update(label=texts.t(lg, "guide.goal.label"), info=texts.t(lg, "guide.goal.info"),
                                           choices=goal_choices(texts, lg, goals)))
        with gr.Row(equal_height=True):
            dataset = loc.label(gr.Dropdown(choices=[], value=None, allow_custom_value=True, scale=4,
                                            label=t("guide.dataset.label"), info=t("guide.dataset.info"),
                                            elem_id="studio-guide-dataset"),
                                "guide.dataset.label", "guide.dataset.info")
            upload = loc.label(gr.UploadButton(label=t("guide.upload"), file_types=UPLOAD_TYPES,
                                               file_count="single", scale=1, size="md",
                                               elem_id="studio-guide-upload"), "guide.upload")
        why = gr.Markdown("", elem_id="studio-guide-why")
        method = loc.label(gr.Radio(choices=[], value=None, label=t("guide.method.label"),
                                    info=t("guide.method.info"), elem_id="studio-guide-method"),
                           "guide.method.label", "guide.method.info")
        with loc.label(gr.Accordion(t("guide.more"), open=False, elem_id="studio-guide-more-box"), "guide.more"):
            more = loc.label(gr.Dropdown(choices=[], value=None, label=t("guide.more.label"),
                                         elem_id="studio-guide-more"), "guide.more.label")
    return GuideView(panel, goal, dataset, upload, why, method, more, gr.State(None))


def wire_guide(view: GuideView, engine: Any, ui: Any, fill: Callable[[dict], dict], form: list,
               form_method: Any, message: Any) -> None:
    """`fill(recipe)` maps the full form's components (`form`) to the values that show `recipe`; `form_method` is
    the full form's method dropdown; `message` the tab's message line (where an error goes)."""
    texts = ui.texts
    goals = engine.guide_goals()
    outputs = [view.plan, view.why, view.method, view.more, message, *form]

    def plan_outputs(goal: str, dataset: str | None, lang: str) -> dict:
        try:
            plan = engine.guide(goal or DEFAULT_GOAL, dataset or None)
        except StudioError as exc:
            return {view.plan: None, view.why: "", message: error_text(texts, lang, exc)}
        radio, more = method_updates(texts, lang, plan)
        return {view.plan: plan, view.why: why_markdown(texts, lang, plan), view.method: radio, view.more: more,
                message: "", **fill(plan["recipe"])}

    def sample_of(goal: str) -> str:
        return (goals[goal].recipe.get("data") or {}).get("dataset") if goal in goals else None

    def on_goal(goal, dataset, lang):
        """A new goal takes its own sample, unless the user chose a dataset of their own."""
        if not dataset or dataset in SAMPLES:
            dataset = sample_of(goal)
        return {view.dataset: gr.update(value=dataset), **plan_outputs(goal, dataset, lang)}

    view.goal.input(on_goal, [view.goal, view.dataset, ui.lang], [view.dataset, *outputs], api_visibility="private")
    view.dataset.input(plan_outputs, [view.goal, view.dataset, ui.lang], outputs, api_visibility="private")

    def on_upload(path, goal, lang):
        try:
            spec = engine.import_dataset_file(str(path))
        except StudioError as exc:
            return {message: error_notice(texts, lang, exc)}
        return {view.dataset: gr.update(choices=engine.dataset_choices(), value=spec),
                **plan_outputs(goal, spec, lang)}

    view.upload.upload(on_upload, [view.upload, view.goal, ui.lang], [view.dataset, *outputs],
                       api_visibility="private")

    def on_method(name):
        return (gr.update(value=name), gr.update(value=None)) if name else (gr.skip(), gr.skip())

    view.method.input(on_method, [view.method], [form_method, view.more], api_visibility="private")
    view.more.input(on_method, [view.more], [form_method, view.method], api_visibility="private")

    def on_load(goal, lang):
        dataset = sample_of(goal or DEFAULT_GOAL)
        return {view.dataset: gr.update(choices=engine.dataset_choices(), value=dataset),
                **plan_outputs(goal, dataset, lang)}

    ui.demo.load(on_load, [view.goal, ui.lang], [view.dataset, *outputs], api_visibility="private",
                 show_progress="hidden")

    def redraw(lang, plan):
        """Words in `lang`; the methods keep the choice the user made."""
        top = (plan or {}).get("top") or []
        return (why_markdown(texts, lang, plan), gr.update(choices=[(_title(texts, lang, n), n) for n in top]),
                gr.update(choices=[(_title(texts, lang, n), n) for n in METHODS.names() if n not in top]))

    ui.on_language(redraw, [view.plan], [view.why, view.method, view.more])


__all__ = ["GuideView", "build_guide", "why_markdown", "wire_guide"]
