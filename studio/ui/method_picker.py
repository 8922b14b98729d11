"""The Train tab's method picker: which method, what it costs on this device, and which one to use.

A dropdown of the registered methods (the registry name is the value, the title the label) with
the method's summary, a one-line verdict for the selected method (trainable parameters, estimated
peak memory against the free memory, and what would make it fit) and its settings group. Under it,
a "Compare methods" accordion whose table comes from `studio.memory_picker.method_table` on an explicit
click, cached per user in a `gr.State` keyed by (model, stage, batch, max length, precision,
checkpointing), and a "Suggest a method" row over `studio.memory_picker.recommend`. Counting and
estimating are the engine's (`studio.memory_picker`); this module only words the rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr
import pandas as pd

from studio.errors import StudioError
from studio.memory import GOALS, GiB, device_memory
from studio.methods import METHODS
from studio.ui.fields import FieldWidget, build_fields
from studio.ui.i18n import Texts

DEFAULT_METHOD = "lora"
DEFAULT_GOAL = "style"
# What decides first (fits, peak) comes first; why a method cannot be used, a sentence, goes last.
COLUMNS = ("method", "fits", "peak", "trainable", "percent", "disk", "mergeable", "why_not")


@dataclass
class MethodPickerView:
    method: gr.Dropdown
    summary: gr.Markdown
    verdict: gr.Markdown
    groups: dict[str, Any]
    fields: dict[str, list[FieldWidget]]
    table: gr.Dataframe
    estimate: gr.Button
    goal: gr.Dropdown
    suggest: gr.Button
    suggestion: gr.Markdown
    use: gr.Button
    cache: gr.State  # {table key: {"rows": [...], "memory": {...}}}
    shown: gr.State  # what the verdict, table and suggestion show now, to redraw them in another language
    fix: gr.Radio  # the verdict's fixes, one to pick when the plan does not fit
    apply: gr.Button  # makes the picked fix in the form (wired by the tab that owns the form)


# ---- pure helpers (tested in tests/unit/test_method_picker.py) ----

def human_count(n: int | None) -> str:
    """4_900_000 -> '4.9 M': parameter counts as people read them."""
    if n is None:
        return ""
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return str(n)


def gigabytes(n: float) -> str:
    return f"{n / GiB:.1f} GB"


def table_key(recipe: Any) -> tuple:
    """What the comparison table depends on besides the method (the cache key)."""
    return (recipe.model, recipe.stage, recipe.train.batch_size, recipe.data.max_length, recipe.train.precision,
            bool(recipe.train.gradient_checkpointing), recipe.train.micro_batch_size, recipe.train.token_metrics)


def fixes_text(texts: Texts, lang: str, fixes: list) -> str:
    return ", ".join(texts.t(lang, f"picker.fix.{kind}", value=value) for kind, value in fixes)


def fix_choices(texts: Texts, lang: str, row: dict | None) -> list[tuple[str, int]]:
    """The fixes of a plan that does not fit, as (words, index) choices; none when it fits."""
    if not row or row.get("fits") or not row.get("applicable", True):
        return []
    return [(fixes_text(texts, lang, [fix]), i) for i, fix in enumerate(row.get("fixes") or [])]


def fix_update(texts: Texts, lang: str, row: dict | None) -> tuple[dict, dict]:
    """The fix radio and its Apply button: shown, the first fix picked, while the plan has fixes."""
    choices = fix_choices(texts, lang, row)
    return (gr.update(choices=choices, value=0 if choices else None, visible=bool(choices)),
            gr.update(visible=bool(choices)))


def verdict_text(texts: Texts, lang: str, title: str, row: dict, memory: dict) -> str:
    """One sentence: what the selected method trains, its peak memory against the free memory, and the verdict."""
    if not row["applicable"]:
        return texts.t(lang, "picker.verdict.not_applicable", title=title, reason=reason_text(texts, lang, row))
    values = dict(title=title, trainable=human_count(row["trainable"]), percent=f"{row['percent']:.2f}%",
                  peak=gigabytes(row["estimated_total"]), free=gigabytes(memory["free_bytes"]))
    if row["fits"]:
        return texts.t(lang, "picker.verdict.fits", **values) + plan_text(texts, lang, row)
    if row.get("fixes"):
        return texts.t(lang, "picker.verdict.no_fit", fixes=fixes_text(texts, lang, row["fixes"]), **values)
    return texts.t(lang, "picker.verdict.no_fix", **values)


def plan_text(texts: Texts, lang: str, row: dict) -> str:
    """The passes a step takes and automatic checkpointing, when the plan uses them (empty otherwise)."""
    parts = []
    if row.get("passes", 1) > 1:
        parts.append(texts.t(lang, "picker.plan.passes", batch=row["passes"] * row["micro_batch_size"],
                             passes=row["passes"], micro=row["micro_batch_size"]))
    if row.get("auto_checkpointing"):
        parts.append(texts.t(lang, "picker.plan.checkpointing"))
    return "".join(" " + p for p in parts)


def method_text(texts: Texts, lang: str, name: str) -> str:
    """The method's one-line summary and, below it, how it works and when to use it (markdown)."""
    method = METHODS.get(name)
    explain = texts.get(lang, f"method.{name}.explain")
    return texts.method_summary(lang, method) + (f"\n\n{explain}" if explain else "")


