"""The Runs tab: every run in a table, its recipe, and resume / delete (with a confirmation step).

The table comes from `Engine.list_runs`; picking a run (by clicking its row or from the picker)
shows `Engine.run_recipe_yaml`, and "Open in the Train tab" shows its charts and samples there.
"Compare runs" overlays one metric of several runs (`Engine.compare`), with the recipe settings
that differ, final and best scores, and the two tables as a CSV download (each chart has plotly's
own "download as PNG" button). Resume calls `Engine.resume` and hands the run to the Train tab's
live view; Delete first shows a "Confirm delete" button and only the second click calls
`Engine.delete_run`. Engine refusals (`StudioError`) become one-line messages.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from studio.errors import StudioError
from studio.models.refs import run_spec
from studio.ui.charts import format_duration, status_label
from studio.ui.metric_charts import compare_figure, metric_label
from studio.ui.common import error_notice, UiShared
from studio.ui.train_tab import TrainView, form_values

COLUMNS = ("id", "name", "model", "method", "status", "duration", "final_loss")
RESUMABLE = ("cancelled", "interrupted", "failed")  # a run that stopped before its end (from its last checkpoint)


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
    open_view: gr.Button
    serve_port: gr.Number
    serve: gr.Button
    compare: "CompareView"


@dataclass
class CompareView:
    runs: gr.Dropdown
    metric: gr.Dropdown
    go: gr.Button
    chart: gr.Plot
    settings: gr.Dataframe
    scores: gr.Dataframe
    csv: gr.DownloadButton
    state: gr.State  # the last comparison, to switch metric without reading the runs again


def runs_table(runs: list[dict], texts: Any, lang: str) -> dict:
    """The table's value: localized headers and one row per run, newest first."""
    rows = [[r["id"], r["name"], r["model"], r["method"], status_label(texts, lang, r["status"]),
             format_duration(r.get("duration_s")) if r.get("duration_s") is not None else "",
             "" if r.get("final_loss") is None else f"{r['final_loss']:.4f}"] for r in runs]
    return {"headers": [texts.t(lang, f"runs.col.{c}") for c in COLUMNS], "data": rows}


def run_choices(runs: list[dict], texts: Any, lang: str) -> list[tuple[str, str]]:
    return [(f"{r['name']} · {status_label(texts, lang, r['status'])} · {r['id']}", r["id"]) for r in runs]


def build_runs(engine: Any, ui: UiShared, tab: Any, train: TrainView, tabs: Any) -> RunsView:
    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    t = lambda key, **kw: texts.t(lang, key, **kw)  # noqa: E731

    with gr.Row():
        picker = loc.label(gr.Dropdown(choices=[], value=None, label=t("runs.pick.label"), info=t("runs.pick.info"),
                                       scale=4, elem_id="studio-run-picker"), "runs.pick.label", "runs.pick.info")
        refresh = loc.value(gr.Button(t("runs.refresh"), scale=1, size="md", elem_id="studio-runs-refresh"),
                            "runs.refresh")
    table = gr.Dataframe(value=runs_table([], texts, lang), interactive=False, wrap=True, elem_id="studio-runs")
    with gr.Row():
        open_view = loc.value(gr.Button(t("runs.open"), interactive=False, elem_id="studio-run-open"), "runs.open")
        resume = loc.value(gr.Button(t("runs.resume"), interactive=False, elem_id="studio-run-resume"), "runs.resume")
        delete = loc.value(gr.Button(t("runs.delete"), variant="stop", interactive=False), "runs.delete")
        confirm = loc.value(gr.Button(t("runs.confirm_delete"), variant="stop", visible=False,
                                      elem_id="studio-confirm-delete"), "runs.confirm_delete")
        keep = loc.value(gr.Button(t("runs.keep"), visible=False), "runs.keep")
    with gr.Row():
        serve_port = loc.label(gr.Number(value=8000, precision=0, label=t("runs.serve_port.label"),
                                         info=t("runs.serve_port.info"), scale=1, elem_id="studio-serve-port"),
                               "runs.serve_port.label", "runs.serve_port.info")
        serve = loc.value(gr.Button(t("runs.serve"), interactive=False, scale=1, elem_id="studio-run-serve"),
                          "runs.serve")
    message = gr.Markdown("")
    recipe = loc.label(gr.Code(value="", language="yaml", label=t("runs.recipe"), interactive=False), "runs.recipe")
    compare = build_compare(ui)
    from studio.ui.merge_box import build_merge

    build_merge(engine, ui, tab)
    view = RunsView(table, refresh, picker, recipe, resume, delete, confirm, keep, message, open_view, serve_port,
                    serve, compare)
    _wire(view, engine, ui, tab, train, tabs)
    _wire_compare(compare, engine, ui)
    return view


