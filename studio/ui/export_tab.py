"""The Export tab: from a finished run (or any model) to files people can run anywhere, and what that cost.

Left, the request: the source (finished runs, then models) with a line saying what it is; a run whose method
cannot be merged says why and is offered the 'adapter' format only. The format radio explains each format in one
line and shows only that format's options (dtype, GGUF type, 4-bit type and double quantisation, calibration
texts, the Modelfile's system prompt); the output folder's placeholder is the default the engine would pick (a new
`-2`, `-3`... folder when the default holds a previous export, unless 'Replace the previous export' is ticked), and
a request the engine would refuse (GGUF for an unsupported architecture, a folder holding other files or a previous
export without that box ticked) says so before anything runs.
Export starts a background job (`engine.exports.start`); a 1 s timer redraws its bar until it ends. Right, the
result: the files written, the report (table, chart, samples side by side; drawn by
`studio.ui.export_report_view`), a zip download and a push to the Hub. Below, the previous exports; a row shows
its report. Handlers are module functions of plain values so they are tested without a browser.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from studio.errors import StudioError
from studio.export.merge import DTYPES
from studio.export.pipeline import BNB4_TYPES, FORMATS
from studio.export.source import CAUSAL
from studio.export.staging import check_out
from studio.models.refs import run_spec
from studio.ui.common import error_notice, UiShared
from studio.ui.export_report_view import completed_export, job_html, previous_table, show_export

QUANT_FALLBACK = ("F16", "BF16", "Q8_0", "Q5_0", "Q5_1", "Q4_0", "Q4_1")
# Which format shows which option widget.
OPTION_FORMAT = {"dtype": "merged", "gguf_quant": "gguf", "bnb4_quant": "bnb4", "double_quant": "bnb4",
                 "calibration": "int8", "system": "gguf"}


def gguf_types() -> tuple[str, ...]:
    try:
        from studio.export.gguf import QUANT_TYPES
    except ImportError:
        return QUANT_FALLBACK
    return tuple(QUANT_TYPES)


@dataclass
class ExportView:
    source: gr.Dropdown
    refresh: gr.Button
    describe: gr.Markdown
    format: gr.Radio
    explain: gr.Markdown
    options: dict[str, Any]  # OPTION_FORMAT's widgets by name
    out: gr.Textbox
    overwrite: gr.Checkbox
    report: gr.Checkbox
    heldout: gr.File
    start: gr.Button
    cancel: gr.Button
    notice: gr.Markdown
    progress: gr.HTML
    timer: gr.Timer
    job: gr.State
    result: gr.Column
    files: gr.Markdown
    table: gr.Dataframe
    chart: gr.Plot
    samples: gr.Dataframe
    zip: gr.Button
    download: gr.DownloadButton
    hub_repo: gr.Textbox
    hub_token: gr.Textbox
    hub_private: gr.Checkbox
    hub_push: gr.Button
    hub_notice: gr.Markdown
    shown: gr.State  # the manifest whose result is shown
    previous: gr.Dataframe
    listed: gr.State  # the previous exports' folders, in table order


# --- handlers of plain values ----------------------------------------------------------------------------
def source_choices(runs: list[dict], models: list[str], texts: Any, lang: str) -> list[tuple[str, str]]:
    """Finished runs first (as 'run:<id>', labelled name · method · id), then models by name."""
    return [(texts.t(lang, "export.source.run", name=r["name"], method=r["method"], id=r["id"]),
             run_spec(r["id"])) for r in runs] + [(m, m) for m in models]


def allowed_formats(source: Any) -> tuple[str, ...]:
    """The formats the engine accepts for `source`: adapter only when the method cannot merge, no quantised
    format for a classifier or seq2seq model, no adapter without one."""
    if source.is_run and not source.mergeable:
        return ("adapter",)
    formats = FORMATS if source.head == CAUSAL else ("merged", "adapter")
    return tuple(f for f in formats if f != "adapter" or source.result_kind == "adapter")


def describe_source(exports: Any, spec: str | None, texts: Any, lang: str) -> tuple[str, tuple[str, ...]]:
    """(one or two markdown lines about the source, the formats it may export to); `exports` is the engine's
    export service."""
    if not spec:
        return texts.t(lang, "export.describe.none"), FORMATS
    try:
        source = exports.source(spec)
    except StudioError as exc:
        return error_notice(texts, lang, exc), FORMATS
    if source.is_run:
        run = source.run
        lines = [texts.t(lang, "export.describe.run", name=run.get("name") or run["id"], base=source.base,
                         method=source.method, stage=run.get("stage") or "sft")]
    else:
        lines = [texts.t(lang, "export.describe.model", name=source.spec)]
    if source.is_run and not source.mergeable:
        why = texts.get(lang, f"export.why.{source.method}") or source.why_not_mergeable()
        lines.append(texts.t(lang, "export.describe.not_mergeable", method=source.method, why=why))
    elif source.head != CAUSAL:
        lines.append(texts.t(lang, "export.describe.not_causal", head=source.head))
    elif source.is_run and source.result_kind == "model":
        lines.append(texts.t(lang, "export.describe.full_model"))
    return "  \n".join(lines), allowed_formats(source)


def format_choices(formats: tuple[str, ...], texts: Any, lang: str) -> list[tuple[str, str]]:
    return [(texts.t(lang, f"export.format.{f}"), f) for f in formats]


def option_visibility(fmt: str | None) -> dict[str, bool]:
    return {name: fmt == owner for name, owner in OPTION_FORMAT.items()}


def _upload_path(value: Any) -> str | None:
    if not value:
        return None
    return str(value if isinstance(value, (str, Path)) else value.name)


def export_request(source: str | None, fmt: str | None, options: dict[str, Any], out: str | None, report: bool,
                   heldout: Any, overwrite: bool = False) -> dict:
    """The widgets' values as an `ExportRequest` dict; options of other formats are left out."""
    fmt = fmt or ""
    return {"source": source or "", "format": fmt, "out": (out or "").strip() or None, "overwrite": bool(overwrite),
            "quant": options.get("gguf_quant") if fmt == "gguf" else options.get("bnb4_quant") if fmt == "bnb4"
            else None, "dtype": options.get("dtype") or "fp16", "double_quant": bool(options.get("double_quant")),
            "calibration": _upload_path(options.get("calibration")) if fmt == "int8" else None,
            "report": bool(report), "heldout": _upload_path(heldout),
            "system": ((options.get("system") or "").strip() or None) if fmt == "gguf" else None}