def reason_text(texts: Texts, lang: str, row: dict) -> str:
    """Why a method does not apply, in `lang`."""
    return texts.sentence(lang, row.get("reason_key"), row.get("reason_params") or {}, row["reason"])


def table_row(texts: Texts, lang: str, row: dict) -> list:
    """One table line: method, fits, peak GB, trainable, %, disk MB, mergeable, and why not (when it cannot be used)."""
    yes_no = lambda flag: texts.t(lang, "picker.yes" if flag else "picker.no")  # noqa: E731
    title = texts.method_title(lang, METHODS.get(row["name"])) if row["name"] in METHODS else row["title"]
    if not row["applicable"]:
        return [title, yes_no(False), "", "", "", "", yes_no(row["mergeable"]), reason_text(texts, lang, row)]
    return [title, yes_no(row["fits"]), f"{row['estimated_total'] / GiB:.2f}", f"{row['trainable']:,}",
            f"{row['percent']:.3f}", f"{row['adapter_size_on_disk'] / 2 ** 20:.1f}", yes_no(row["mergeable"]), ""]


def table_frame(texts: Texts, lang: str, rows: list[dict]) -> pd.DataFrame:
    headers = [texts.t(lang, f"picker.col.{c}") for c in COLUMNS]
    return pd.DataFrame([table_row(texts, lang, r) for r in rows], columns=headers)


def why_text(texts: Texts, lang: str, pick: dict) -> str:
    """The two sentences saying why `recommend` picked its method, in `lang`."""
    params = dict(pick["params"])
    if pick.get("method") in METHODS:
        params["title"] = texts.method_title(lang, METHODS.get(pick["method"]))
    return texts.t(lang, f"picker.why.{pick['reason']}", **params)


def suggestion_text(texts: Texts, lang: str, pick: dict) -> str:
    """The suggested method, why, and the other methods that fit this goal (up to two)."""
    title = lambda name: texts.method_title(lang, METHODS.get(name)) if name in METHODS else name  # noqa: E731
    line = texts.t(lang, "picker.suggest.result", title=title(pick["method"]), why=why_text(texts, lang, pick))
    others = [title(n) for n in pick.get("top", [])[1:]]
    return line + (texts.t(lang, "picker.suggest.others", methods=", ".join(others)) if others else "")


def goal_choices(texts: Texts, lang: str) -> list[tuple[str, str]]:
    return [(texts.t(lang, f"picker.goal.{g}"), g) for g in GOALS]


# ---- building and wiring ----

