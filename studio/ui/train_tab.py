"""The Train tab: pick a model, data and method, set hyperparameters, start a run and watch it live.

Widget values become a recipe dict, `studio.config.parse_recipe` validates it and
`Engine.start_training` queues it; the run id lives in a per-user `gr.State`. While a run is
watched, a `gr.Timer` polls `Engine.run_status` and redraws the progress bar, the loss chart and
the log tail; it switches itself off once the run has ended. Reopening the page picks the most
recent active run up again. Hyperparameter widgets are drawn from the settings dataclasses
(`studio.ui.fields`), so this module names only which fields are "main" and which "advanced".
The method dropdown, its fits verdict, the comparison table and the suggestion are
`studio.ui.method_picker`'s; this module hands it the recipe the widgets describe.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from studio.config import DataConfig, Recipe, ResourcesConfig, TrainConfig, parse_recipe
from studio.errors import StudioError
from studio.stages import STAGES
from studio.stages.base import stage_sections
from studio.ui.charts import loss_figure, progress_html, queue_message, samples_table
from studio.ui.metric_charts import confusion_figure, metrics_figure
from studio.ui.common import error_notice, UiShared, log_text, pick_default
from studio.ui.fields import FieldWidget, collect_sections, draw_fields, field_specs
from studio.ui.guide_panel import GuideView, build_guide, wire_guide
from studio.ui.method_picker import DEFAULT_METHOD, MethodPickerView, build_method_picker, wire_method_picker

MAIN_DATA = ("max_length", "validation")
MAIN_TRAIN = ("epochs", "max_steps", "lr", "batch_size", "grad_accum", "eval_every", "precision")
DEFAULT_MODEL = "smollm2-135m-instruct"
PICKER_FIELDS = ("batch_size", "micro_batch_size", "max_length", "precision", "gradient_checkpointing", "token_metrics",
                 "devices", "strategy")  # redraw the verdict
POLL_SECONDS = 1.5
ENDED = ("completed", "failed", "cancelled", "interrupted")


@dataclass
class TrainView:
    model: gr.Dropdown
    stage: gr.Dropdown
    dataset: gr.Dropdown
    upload: gr.UploadButton
    picker: MethodPickerView
    fields: list[FieldWidget]
    name: gr.Textbox
    start: gr.Button
    cancel: gr.Button
    message: gr.Markdown
    progress: gr.HTML
    chart: gr.Plot
    metrics_chart: gr.Plot
    confusion: gr.Plot
    samples: gr.Dataframe
    log: gr.Textbox
    timer: gr.Timer
    run_id: gr.State
    seen_points: gr.State
    skip_eval: gr.Button
    mode: gr.Radio
    full: gr.Column
    guide: GuideView
    validation_note: gr.Markdown

    def form(self) -> list:
        """Every component `form_values` may set: model, stage, method, dataset, name and every setting."""
        return [self.model, self.stage, self.method, self.dataset, self.name, *(f.component for f in self.fields),
                *(f.component for fs in self.method_fields.values() for f in fs)]

    @property
    def method(self) -> gr.Dropdown:
        return self.picker.method

    @property
    def method_fields(self) -> dict[str, list[FieldWidget]]:
        return self.picker.fields

def recipe_dict(view: TrainView, values: dict) -> dict:
    """The recipe (plain dict) that the widgets describe; validation is parse_recipe's job."""
    method = values[view.method] or DEFAULT_METHOD
    sections = collect_sections(view.fields + view.method_fields.get(method, []), values)
    dataset = values[view.dataset] or ""
    name = (values[view.name] or "").strip() or f"{Path(str(dataset)).stem or 'run'}-{method}"
    stage = values[view.stage] or "sft"
    for other in stage_sections():  # a stage's own section (`Stage.settings_cls`) goes in only for that stage
        if other != stage:
            sections.pop(other, None)
    return {"name": name, "model": (values[view.model] or "").strip(), "stage": stage,
            "method": {"name": method, **sections.pop("method", {})},
            "data": {"dataset": dataset, **sections.pop("data", {})},
            "train": sections.pop("train", {}), **sections}