def build_compare(ui: UiShared) -> CompareView:
    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    t = lambda key, **kw: texts.t(lang, key, **kw)  # noqa: E731
    with loc.label(gr.Accordion(t("compare.title"), open=False, elem_id="studio-compare-box"), "compare.title"):
        with gr.Row():
            runs = loc.label(gr.Dropdown(choices=[], value=[], multiselect=True, label=t("compare.runs"),
                                         info=t("compare.runs.info"), scale=4, elem_id="studio-compare-runs"),
                             "compare.runs", "compare.runs.info")
            metric = loc.label(gr.Dropdown(choices=[("loss", "loss")], value="loss", label=t("compare.metric"),
                                           scale=2, elem_id="studio-compare-metric"), "compare.metric")
            go = loc.value(gr.Button(t("compare.button"), variant="primary", scale=1, elem_id="studio-compare-go"),
                           "compare.button")
        chart = gr.Plot(value=compare_figure([], "loss", texts, lang), show_label=False, elem_id="studio-compare-chart")
        settings = loc.label(gr.Dataframe(value=None, interactive=False, wrap=True, label=t("compare.settings"),
                                          elem_id="studio-compare-settings"), "compare.settings")
        scores = loc.label(gr.Dataframe(value=None, interactive=False, wrap=True, label=t("compare.scores"),
                                        elem_id="studio-compare-scores"), "compare.scores")
        csv = loc.value(gr.DownloadButton(t("compare.csv"), visible=False, elem_id="studio-compare-csv"), "compare.csv")
    return CompareView(runs, metric, go, chart, settings, scores, csv, gr.State(None))


def score_cell(value: Any) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def comparison_tables(comparison: dict, texts: Any, lang: str) -> tuple[dict, dict]:
    """The settings and scores tables of a comparison as Dataframe values, metric names in `lang`."""
    settings = comparison["settings"]
    head = [texts.t(lang, "compare.col.setting"), *settings["columns"][1:]]
    scores = comparison["scores"]
    labels = [r["label"] for r in comparison["runs"]]
    score_head = [texts.t(lang, "compare.col.metric")] + [
        texts.t(lang, f"compare.col.{part}", run=label) for label in labels for part in ("final", "best")]
    score_rows = [[metric_label(texts, lang, row[0]), *map(score_cell, row[1:])] for row in scores["rows"]]
    return ({"headers": head, "data": [[str(c) for c in row] for row in settings["rows"]]},
            {"headers": score_head, "data": score_rows})


def _wire_compare(view: CompareView, engine: Any, ui: UiShared) -> None:
    texts = ui.texts

    def choices(comparison: dict, lang: str) -> list[tuple[str, str]]:
        return [(metric_label(texts, lang, m), m) for m in comparison["metrics"]]

    def on_compare(run_ids, metric, lang):
        try:
            comparison = engine.compare(run_ids or [])
        except StudioError as exc:
            gr.Warning(texts.error(lang, exc))
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        metric = metric if metric in comparison["metrics"] else ("loss" if "loss" in comparison["metrics"]
                                                                 else (comparison["metrics"] or ["loss"])[0])
        settings, scores = comparison_tables(comparison, texts, lang)
        return (comparison, gr.update(choices=choices(comparison, lang), value=metric),
                compare_figure(comparison["runs"], metric, texts, lang), settings, scores,
                gr.update(value=engine.compare_csv(comparison), visible=True))

    view.go.click(on_compare, [view.runs, view.metric, ui.lang],
                  [view.state, view.metric, view.chart, view.settings, view.scores, view.csv], api_visibility="private")

    def on_metric(comparison, metric, lang):
        if not comparison:
            return gr.skip()
        return compare_figure(comparison["runs"], metric, texts, lang)

    view.metric.change(on_metric, [view.state, view.metric, ui.lang], [view.chart], api_visibility="private")

    def redraw(lang, comparison, metric):
        if not comparison:
            return compare_figure([], metric or "loss", texts, lang), gr.skip(), gr.skip(), gr.skip()
        settings, scores = comparison_tables(comparison, texts, lang)
        return (compare_figure(comparison["runs"], metric, texts, lang), settings, scores,
                gr.update(choices=choices(comparison, lang), value=metric))

    ui.on_language(redraw, [view.state, view.metric], [view.chart, view.settings, view.scores, view.metric])