def build_method_picker(ui: Any) -> MethodPickerView:
    """Draw the picker (dropdown, summary, verdict, settings groups, compare table, suggestion)."""
    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    t = lambda key, **kw: texts.t(lang, key, **kw)  # noqa: E731
    methods = sorted(METHODS.items(), key=lambda item: item[0] != DEFAULT_METHOD)  # the default first
    choices = lambda lg: [(texts.method_title(lg, m), n) for n, m in methods]  # noqa: E731

    with gr.Row():
        with gr.Column(scale=2):
            method = gr.Dropdown(choices=choices(lang), value=DEFAULT_METHOD, label=t("train.method.label"),
                                 info=t("train.method.info"), elem_id="studio-method")
            loc.add(method, lambda lg: gr.update(label=texts.t(lg, "train.method.label"),
                                                 info=texts.t(lg, "train.method.info"), choices=choices(lg)))
            summary = gr.Markdown(method_text(texts, lang, DEFAULT_METHOD), elem_classes="studio-method-summary",
                                  elem_id="studio-method-summary")
            verdict = gr.Markdown("", elem_id="studio-method-verdict")
            with gr.Row(equal_height=True):
                fix = loc.label(gr.Radio(choices=[], value=None, label=t("picker.fix.label"), visible=False,
                                         scale=3, elem_id="studio-fix"), "picker.fix.label")
                apply = loc.value(gr.Button(t("picker.fix.apply"), size="sm", scale=1, visible=False,
                                            elem_id="studio-apply-fix"), "picker.fix.apply")
        with gr.Column(scale=3):
            groups, fields = {}, {}
            for name, m in methods:
                with gr.Group(visible=name == DEFAULT_METHOD) as group:
                    fields[name] = build_fields(m.settings_cls, "method", loc, lang, locale_section=name, per_row=2)
                groups[name] = group
    with loc.label(gr.Accordion(t("picker.compare"), open=False, elem_id="studio-compare"),
                   "picker.compare"):
        loc.value(gr.Markdown(t("picker.compare.info"), elem_classes="studio-method-summary"),
                  "picker.compare.info")
        estimate = loc.value(gr.Button(t("picker.estimate"), size="sm", elem_id="studio-estimate"),
                             "picker.estimate")
        table = gr.Dataframe(value=table_frame(texts, lang, []), interactive=False, wrap=True,
                             column_widths=["16%", "7%", "10%", "12%", "8%", "10%", "9%", "28%"],
                             elem_id="studio-method-table")
    with loc.label(gr.Accordion(t("picker.suggest"), open=False, elem_id="studio-suggest-box"),
                   "picker.suggest"):
        with gr.Row(equal_height=True):
            goal = gr.Dropdown(choices=goal_choices(texts, lang), value=DEFAULT_GOAL,
                               label=t("picker.goal.label"), scale=2, elem_id="studio-goal")
            loc.add(goal, lambda lg: gr.update(label=texts.t(lg, "picker.goal.label"),
                                               choices=goal_choices(texts, lg)))
            suggest = loc.value(gr.Button(t("picker.suggest.button"), scale=1, elem_id="studio-suggest"),
                                "picker.suggest.button")
        suggestion = gr.Markdown("", elem_id="studio-suggestion")
        use = loc.value(gr.Button(t("picker.use"), size="sm", visible=False, elem_id="studio-use-method"),
                        "picker.use")
    return MethodPickerView(method, summary, verdict, groups, fields, table, estimate, goal, suggest, suggestion,
                            use, gr.State({}), gr.State({}), fix, apply)