def form_values(view: TrainView, recipe: dict) -> dict:
    """Component -> value that shows `recipe` (a plain dict, as `recipe_dict` makes it) in the form; a setting the
    recipe leaves out shows its default. The inverse of `recipe_dict`."""
    method = (recipe.get("method") or {}).get("name") or DEFAULT_METHOD
    values = {view.model: recipe.get("model"), view.stage: recipe.get("stage") or "sft", view.method: method,
              view.dataset: (recipe.get("data") or {}).get("dataset"), view.name: recipe.get("name") or ""}
    sections = {**recipe, "method": recipe.get("method") or {}}
    for field in view.fields + view.method_fields.get(method, []):
        section = sections.get(field.section) if field.section else recipe
        if isinstance(section, dict) and field.name in section:
            value = section[field.name]
            values[field.component] = ", ".join(map(str, value)) if isinstance(value, list) else value
        else:
            values[field.component] = field.meta.get("default")
    return values


def cancel_button(status: str | None, texts: Any, lang: str) -> dict:
    """Cancel while a run is queued or running; Force stop while it is stopping after its step; off otherwise."""
    if status == "cancelling":
        return gr.update(value=texts.t(lang, "train.force_stop"), interactive=True)
    return gr.update(value=texts.t(lang, "train.cancel"), interactive=status in ("queued", "running"))


def validation_note(validation: dict | None, texts: Any, lang: str) -> str:
    """For a classifier whose validation rows came out of its training file: its scores run high on phrasings close
    to training rows, and a separate test file gives the honest figure."""
    if not validation or validation.get("source") != "training":
        return ""
    return texts.t(lang, "train.validation_note", rows=validation.get("rows", 0))


def skip_eval_button(status: dict | None) -> dict:
    """'Skip evaluation' shows only while the watched run is evaluating."""
    phase = (status or {}).get("phase") or ""
    return gr.update(visible=phase.startswith("evaluating") and (status or {}).get("status") == "running")


def live_updates(status: dict | None, seen: Any, texts: Any, lang: str) -> tuple:
    """The watched run's progress, charts, confusion, samples, log, timer, cancel, `seen`, skip and note, each only
    when it changed.

    `seen` is what the page already shows ({"points": metric events charted, "shown": each small output's last
    value}); -1 forces a full redraw. An unchanged output is not sent again: the page redraws whatever it gets.
    (Watching a tiny run, Chromium used 0.64 of a core before this and 0.72 after: no measured gain either way.)"""
    full = not isinstance(seen, dict)
    if status is None:
        return (progress_html(None, texts, lang), loss_figure([], texts, lang) if full else gr.skip(),
                metrics_figure([], texts, lang) if full else gr.skip(),
                gr.update(visible=False) if full else gr.skip(),
                samples_table([], texts, lang) if full else gr.skip(),
                "" if full else gr.skip(), gr.Timer(active=False), gr.update(interactive=False), -1,
                gr.update(visible=False), "" if full else gr.skip())
    metrics = status.get("metrics") or []
    grew = full or len(metrics) != seen["points"]
    shown = {} if full else dict(seen["shown"])
    live = status.get("status") not in ENDED
    samples, confusion, validation = status.get("samples") or [], status.get("confusion"), status.get("validation")

    def changed(key, value, update):
        if not full and shown.get(key) == value:
            return gr.skip()
        shown[key] = value
        return update() if callable(update) else update

    def confusion_update():
        drawn = confusion_figure(confusion, texts, lang)
        return gr.update(value=drawn, visible=drawn is not None)

    bar, evaluating = progress_html(status, texts, lang), skip_eval_button(status)
    return (changed("progress", bar, bar), loss_figure(metrics, texts, lang) if grew else gr.skip(),
            metrics_figure(metrics, texts, lang) if grew else gr.skip(),
            changed("confusion", confusion, confusion_update),
            changed("samples", samples, lambda: samples_table(samples, texts, lang)),
            log_text(status.get("log_tail")) if grew or not live else gr.skip(),
            changed("live", live, lambda: gr.Timer(active=live)),
            changed("cancel", status.get("status"), lambda: cancel_button(status.get("status"), texts, lang)),
            {"points": len(metrics), "shown": shown}, changed("skip", evaluating["visible"], evaluating),
            changed("note", validation, lambda: validation_note(validation, texts, lang)))


