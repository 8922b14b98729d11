"""The admin side of the Preferences tab: create a task set, then read its agreement and export it.

"Create" takes prompts (typed, a dataset, or saved playground/RAG exchanges), one or more models or
runs, K candidates per prompt, each with its own settings (model, temperature, top-p, max new tokens,
seed: `studio.prefs.slots`), and the overlap (annotators per item), and generates the candidates as a
background job with progress (`PrefService.start_generation`); rankings collected elsewhere can be
imported, and an AI judge can pre-rank the answers as suggestions. "Results" shows progress per annotator,
agreement (Krippendorff's alpha, Kendall's W per item, the most contested items) and exports the consensus
rankings as preference pairs (DPO) or labelled answers (KTO): a studio dataset, JSONL and Parquet.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from studio.errors import StudioError
from studio.prefs.service import MAX_K
from studio.prefs.slots import candidate_settings, slot_plan
from studio.ui.audit_view import build_audit
from studio.ui.common import UiShared, error_text
from studio.ui.playground_tab import target_choices

SOURCES = ("typed", "dataset", "exchanges")
STRATEGIES = ("all_pairs", "best_vs_rest", "adjacent")
PEOPLE = ("annotator", "ranked", "skipped", "flagged", "agreement")
CONTESTED = ("item", "prompt", "w", "annotators")
# The settings each candidate slot of the Create form sets, and what they start at (0.7/1.0 in turn, seed j).
SLOT_FIELDS = ("model", "temperature", "top_p", "max_new_tokens", "seed")
SLOT_DEFAULTS = candidate_settings(MAX_K, (0.7, 1.0), 96)


@dataclass
class SlotWidgets:
    """One row per candidate slot (shown for the first K): {field: component} for the fields of SLOT_FIELDS."""

    rows: list[Any]
    fields: list[dict[str, Any]]


def _build_slots(ui: UiShared) -> SlotWidgets:
    """The per-candidate settings: model (shown when several are picked), temperature, top-p, max new tokens, seed."""
    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    rows, fields = [], []
    with loc.label(gr.Accordion(texts.t(lang, "prefs.create.slots"), open=False), "prefs.create.slots"):
        loc.value(gr.Markdown(texts.t(lang, "prefs.create.slots.info")), "prefs.create.slots.info")
        for j, start in enumerate(SLOT_DEFAULTS):
            with gr.Row(visible=j < 4, equal_height=True, elem_id=f"studio-prefs-slot-{j + 1}") as row:
                title = gr.Markdown(f"**{texts.t(lang, 'prefs.create.slot', n=j + 1)}**")
                loc.add(title, lambda lang, n=j + 1: gr.update(
                    value=f"**{texts.t(lang, 'prefs.create.slot', n=n)}**"))
                widgets = {"model": loc.label(gr.Dropdown(choices=[], visible=False, scale=2,
                                                          label=texts.t(lang, "prefs.create.slot.model")),
                                              "prefs.create.slot.model")}
                for name in SLOT_FIELDS[1:]:
                    widget = gr.Number(value=getattr(start, name), label=texts.field_label(lang, "gen", name),
                                       elem_id=f"studio-prefs-slot-{j + 1}-{name}", min_width=90)
                    widgets[name] = loc.add(widget, lambda lang, n=name: gr.update(
                        label=texts.field_label(lang, "gen", n)))
            rows.append(row)
            fields.append(widgets)
    return SlotWidgets(rows, fields)


def build_create(engine: Any, ui: UiShared) -> None:
    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    t = lambda key, **kw: texts.t(lang, key, **kw)  # noqa: E731
    with gr.Row():
        name = loc.label(gr.Textbox(label=t("prefs.create.name"), elem_id="studio-prefs-new-name"),
                         "prefs.create.name")
        source = loc.label(gr.Radio(list(SOURCES), value="typed", label=t("prefs.create.source"),
                                    elem_id="studio-prefs-source"), "prefs.create.source")
    typed = loc.label(gr.Textbox(label=t("prefs.create.typed"), lines=4, elem_id="studio-prefs-typed"),
                      "prefs.create.typed")
    with gr.Row():
        dataset = loc.label(gr.Dropdown(choices=[], label=t("prefs.create.dataset"), elem_id="studio-prefs-dataset"),
                            "prefs.create.dataset")
        exchanges = loc.label(gr.Dropdown(choices=[], label=t("prefs.create.exchanges")), "prefs.create.exchanges")
    with gr.Row():
        models = loc.label(gr.Dropdown(choices=[], multiselect=True, label=t("prefs.create.models"),
                                       info=t("prefs.create.models.info"), elem_id="studio-prefs-models"),
                           "prefs.create.models", "prefs.create.models.info")
        k = loc.label(gr.Slider(2, 6, value=4, step=1, label=t("prefs.create.k")), "prefs.create.k")
        overlap = loc.label(gr.Slider(1, 5, value=1, step=1, label=t("prefs.create.overlap"),
                                      info=t("prefs.create.overlap.info")), "prefs.create.overlap",
                            "prefs.create.overlap.info")
    slots = _build_slots(ui)
    guidelines = loc.label(gr.Textbox(label=t("prefs.create.guidelines"), lines=3, info=t("prefs.create.guidelines.info"),
                                      elem_id="studio-prefs-new-guidelines"), "prefs.create.guidelines",
                           "prefs.create.guidelines.info")
    generate = loc.value(gr.Button(t("prefs.create.go"), variant="primary", elem_id="studio-prefs-generate"),
                         "prefs.create.go")
    status = gr.Markdown("", elem_id="studio-prefs-generate-status")
    job = gr.State(None)
    timer = gr.Timer(1.0, active=False)
    with loc.label(gr.Accordion(t("prefs.import"), open=False), "prefs.import"):
        with gr.Row(equal_height=True):
            upload = loc.label(gr.File(label=t("prefs.import.file"), file_types=[".jsonl"],
                                       elem_id="studio-prefs-import-file"), "prefs.import.file")
            do_import = loc.value(gr.Button(t("prefs.import.go"), elem_id="studio-prefs-import"), "prefs.import.go")
    with loc.label(gr.Accordion(t("prefs.accounts"), open=False), "prefs.accounts"):
        with gr.Row(equal_height=True):
            account = loc.label(gr.Textbox(label=t("prefs.accounts.name")), "prefs.accounts.name")
            password = loc.label(gr.Textbox(label=t("prefs.accounts.password"), type="password",
                                            info=t("prefs.accounts.password.info")), "prefs.accounts.password",
                                 "prefs.accounts.password.info")
            role = loc.label(gr.Radio(["annotator", "admin"], value="annotator", label=t("prefs.accounts.role")),
                             "prefs.accounts.role")
            add_account = loc.value(gr.Button(t("prefs.accounts.add")), "prefs.accounts.add")
        build_audit(engine, ui)
    with loc.label(gr.Accordion(t("prefs.judge"), open=False), "prefs.judge"):
        with gr.Row(equal_height=True):
            judge_model = loc.label(gr.Dropdown(choices=[], label=t("prefs.judge.model")), "prefs.judge.model")
            rubric = loc.label(gr.Textbox(label=t("prefs.judge.rubric"), lines=3, value=t("prefs.judge.default")),
                               "prefs.judge.rubric")
            judge = loc.value(gr.Button(t("prefs.judge.go"), elem_id="studio-prefs-judge"), "prefs.judge.go")

    def refresh(lang):
        sources = engine.prefs.prompt_sources()
        choices = target_choices(engine.model_choices(), engine.finished_runs(), texts, lang, False)
        return (gr.update(choices=sources["datasets"]), gr.update(choices=sources["exchanges"]),
                gr.update(choices=choices), gr.update(choices=choices))

    ui.demo.load(refresh, [ui.lang], [dataset, exchanges, models, judge_model], api_visibility="private",
                 show_progress="hidden")

    # the request comes first: gradio fills in a gr.Request only among the positional parameters
    def on_generate(request: gr.Request, lang, name, source, typed, dataset, exchanges, models, k, overlap,
                    guidelines, *slot_values):
        try:
            value = {"typed": typed, "dataset": dataset, "exchanges": exchanges}[source]
            prompts = engine.prefs.load_prompts(source, value or "")
            picked = list(models or [])
            rows = [dict(zip(SLOT_FIELDS, slot_values[j::MAX_K])) for j in range(int(k))]
            if len(picked) < 2:  # the slot model pickers are hidden: every slot uses the one model
                rows = [{**row, "model": None} for row in rows]
            targets, settings = slot_plan(int(k), picked, rows, SLOT_DEFAULTS[:int(k)])
            job_id = engine.prefs.start_generation((name or "").strip(), prompts, targets, int(k),
                                                   settings, overlap=int(overlap), guidelines=guidelines or "",
                                                   created_by=getattr(request, "username", None) or "")
        except StudioError as exc:
            return None, gr.Timer(active=False), error_text(texts, lang, exc)
        return job_id, gr.Timer(active=True), texts.t(lang, "prefs.create.started", n=len(prompts), k=int(k))

    # slot inputs field by field: all models, then all temperatures, ... (on_generate slices them back)
    slot_inputs = [row[f] for f in SLOT_FIELDS for row in slots.fields]
    generate.click(on_generate, [ui.lang, name, source, typed, dataset, exchanges, models, k, overlap, guidelines,
                                 *slot_inputs], [job, timer, status], api_visibility="private")
    k.change(lambda k: [gr.update(visible=j < int(k)) for j in range(MAX_K)], [k], slots.rows,
             api_visibility="private", show_progress="hidden")

    def on_models(models):
        picked = list(models or [])
        return [gr.update(choices=picked, value=picked[j % len(picked)] if picked else None, visible=len(picked) > 1)
                for j in range(MAX_K)]

    models.change(on_models, [models], [row["model"] for row in slots.fields], api_visibility="private",
                  show_progress="hidden")

    def on_tick(lang, job_id):
        if not job_id:
            return gr.Timer(active=False), ""
        state = engine.prefs.job(job_id)
        line = texts.t(lang, f"prefs.job.{state['state']}", done=state["done"], total=state["total"],
                       task_set=state.get("task_set") or "", error=state.get("error") or "")
        return gr.Timer(active=state["state"] in ("queued", "running")), line

    timer.tick(on_tick, [ui.lang, job], [timer, status], api_visibility="private", show_progress="hidden")

    def on_import(lang, name, upload):
        from studio.prefs.ranking import read_rankings_jsonl

        try:
            if not upload:
                raise StudioError("Choose a rankings file (.jsonl) first.", field="prefs.import",
                                  key="prefs.ui.no_file")
            path = Path(upload if isinstance(upload, str) else upload.name)
            result = engine.prefs.import_rankings((name or "").strip(), read_rankings_jsonl(path), path.stem)
        except StudioError as exc:
            return error_text(texts, lang, exc)
        return texts.t(lang, "prefs.import.done", items=result.get("items_added", 0) + result.get("items_matched", 0),
                       already=result.get("already", 0))

    do_import.click(on_import, [ui.lang, name, upload], [status], api_visibility="private")

    def on_judge(lang, name, model, rubric):
        try:
            job_id = engine.prefs.judge((name or "").strip(), model or "", rubric or "")
        except StudioError as exc:
            return None, gr.Timer(active=False), error_text(texts, lang, exc)
        return job_id, gr.Timer(active=True), texts.t(lang, "prefs.judge.started")

    def on_account(lang, name, password, role):
        try:
            engine.prefs.add_annotator(name, password or None, role)
        except StudioError as exc:
            return error_text(texts, lang, exc), password
        return texts.t(lang, "prefs.accounts.added", name=name.strip(), role=role), ""

    add_account.click(on_account, [ui.lang, account, password, role], [status, password], api_visibility="private")
    judge.click(on_judge, [ui.lang, name, judge_model, rubric], [job, timer, status], api_visibility="private")


def build_results(engine: Any, ui: UiShared, tab: Any) -> None:
    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    t = lambda key, **kw: texts.t(lang, key, **kw)  # noqa: E731
    with gr.Row(equal_height=True):
        task_set = loc.label(gr.Dropdown(choices=[], label=t("prefs.task_set"), elem_id="studio-prefs-results-set"),
                             "prefs.task_set")
        show = loc.value(gr.Button(t("prefs.results.show"), elem_id="studio-prefs-results-show"), "prefs.results.show")
    summary = gr.Markdown("", elem_id="studio-prefs-summary")
    people = gr.Dataframe(headers=_headers(texts, lang, PEOPLE), value=[], interactive=False,
                          label=t("prefs.results.people"), elem_id="studio-prefs-people")
    contested = gr.Dataframe(headers=_headers(texts, lang, CONTESTED), value=[], interactive=False,
                             label=t("prefs.results.contested"), elem_id="studio-prefs-contested")
    loc.label(people, "prefs.results.people")
    loc.label(contested, "prefs.results.contested")
    with gr.Row(equal_height=True):
        worded = lambda keys, lg: [(texts.t(lg, f"prefs.export.choice.{k}"), k) for k in keys]  # noqa: E731
        strategy = gr.Radio(worded(STRATEGIES, lang), value="all_pairs", label=t("prefs.export.strategy"),
                            info=t("prefs.export.strategy.info"), elem_id="studio-prefs-strategy")
        loc.add(strategy, lambda lg: gr.update(choices=worded(STRATEGIES, lg), label=texts.t(lg, "prefs.export.strategy"),
                                               info=texts.t(lg, "prefs.export.strategy.info")))
        fmt = gr.Radio(worded(("dpo", "kto"), lang), value="dpo", label=t("prefs.export.format"),
                       elem_id="studio-prefs-format")
        loc.add(fmt, lambda lg: gr.update(choices=worded(("dpo", "kto"), lg), label=texts.t(lg, "prefs.export.format")))
        conversational = loc.label(gr.Checkbox(label=t("prefs.export.conversational")), "prefs.export.conversational")
        name = loc.label(gr.Textbox(label=t("prefs.export.name"), elem_id="studio-prefs-export-name"),
                         "prefs.export.name")
        export = loc.value(gr.Button(t("prefs.export.go"), variant="primary", elem_id="studio-prefs-export"),
                           "prefs.export.go")
    exported = gr.Markdown("", elem_id="studio-prefs-exported")
    files = gr.File(label="JSONL / Parquet", file_count="multiple", interactive=False, elem_id="studio-prefs-files")

    def refresh(current):
        names = [s["name"] for s in engine.prefs.task_sets()]
        return gr.update(choices=names, value=current if current in names else (names[0] if names else None))

    tab.select(refresh, [task_set], [task_set], api_visibility="private", show_progress="hidden")

    def on_show(lang, name):
        try:
            state = engine.prefs.progress(name or "")
            report = engine.prefs.agreement(name or "")
        except StudioError as exc:
            return error_text(texts, lang, exc), _table(texts, lang, PEOPLE, []), _table(texts, lang, CONTESTED, [])
        alpha = texts.t(lang, "prefs.results.alpha_none") if report.get("alpha") is None else f"{report['alpha']:.3f}"
        line = texts.t(lang, "prefs.results.summary", items=state["items"], complete=state["complete"],
                       rankings=state["rankings"], overlap=state["overlap"], alpha=alpha)
        if report.get("judge") and report["judge"].get("mean") is not None:
            line += "  \n" + texts.t(lang, "prefs.results.judge", tau=f"{report['judge']['mean']:.2f}")
        agree = report.get("annotators", {})
        rows = [[a["annotator"], a["ranked"] or 0, a["skipped"] or 0, a["flagged"] or 0,
                 _fmt(agree.get(a["annotator"]))] for a in state["annotators"]]
        worst = [[c["item_id"], c["prompt"][:80], _fmt(c.get("w")), c.get("annotators")]
                 for c in report.get("contested", [])]
        return line, _table(texts, lang, PEOPLE, rows), _table(texts, lang, CONTESTED, worst)

    show.click(on_show, [ui.lang, task_set], [summary, people, contested], api_visibility="private")

    def on_export(lang, name, strategy, fmt, conversational, dataset):
        try:
            result = engine.prefs.export(name or "", strategy=strategy, fmt=fmt, conversational=bool(conversational),
                                         name=(dataset or "").strip() or None)
        except StudioError as exc:
            return error_text(texts, lang, exc), None
        return (texts.t(lang, "prefs.export.done", rows=result["rows"], items=result["items"],
                        dropped=result["dropped"], dataset=result["dataset"]), [result["jsonl"], result["parquet"]])

    export.click(on_export, [ui.lang, task_set, strategy, fmt, conversational, name], [exported, files],
                 api_visibility="private")


def _headers(texts: Any, lang: str, columns: tuple) -> list[str]:
    return [texts.t(lang, f"prefs.col.{c}") for c in columns]


def _table(texts: Any, lang: str, columns: tuple, rows: list[list]) -> dict:
    """A results table's value with its headers in `lang`."""
    return {"headers": _headers(texts, lang, columns), "data": rows}


def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("tau", value.get("mean"))
    return "—" if value is None else f"{float(value):.2f}"