def refusal(texts: Any, lang: str, exc: StudioError) -> str:
    """An engine refusal's sentence in `lang`, as this tab words it: a previous export in the folder is replaced by
    ticking the box (the engine's own sentence names the CLI's --overwrite)."""
    if exc.key == "export.staging.previous_export":
        return texts.t(lang, "export.out.previous", out=exc.params.get("out", ""))
    return texts.error(lang, exc)


def refusal_text(texts: Any, lang: str, exc: StudioError) -> str:
    """`refusal` as the message shown under a button or a plan (markdown)."""
    return texts.t(lang, "msg.error", message=refusal(texts, lang, exc))


def check_plan(exports: Any, request: dict, texts: Any, lang: str) -> tuple[str, str]:
    """(the folder the request would write to when 'out' is left empty, '' or why the engine would refuse it,
    the folder typed in 'out' included), read without loading any weights."""
    if not request["source"] or not request["format"]:
        return "", ""
    try:
        checked, _ = exports.check({**request, "out": None, "heldout": None})
    except StudioError as exc:
        return "", refusal_text(texts, lang, exc)
    try:
        if request.get("out"):
            check_out(Path(request["out"]), bool(request.get("overwrite")))
    except StudioError as exc:
        return checked.out, refusal_text(texts, lang, exc)
    return checked.out, ""


def start_export(engine: Any, request: dict, texts: Any, lang: str) -> tuple[str | None, str]:
    """(job id or None, the message under the button: started, or the refusal in `lang`)."""
    try:
        job_id = engine.exports.start(request)
    except StudioError as exc:
        return None, refusal_text(texts, lang, exc)
    return job_id, texts.t(lang, "export.started")


def poll_export(engine: Any, job_id: str | None, texts: Any, lang: str) -> tuple[dict | None, str]:
    """(the job, its bar with the translated failure when it failed or was cancelled)."""
    if not job_id:
        return None, job_html(None, texts, lang)
    job = engine.exports.job(job_id)
    failure = engine.exports.failure(job_id) if job["state"] in ("failed", "cancelled") else None
    return job, job_html(job, texts, lang, refusal(texts, lang, failure) if failure else None)