def _full_form(ui: UiShared, engine: Any) -> tuple:
    """The full form (All settings): model, stage, dataset, the method picker and every setting."""
    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    t = lambda key, **kw: texts.t(lang, key, **kw)  # noqa: E731

    with gr.Row():
        model = loc.label(gr.Dropdown(choices=[], value=None, allow_custom_value=True,
                                      label=t("train.model.label"), info=t("train.model.info"), scale=3,
                                      elem_id="studio-model"),
                          "train.model.label", "train.model.info")
        stages = lambda lg: [(texts.stage_title(lg, cls), name) for name, cls in STAGES.items()]  # noqa: E731
        stage = gr.Dropdown(choices=stages(lang), value="sft", label=t("train.stage.label"),
                            info=t("train.stage.info"), scale=2, elem_id="studio-stage")
        loc.add(stage, lambda lg: gr.update(label=texts.t(lg, "train.stage.label"),
                                            info=texts.t(lg, "train.stage.info"), choices=stages(lg)))
        dataset = loc.label(gr.Dropdown(choices=[], value=None, allow_custom_value=True,
                                        label=t("train.dataset.label"), info=t("train.dataset.info"), scale=3,
                                        elem_id="studio-dataset"),
                            "train.dataset.label", "train.dataset.info")
        upload = loc.label(gr.UploadButton(label=t("train.upload"), file_types=[".jsonl"], file_count="single",
                                           scale=1, size="md", elem_id="studio-upload"), "train.upload")
    from studio.ui.hub_box import build_hub_box

    build_hub_box(engine, ui, model)
    picker = build_method_picker(ui)
    # Settings that only one stage reads (a distillation's teacher, DPO's beta, RL's reward) show only for that stage.
    stage_groups, stage_fields = {}, []
    for name, settings in stage_sections().items():
        with gr.Group(visible=False) as stage_groups[name]:
            stage_fields += draw_fields(field_specs(settings, name), loc, lang, per_row=3)

    main = draw_fields(field_specs(TrainConfig, "train", only=MAIN_TRAIN)
                       + field_specs(DataConfig, "data", only=MAIN_DATA), loc, lang, per_row=5)
    with loc.label(gr.Accordion(t("train.advanced"), open=False), "train.advanced"):
        advanced = draw_fields(field_specs(TrainConfig, "train", skip=MAIN_TRAIN)
                               + field_specs(DataConfig, "data", skip=MAIN_DATA + ("dataset",))
                               + field_specs(Recipe, "", locale_section="recipe", only=("trust_remote_code",))
                               + field_specs(ResourcesConfig, "resources"),
                               loc, lang, per_row=4)
    return model, stage, dataset, upload, picker, stage_groups, main + advanced + stage_fields