def wire_method_picker(view: MethodPickerView, engine: Any, ui: Any, recipe_of: Callable[[dict], Any],
                       inputs: set, retriggers: list) -> None:
    """Hook the picker up. `recipe_of(values)` parses the tab's widgets into a Recipe; `inputs` are
    those widgets; the verdict is redrawn when the method or any of `retriggers` changes."""
    texts = ui.texts
    names = METHODS.names()
    title_of = lambda lang, name: texts.method_title(lang, METHODS.get(name))  # noqa: E731

    def on_method(name, lang):
        summary = method_text(texts, lang, name or DEFAULT_METHOD)
        return [summary] + [gr.update(visible=n == name) for n in names]

    view.method.change(on_method, [view.method, ui.lang], [view.summary, *view.groups.values()],
                       api_visibility="private")

    def on_verdict(values: dict):
        lang, cache, shown = values[ui.lang], values[view.cache], dict(values[view.shown] or {})
        name = values[view.method] or DEFAULT_METHOD
        try:
            recipe = recipe_of(values)
            cached = cache.get(repr(table_key(recipe)))
            if cached is not None and recipe.method.name == name:
                row = next(r for r in cached["rows"] if r["name"] == name)
                memory = cached["memory"]
            else:
                memory = device_memory()
                row = engine.method_table(recipe, memory=memory, only=name)[0]
        except StudioError as exc:
            shown["verdict"] = None
            return {view.verdict: texts.t(lang, "picker.verdict.error", message=texts.error(lang, exc)),
                    view.shown: shown, **dict(zip((view.fix, view.apply), fix_update(texts, lang, None)))}
        shown["verdict"] = {"row": row, "memory": memory}
        return {view.verdict: verdict_text(texts, lang, title_of(lang, name), row, memory), view.shown: shown,
                **dict(zip((view.fix, view.apply), fix_update(texts, lang, row)))}

    verdict_inputs = inputs | {view.cache, view.shown, view.method}
    for trigger in [view.method, *retriggers]:
        trigger.change(on_verdict, verdict_inputs, [view.verdict, view.shown, view.fix, view.apply],
                       trigger_mode="always_last", show_progress="hidden", api_visibility="private")

    def on_estimate(values: dict):
        lang, cache, shown = values[ui.lang], dict(values[view.cache]), dict(values[view.shown] or {})
        try:
            recipe = recipe_of(values)
            key = repr(table_key(recipe))
            if key not in cache:
                memory = device_memory()
                cache[key] = {"rows": engine.method_table(recipe, memory=memory),
                              "memory": memory}
        except StudioError as exc:
            gr.Warning(texts.error(lang, exc))
            return {view.verdict: texts.t(lang, "picker.verdict.error", message=texts.error(lang, exc))}
        shown["table"] = cache[key]["rows"]
        return {view.table: table_frame(texts, lang, shown["table"]), view.cache: cache, view.shown: shown}

    view.estimate.click(on_estimate, verdict_inputs, [view.table, view.cache, view.shown, view.verdict],
                        api_visibility="private")

    def on_suggest(values: dict):
        lang, shown = values[ui.lang], dict(values[view.shown] or {})
        try:
            recipe = recipe_of(values)
            memory = (shown.get("verdict") or {}).get("memory") or device_memory()  # the verdict's, so the two agree
            pick = engine.suggest_method(recipe, values[view.goal] or DEFAULT_GOAL, memory=memory)
        except StudioError as exc:
            return {view.suggestion: texts.t(lang, "picker.verdict.error", message=texts.error(lang, exc)),
                    view.use: gr.update(visible=False)}
        shown["suggestion"] = pick
        return {view.suggestion: suggestion_text(texts, lang, pick),
                view.use: gr.update(visible=True), view.shown: shown}

    view.suggest.click(on_suggest, verdict_inputs | {view.goal}, [view.suggestion, view.use, view.shown],
                       api_visibility="private")

    def on_use(shown):
        pick = (shown or {}).get("suggestion")
        return gr.update(value=pick["method"]) if pick else gr.skip()

    view.use.click(on_use, [view.shown], [view.method], api_visibility="private")

    def redraw(lang, name, shown):
        """The summary, verdict, table and suggestion in `lang`, from what they show now."""
        shown = shown or {}
        verdict, table, pick = shown.get("verdict"), shown.get("table") or [], shown.get("suggestion")
        choices = fix_choices(texts, lang, verdict["row"] if verdict else None)
        return (method_text(texts, lang, name or DEFAULT_METHOD),
                verdict_text(texts, lang, title_of(lang, verdict["row"]["name"]), verdict["row"], verdict["memory"])
                if verdict else gr.skip(),
                table_frame(texts, lang, table),
                suggestion_text(texts, lang, pick) if pick else gr.skip(),
                gr.update(choices=choices) if choices else gr.skip())

    ui.on_language(redraw, [view.method, view.shown],
                   [view.summary, view.verdict, view.table, view.suggestion, view.fix])