# --- layout -------------------------------------------------------------------------------------------------
def _options(ui: UiShared) -> dict[str, Any]:
    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    t = lambda key: texts.t(lang, key)  # noqa: E731
    shown = option_visibility("merged")
    quants = gguf_types()
    return {
        "dtype": loc.label(gr.Radio(list(DTYPES), value="fp16", label=t("export.dtype"), info=t("export.dtype.info"),
                                    visible=shown["dtype"], elem_id="studio-export-dtype"),
                           "export.dtype", "export.dtype.info"),
        "gguf_quant": loc.label(gr.Dropdown(list(quants), value="Q8_0" if "Q8_0" in quants else quants[0],
                                            label=t("export.quant.gguf"), info=t("export.quant.gguf.info"),
                                            visible=False, elem_id="studio-export-gguf-quant"),
                                "export.quant.gguf", "export.quant.gguf.info"),
        "bnb4_quant": loc.label(gr.Radio(list(BNB4_TYPES), value=BNB4_TYPES[0], label=t("export.quant.bnb4"),
                                         info=t("export.quant.bnb4.info"), visible=False,
                                         elem_id="studio-export-bnb4-quant"),
                                "export.quant.bnb4", "export.quant.bnb4.info"),
        "double_quant": loc.label(gr.Checkbox(value=True, label=t("export.double_quant"), visible=False,
                                              elem_id="studio-export-double-quant"), "export.double_quant"),
        "calibration": loc.label(gr.File(label=t("export.calibration"), file_types=[".txt", ".jsonl", ".csv"],
                                         type="filepath", visible=False, elem_id="studio-export-calibration"),
                                 "export.calibration"),
        "system": loc.label(gr.Textbox(label=t("export.system"), placeholder=t("export.system.placeholder"),
                                       lines=2, visible=False, elem_id="studio-export-system"),
                            "export.system", placeholder_key="export.system.placeholder"),
    }


def build_export(engine: Any, ui: UiShared, tab: Any) -> ExportView:
    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    t = lambda key: texts.t(lang, key)  # noqa: E731

    loc.value(gr.Markdown(t("export.intro")), "export.intro")
    with gr.Row():
        with gr.Column(scale=3, min_width=340):
            with gr.Row():
                source = loc.label(gr.Dropdown(choices=[], value=None, label=t("export.source"),
                                               info=t("export.source.info"), scale=4, elem_id="studio-export-source"),
                                   "export.source", "export.source.info")
                refresh = loc.value(gr.Button(t("export.refresh"), scale=1, size="md", elem_id="studio-export-refresh"),
                                    "export.refresh")
            describe = gr.Markdown(t("export.describe.none"), elem_id="studio-export-describe")
            fmt = loc.label(gr.Radio(format_choices(FORMATS, texts, lang), value="merged", label=t("export.format"),
                                     elem_id="studio-export-format"), "export.format")
            explain = gr.Markdown(t("export.explain.merged"), elem_id="studio-export-explain",
                                  elem_classes=["studio-method-summary"])
            options = _options(ui)
            out = loc.label(gr.Textbox(label=t("export.out"), info=t("export.out.info"), elem_id="studio-export-out"),
                            "export.out", "export.out.info")
            overwrite = loc.label(gr.Checkbox(value=False, label=t("export.overwrite"),
                                              info=t("export.overwrite.info"), elem_id="studio-export-overwrite"),
                                  "export.overwrite", "export.overwrite.info")
            report = loc.label(gr.Checkbox(value=True, label=t("export.report"), elem_id="studio-export-report"),
                               "export.report")
            with loc.label(gr.Accordion(t("export.options"), open=False), "export.options"):
                heldout = loc.label(gr.File(label=t("export.heldout"), file_types=[".txt"], type="filepath",
                                            elem_id="studio-export-heldout"), "export.heldout")
            with gr.Row():
                start = loc.value(gr.Button(t("export.start"), variant="primary", elem_id="studio-export-start"),
                                  "export.start")
                cancel = loc.value(gr.Button(t("export.cancel"), variant="stop", elem_id="studio-export-cancel"),
                                   "export.cancel")
            notice = gr.Markdown("", elem_id="studio-export-notice")
        with gr.Column(scale=4):
            progress = gr.HTML(job_html(None, texts, lang), elem_id="studio-export-progress")
            with gr.Column(visible=False, elem_id="studio-export-result") as result:
                files = gr.Markdown("", elem_id="studio-export-files")
                table = loc.label(gr.Dataframe(value=None, interactive=False, wrap=True, label=t("export.table"),
                                               elem_id="studio-export-table"), "export.table")
                chart = loc.label(gr.Plot(label=t("export.chart"), elem_id="studio-export-chart"), "export.chart")
                samples = loc.label(gr.Dataframe(value=None, interactive=False, wrap=True, label=t("export.samples"),
                                                 elem_id="studio-export-samples"), "export.samples")
                with gr.Row():
                    zip_button = loc.value(gr.Button(t("export.zip"), elem_id="studio-export-zip"), "export.zip")
                    download = loc.value(gr.DownloadButton(t("export.download"), visible=False,
                                                           elem_id="studio-export-download"), "export.download")
                with loc.label(gr.Accordion(t("export.hub"), open=False, elem_id="studio-export-hub"), "export.hub"):
                    with gr.Row(equal_height=True):
                        hub_repo = loc.label(gr.Textbox(label=t("export.hub.repo"), placeholder="my-team/support-bot",
                                                        elem_id="studio-export-hub-repo"), "export.hub.repo")
                        hub_token = loc.label(gr.Textbox(label=t("export.hub.token"), type="password",
                                                         elem_id="studio-export-hub-token"), "export.hub.token")
                    with gr.Row(equal_height=True):
                        hub_private = loc.label(gr.Checkbox(value=True, label=t("export.hub.private")),
                                                "export.hub.private")
                        hub_push = loc.value(gr.Button(t("export.hub.push"), elem_id="studio-export-hub-push"),
                                             "export.hub.push")
                    hub_notice = gr.Markdown("", elem_id="studio-export-hub-notice")
    previous = loc.label(gr.Dataframe(value=previous_table([], texts, lang), interactive=False, wrap=True,
                                      label=t("export.previous"), elem_id="studio-export-previous"), "export.previous")
    loc.value(gr.Markdown(t("export.previous.info"), elem_classes=["studio-muted"]), "export.previous.info")
    view = ExportView(source, refresh, describe, fmt, explain, options, out, overwrite, report, heldout, start, cancel,
                      notice, progress, gr.Timer(1.0, active=False), gr.State(None), result, files, table, chart,
                      samples, zip_button, download, hub_repo, hub_token, hub_private, hub_push, hub_notice,
                      gr.State(None), previous, gr.State([]))
    _wire(view, engine, ui, tab)
    return view


