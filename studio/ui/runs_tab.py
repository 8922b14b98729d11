"""The Runs tab: every run in a table, its recipe, and resume / delete (with a confirmation step).

The table comes from `Engine.list_runs`; picking a run (by clicking its row or from the picker)
shows `Engine.run_recipe_yaml`. Resume calls `Engine.resume` and hands the run to the Train tab's
live view; Delete first shows a "Confirm delete" button and only the second click calls
`Engine.delete_run`. Engine refusals (`StudioError`) become one-line messages.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from studio.errors import StudioError
from studio.ui.charts import format_duration, status_label
from studio.ui.common import UiShared, error_text
from studio.ui.train_tab import TrainView

COLUMNS = ("id", "name", "model", "method", "status", "duration", "final_loss")


@dataclass
class RunsView:
    table: gr.Dataframe
    refresh: gr.Button
    picker: gr.Dropdown
    recipe: gr.Code
    resume: gr.Button
    delete: gr.Button
    confirm_delete: gr.Button
    keep: gr.Button
    message: gr.Markdown


def runs_table(runs: list[dict], texts: Any, lang: str) -> dict:
    """The table's value: localized headers and one row per run, newest first."""
    rows = [[r["id"], r["name"], r["model"], r["method"], status_label(texts, lang, r["status"]),
             format_duration(r.get("duration_s")) if r.get("duration_s") is not None else "",
             "" if r.get("final_loss") is None else f"{r['final_loss']:.4f}"] for r in runs]
    return {"headers": [texts.t(lang, f"runs.col.{c}") for c in COLUMNS], "data": rows}


def run_choices(runs: list[dict], texts: Any, lang: str) -> list[tuple[str, str]]:
    return [(f"{r['name']} · {status_label(texts, lang, r['status'])} · {r['id']}", r["id"]) for r in runs]


def build_runs(engine: Any, ui: UiShared, tab: Any, train: TrainView) -> RunsView:
    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    t = lambda key, **kw: texts.t(lang, key, **kw)  # noqa: E731

    with gr.Row():
        picker = loc.label(gr.Dropdown(choices=[], value=None, label=t("runs.pick.label"), info=t("runs.pick.info"),
                                       scale=4, elem_id="studio-run-picker"), "runs.pick.label", "runs.pick.info")
        refresh = loc.value(gr.Button(t("runs.refresh"), scale=1, size="md", elem_id="studio-runs-refresh"),
                            "runs.refresh")
    table = gr.Dataframe(value=runs_table([], texts, lang), interactive=False, wrap=True, elem_id="studio-runs")
    with gr.Row():
        resume = loc.value(gr.Button(t("runs.resume"), interactive=False), "runs.resume")
        delete = loc.value(gr.Button(t("runs.delete"), variant="stop", interactive=False), "runs.delete")
        confirm = loc.value(gr.Button(t("runs.confirm_delete"), variant="stop", visible=False,
                                      elem_id="studio-confirm-delete"), "runs.confirm_delete")
        keep = loc.value(gr.Button(t("runs.keep"), visible=False), "runs.keep")
    message = gr.Markdown("")
    recipe = loc.label(gr.Code(value="", language="yaml", label=t("runs.recipe"), interactive=False), "runs.recipe")
    view = RunsView(table, refresh, picker, recipe, resume, delete, confirm, keep, message)
    _wire(view, engine, ui, tab, train)
    return view


def _wire(view: RunsView, engine: Any, ui: UiShared, tab: Any, train: TrainView) -> None:
    texts = ui.texts
    hidden = (gr.update(visible=False), gr.update(visible=False))

    def refresh(current, lang):
        runs = engine.list_runs()
        ids = [r["id"] for r in runs]
        keep = current if current in ids else None
        return runs_table(runs, texts, lang), gr.update(choices=run_choices(runs, texts, lang), value=keep)

    listing = [view.table, view.picker]
    for trigger in (view.refresh.click, tab.select):
        trigger(refresh, [view.picker, ui.lang], listing, api_visibility="private")
    ui.on_language(lambda lang, current: refresh(current, lang), [view.picker], listing)

    def on_pick(run_id, lang):
        if not run_id:
            return "", gr.update(interactive=False), gr.update(interactive=False), gr.skip(), *hidden
        try:
            text = engine.run_recipe_yaml(run_id)
        except (StudioError, OSError) as exc:
            message = texts.error(lang, exc) if isinstance(exc, StudioError) else str(exc)
            return "", gr.update(interactive=False), gr.update(interactive=False), message, *hidden
        return text, gr.update(interactive=True), gr.update(interactive=True), gr.skip(), *hidden

    view.picker.change(on_pick, [view.picker, ui.lang],
                       [view.recipe, view.resume, view.delete, view.message, view.confirm_delete, view.keep],
                       api_visibility="private")

    def on_row(evt: gr.SelectData):
        row = evt.row_value or []
        return row[0] if row else gr.skip()

    view.table.select(on_row, None, [view.picker], api_visibility="private")

    def on_resume(run_id, lang):
        try:
            engine.resume(run_id)
        except StudioError as exc:
            gr.Warning(texts.error(lang, exc))
            return error_text(texts, lang, exc), gr.skip(), gr.skip(), gr.skip()
        return texts.t(lang, "msg.resumed"), run_id, gr.Timer(active=True), -1

    view.resume.click(on_resume, [view.picker, ui.lang], [view.message, train.run_id, train.timer, train.seen_points],
                      api_visibility="private").then(refresh, [view.picker, ui.lang], listing,
                                                     api_visibility="private")

    def ask(run_id, lang):
        name = next((r["name"] for r in engine.list_runs() if r["id"] == run_id), run_id)
        return texts.t(lang, "msg.confirm_delete", name=name), gr.update(visible=True), gr.update(visible=True)

    view.delete.click(ask, [view.picker, ui.lang], [view.message, view.confirm_delete, view.keep],
                      api_visibility="private")
    view.keep.click(lambda: ("", *hidden), None, [view.message, view.confirm_delete, view.keep],
                    api_visibility="private")

    def on_confirm(run_id, lang):
        try:
            engine.delete_run(run_id)
        except StudioError as exc:
            gr.Warning(texts.error(lang, exc))
            return error_text(texts, lang, exc), *hidden, gr.skip()
        return texts.t(lang, "msg.deleted"), *hidden, None

    view.confirm_delete.click(on_confirm, [view.picker, ui.lang],
                              [view.message, view.confirm_delete, view.keep, view.picker],
                              api_visibility="private").then(refresh, [view.picker, ui.lang], listing,
                                                             api_visibility="private")