def _wire(view: RunsView, engine: Any, ui: UiShared, tab: Any, train: TrainView, tabs: Any) -> None:
    texts = ui.texts
    hidden = (gr.update(visible=False), gr.update(visible=False))

    def refresh(current, picked, lang):
        runs = engine.list_runs()
        ids = [r["id"] for r in runs]
        keep = current if current in ids else None
        choices = run_choices(runs, texts, lang)
        return (runs_table(runs, texts, lang), gr.update(choices=choices, value=keep),
                gr.update(choices=choices, value=[p for p in picked or [] if p in ids]))

    listing = [view.table, view.picker, view.compare.runs]
    listing_inputs = [view.picker, view.compare.runs, ui.lang]
    for trigger in (view.refresh.click, tab.select):
        trigger(refresh, listing_inputs, listing, api_visibility="private")
    ui.on_language(lambda lang, current, picked: refresh(current, picked, lang), [view.picker, view.compare.runs],
                   listing)

    def on_pick(run_id, lang):
        off = gr.update(interactive=False)
        if not run_id:
            return "", off, off, off, off, gr.skip(), *hidden
        try:
            text = engine.run_recipe_yaml(run_id)
            status = engine.run_status(run_id)["status"]
        except (StudioError, OSError) as exc:
            message = texts.error(lang, exc) if isinstance(exc, StudioError) else str(exc)
            return "", off, off, off, off, message, *hidden
        on = gr.update(interactive=True)
        return (text, on, gr.update(interactive=status in RESUMABLE), on, gr.update(interactive=status == "completed"),
                gr.skip(), *hidden)

    view.picker.change(on_pick, [view.picker, ui.lang],
                       [view.recipe, view.open_view, view.resume, view.delete, view.serve, view.message,
                        view.confirm_delete, view.keep], api_visibility="private")

    def on_serve(run_id, port, lang):
        """Serve the run over an OpenAI-compatible API from a process of its own; the Jobs panel shows and stops it."""
        try:
            job = engine.serve(run_spec(run_id), int(port or 0))
        except StudioError as exc:
            return error_notice(texts, lang, exc)
        return texts.t(lang, "runs.serving", url=f"http://127.0.0.1:{int(port)}/v1", model=run_spec(run_id),
                       job=job["id"])

    view.serve.click(on_serve, [view.picker, view.serve_port, ui.lang], [view.message], api_visibility="private")

    form = train.form()

    def on_open(run_id, lang):
        """Watch the run on the Train tab, its settings in the form (to start a variation of it)."""
        try:
            recipe = engine.run_recipe(run_id)
        except (StudioError, OSError) as exc:
            return {view.message: texts.error(lang, exc) if isinstance(exc, StudioError) else str(exc)}
        values = form_values(train, recipe)
        return {view.message: texts.t(lang, "msg.opened"), train.run_id: run_id, train.timer: gr.Timer(active=True),
                train.seen_points: -1, tabs: gr.Tabs(selected="train"), train.mode: "all",
                **{component: gr.update(value=value) for component, value in values.items()}}

    view.open_view.click(on_open, [view.picker, ui.lang],
                         [view.message, train.run_id, train.timer, train.seen_points, tabs, train.mode, *form],
                         api_visibility="private")

    def on_row(evt: gr.SelectData):
        row = evt.row_value or []
        return row[0] if row else gr.skip()

    view.table.select(on_row, None, [view.picker], api_visibility="private")

    def on_resume(run_id, lang):
        try:
            engine.resume(run_id)
        except StudioError as exc:
            return error_notice(texts, lang, exc), gr.skip(), gr.skip(), gr.skip()
        return texts.t(lang, "msg.resumed"), run_id, gr.Timer(active=True), -1

    view.resume.click(on_resume, [view.picker, ui.lang], [view.message, train.run_id, train.timer, train.seen_points],
                      api_visibility="private").then(refresh, listing_inputs, listing,
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
            return error_notice(texts, lang, exc), *hidden, gr.skip()
        return texts.t(lang, "msg.deleted"), *hidden, None

    view.confirm_delete.click(on_confirm, [view.picker, ui.lang],
                              [view.message, view.confirm_delete, view.keep, view.picker],
                              api_visibility="private").then(refresh, listing_inputs, listing,
                                                             api_visibility="private")