# --- wiring -------------------------------------------------------------------------------------------------
def _wire(view: ExportView, engine: Any, ui: UiShared, tab: Any) -> None:
    texts = ui.texts
    names = list(view.options)
    option_widgets = [view.options[n] for n in names]
    request_inputs = [view.source, view.format, *option_widgets, view.out, view.report, view.heldout,
                      view.overwrite]
    result_outputs = [view.result, view.files, view.table, view.chart, view.samples, view.download]

    def request_of(source, fmt, *rest):
        *values, out, report, heldout, overwrite = rest
        return export_request(source, fmt, dict(zip(names, values)), out, report, heldout, overwrite)

    def on_refresh(lang, spec):
        choices = source_choices(engine.finished_runs(), engine.model_choices(), texts, lang)
        values = [value for _, value in choices]
        manifests = engine.exports.exports()
        return (gr.update(choices=choices, value=spec if spec in values else (values[0] if values else None)),
                previous_table(manifests, texts, lang), [m["path"] for m in manifests])

    refresh_outputs = [view.source, view.previous, view.listed]
    for trigger in (view.refresh.click, tab.select, ui.demo.load):
        trigger(on_refresh, [ui.lang, view.source], refresh_outputs, api_visibility="private",
                show_progress="hidden")

    def on_source(lang, spec, fmt):
        line, formats = describe_source(engine.exports, spec, texts, lang)
        value = fmt if fmt in formats else formats[0]
        return line, gr.update(choices=format_choices(formats, texts, lang), value=value)

    view.source.change(on_source, [ui.lang, view.source, view.format], [view.describe, view.format],
                       api_visibility="private", show_progress="hidden")

    def on_plan(lang, *values):
        request = request_of(*values)
        default, problem = check_plan(engine.exports, request, texts, lang)
        shown = option_visibility(request["format"])
        explain = texts.t(lang, f"export.explain.{request['format']}") if request["format"] else ""
        return (explain + (f"\n\n{problem}" if problem else ""), gr.update(placeholder=default),
                *(gr.update(visible=shown[n]) for n in names))

    plan_outputs = [view.explain, view.out, *option_widgets]
    # The folder is checked when the user leaves the box (not at every keystroke) and when the box is ticked.
    for trigger in (view.format.change, view.source.change, view.options["gguf_quant"].change,
                    view.options["bnb4_quant"].change, view.overwrite.change, view.out.blur, view.out.submit):
        trigger(on_plan, [ui.lang, *request_inputs], plan_outputs, api_visibility="private", show_progress="hidden")

    def on_start(lang, *values):
        job_id, message = start_export(engine, request_of(*values), texts, lang)
        if job_id is None:
            return gr.skip(), gr.skip(), message, gr.skip()
        return job_id, gr.Timer(active=True), message, poll_export(engine, job_id, texts, lang)[1]

    view.start.click(on_start, [ui.lang, *request_inputs], [view.job, view.timer, view.notice, view.progress],
                     api_visibility="private")

    def on_reopen(lang, job_id):
        """A reopened page follows the export still running in this app (its bar, Cancel, the result)."""
        running = engine.exports.running()
        if job_id or not running:
            return gr.skip(), gr.skip(), gr.skip()
        return running[0]["id"], gr.Timer(active=True), poll_export(engine, running[0]["id"], texts, lang)[1]

    ui.demo.load(on_reopen, [ui.lang, view.job], [view.job, view.timer, view.progress], api_visibility="private",
                 show_progress="hidden")

    def on_tick(lang, job_id):
        job, bar = poll_export(engine, job_id, texts, lang)
        manifest = completed_export(job)
        if manifest is None:  # still running, or ended without an export
            active = job is not None and job["state"] in ("queued", "running")
            return gr.Timer(active=active), bar, *(gr.skip() for _ in range(len(result_outputs) + 4))
        manifests = engine.exports.exports()
        return (gr.Timer(active=False), bar, manifest, *show_export(manifest, texts, lang),
                previous_table(manifests, texts, lang), [m["path"] for m in manifests], "")

    view.timer.tick(on_tick, [ui.lang, view.job], [view.timer, view.progress, view.shown, *result_outputs,
                                                   view.previous, view.listed, view.notice],
                    api_visibility="private", show_progress="hidden")

    def on_cancel(lang, job_id):
        if not job_id:
            return texts.t(lang, "export.job.none")
        try:
            engine.exports.cancel(job_id)
        except StudioError as exc:
            return error_notice(texts, lang, exc)
        return texts.t(lang, "export.cancel_asked")

    view.cancel.click(on_cancel, [ui.lang, view.job], [view.notice], api_visibility="private")

    def on_row(lang, listed, evt: gr.SelectData):
        from studio.export.service import read_manifest

        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        if row is None or row >= len(listed or []):
            return gr.skip(), *(gr.skip() for _ in result_outputs)
        manifest = read_manifest(Path(listed[row]))
        return manifest, *show_export(manifest, texts, lang)

    view.previous.select(on_row, [ui.lang, view.listed], [view.shown, *result_outputs], api_visibility="private")

    def on_zip(lang, manifest):
        from studio.export.hub import zip_export

        try:
            path = zip_export(Path(manifest["path"]))
        except StudioError as exc:
            return gr.skip(), error_notice(texts, lang, exc)
        return gr.update(value=str(path), visible=True), ""

    view.zip.click(on_zip, [ui.lang, view.shown], [view.download, view.hub_notice], api_visibility="private")

    def on_push(lang, manifest, repo, token, private):
        from studio.export.hub import push_to_hub

        try:
            url = push_to_hub(Path(manifest["path"]), repo, token, private=bool(private))
        except StudioError as exc:
            return error_notice(texts, lang, exc)
        return texts.t(lang, "export.hub.pushed", url=url)

    view.hub_push.click(on_push, [ui.lang, view.shown, view.hub_repo, view.hub_token, view.hub_private],
                        [view.hub_notice], api_visibility="private")

    ui.on_language(on_refresh, [view.source], refresh_outputs)
    ui.on_language(on_source, [view.source, view.format], [view.describe, view.format])
    ui.on_language(on_plan, request_inputs, plan_outputs)
    ui.on_language(lambda lang, job_id: poll_export(engine, job_id, texts, lang)[1], [view.job], [view.progress])
    # The zip already prepared stays offered: the download button is left out of the redraw.
    ui.on_language(lambda lang, manifest: show_export(manifest, texts, lang)[:-1], [view.shown], result_outputs[:-1])