def build_train(engine: Any, ui: UiShared) -> TrainView:
    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    t = lambda key, **kw: texts.t(lang, key, **kw)  # noqa: E731

    modes = lambda lg: [(texts.t(lg, "train.mode.simple"), "simple"), (texts.t(lg, "train.mode.all"), "all")]  # noqa: E731
    mode = gr.Radio(choices=modes(lang), value="simple", show_label=False, container=False,
                    elem_id="studio-train-mode")
    loc.add(mode, lambda lg: gr.update(choices=modes(lg)))
    guide = build_guide(engine, ui)
    with gr.Column(visible=False, elem_id="studio-full-form") as full:
        model, stage, dataset, upload, picker, stage_groups, fields = _full_form(ui, engine)
    with gr.Row(equal_height=True):
        run_name = loc.label(gr.Textbox(label=t("train.name.label"), placeholder=t("train.name.placeholder"),
                                        scale=3, elem_id="studio-run-name"),
                             "train.name.label", placeholder_key="train.name.placeholder")
        start = loc.value(gr.Button(t("train.start"), variant="primary", scale=1, elem_id="studio-start"),
                          "train.start")
        cancel = loc.value(gr.Button(t("train.cancel"), variant="stop", scale=1, interactive=False,
                                     elem_id="studio-cancel"), "train.cancel")
        skip_eval = loc.value(gr.Button(t("train.skip_eval"), scale=1, visible=False, elem_id="studio-skip-eval"),
                              "train.skip_eval")
    message = gr.Markdown("", elem_id="studio-train-message")
    progress = gr.HTML(progress_html(None, texts, lang), elem_id="studio-progress")
    chart = loc.label(gr.Plot(value=loss_figure([], texts, lang), label=t("chart.title"), elem_id="studio-loss"),
                      "chart.title")
    with loc.label(gr.Accordion(t("train.metrics"), open=True, elem_id="studio-metrics-box"), "train.metrics"):
        metrics_chart = gr.Plot(value=metrics_figure([], texts, lang), show_label=False, elem_id="studio-metrics")
        confusion = gr.Plot(value=None, show_label=False, visible=False, elem_id="studio-confusion")
        validation_note = gr.Markdown("", elem_id="studio-validation-note")
        samples = loc.add(gr.Dataframe(value=samples_table([], texts, lang), interactive=False, wrap=True,
                                       column_widths=["34%", "33%", "33%"], label=t("train.samples"),
                                       elem_id="studio-samples"),
                          lambda lg: gr.update(label=texts.t(lg, "train.samples")))
    log = loc.label(gr.Textbox(label=t("train.log"), lines=8, max_lines=8, autoscroll=True, interactive=False,
                               elem_id="studio-log"), "train.log")
    timer = gr.Timer(POLL_SECONDS, active=False)
    view = TrainView(model, stage, dataset, upload, picker, fields, run_name, start, cancel,
                     message, progress, chart, metrics_chart, confusion, samples, log, timer, gr.State(None),
                     gr.State(-1), skip_eval, mode, full, guide, validation_note)
    _wire(view, engine, ui)
    wire_guide(guide, engine, ui, lambda recipe: form_values(view, recipe), view.form(), view.method, view.message)
    mode.change(lambda m: (gr.update(visible=m != "all"), gr.update(visible=m == "all")), [mode], [guide.panel, full],
                api_visibility="private", show_progress="hidden")
    groups = list(stage_groups.items())
    stage.change(lambda name: [gr.update(visible=name == n) for n, _ in groups], [stage], [g for _, g in groups],
                 api_visibility="private")
    return view


def _wire(view: TrainView, engine: Any, ui: UiShared) -> None:
    texts = ui.texts

    def on_upload(path, lang):
        try:
            spec = engine.import_dataset_file(str(path))
        except StudioError as exc:
            return gr.skip(), error_notice(texts, lang, exc)
        return (gr.update(choices=engine.dataset_choices(), value=spec),
                texts.t(lang, "msg.dataset_imported", name=spec))

    view.upload.upload(on_upload, [view.upload, ui.lang], [view.dataset, view.message], api_visibility="private")

    def redraw(run_id, lang, seen):
        status = None
        if run_id:
            try:
                status = engine.run_status(run_id)
            except StudioError:
                status = None
        return live_updates(status, seen, texts, lang)

    live_outputs = [view.progress, view.chart, view.metrics_chart, view.confusion, view.samples, view.log, view.timer,
                    view.cancel, view.seen_points, view.skip_eval, view.validation_note]
    view.timer.tick(redraw, [view.run_id, ui.lang, view.seen_points], live_outputs, concurrency_limit=None,
                    show_progress="hidden", api_visibility="private")
    ui.on_language(lambda lang, run_id: redraw(run_id, lang, -1), [view.run_id], live_outputs)

    inputs = {view.model, view.stage, view.dataset, view.method, view.name, ui.lang,
              *(f.component for f in view.fields),
              *(f.component for fs in view.method_fields.values() for f in fs)}

    def on_start(values: dict):
        lang = values[ui.lang]
        try:
            run_id = engine.start_training(parse_recipe(recipe_dict(view, values)))
            status = engine.run_status(run_id)
        except StudioError as exc:
            return {view.message: error_notice(texts, lang, exc)}
        ahead = status.get("queue_position") or 0
        note = queue_message(texts, lang, ahead) if ahead else texts.t(lang, "msg.started", name=status["name"])
        return {view.run_id: run_id, view.message: note, **dict(zip(live_outputs, redraw(run_id, lang, -1)))}

    retriggers = [view.model, view.stage] + [f.component for f in view.fields if f.name in PICKER_FIELDS]
    wire_method_picker(view.picker, engine, ui, lambda values: parse_recipe(recipe_dict(view, values)), inputs,
                       retriggers)
    view.start.click(on_start, inputs, [view.run_id, view.message, *live_outputs], api_visibility="private")

    def on_apply_fix(values: dict):
        """The picked fix made in the form; the verdict redraws itself from the changed settings."""
        lang, shown = values[ui.lang], values[view.picker.shown] or {}
        fixes = ((shown.get("verdict") or {}).get("row") or {}).get("fixes") or []
        index = values[view.picker.fix]
        if index is None or not 0 <= int(index) < len(fixes):
            return {view.message: texts.t(lang, "picker.fix.none")}
        kind, value = fixes[int(index)]
        try:
            recipe = engine.apply_fix(recipe_dict(view, values), kind, value)
        except StudioError as exc:
            return {view.message: error_notice(texts, lang, exc)}
        return {**form_values(view, recipe), view.message: ""}

    view.picker.apply.click(on_apply_fix, inputs | {view.picker.shown, view.picker.fix}, [*view.form(), view.message],
                            api_visibility="private")

    def on_cancel(run_id, lang):
        """Cancel stops after the current step; pressed again while stopping (now 'Force stop'), it ends the run."""
        if not run_id:
            return gr.skip()
        try:
            force = engine.run_status(run_id)["status"] == "cancelling"
            engine.cancel(run_id, force=force)
        except StudioError as exc:
            return error_notice(texts, lang, exc)
        return texts.t(lang, "msg.force_requested" if force else "msg.cancel_requested")

    view.cancel.click(on_cancel, [view.run_id, ui.lang], [view.message], api_visibility="private")

    def on_skip_eval(run_id, lang):
        if not run_id:
            return gr.skip(), gr.skip()
        try:
            engine.skip_evaluation(run_id)
        except StudioError as exc:
            return error_notice(texts, lang, exc), gr.skip()
        return texts.t(lang, "msg.skip_eval_requested"), gr.update(visible=False)

    view.skip_eval.click(on_skip_eval, [view.run_id, ui.lang], [view.message, view.skip_eval],
                         api_visibility="private")

    def on_load(lang):
        """Fill the pickers with what exists now and watch the most recent active run, if any."""
        models, datasets = engine.model_choices(), engine.dataset_choices()
        active = engine.active_run()
        run_id = active["id"] if active else None
        return (gr.update(choices=models, value=pick_default(models, DEFAULT_MODEL)),
                gr.update(choices=datasets, value=pick_default(datasets, "sample")),
                run_id, *redraw(run_id, lang, -1))

    ui.demo.load(on_load, [ui.lang], [view.model, view.dataset, view.run_id, *live_outputs],
                 api_visibility="private")
