"""The Data tab: upload a file, check the guessed format and mapping, preview the loss, clean, split, save.

An upload goes to `studio.data.builder.inspect_source`; the guessed format and column mapping
preset the dropdowns (one per field of the format, laid out by `studio.ui.data_forms`), the first
rows fill a table, and the first records are rendered with the chosen template and highlighted
where they count for the loss, on the default model's tokenizer. Save gathers the widgets into
one `ImportRequest` for `import_dataset` and lists the rows it skipped. Below, the studio's
datasets with their card and an export. Reading, cleaning and storing are the builder's job.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from studio.data.builder import inspect_source
from studio.data.cleaning import CleaningConfig, SplitConfig
from studio.data.formats import FORMATS
from studio.data.stats import histogram_figure
from studio.data.library import DataLibrary
from studio.data.templates import BUILTIN_TEMPLATES
from studio.errors import StudioError
from studio.ui import data_forms as forms
from studio.ui.common import error_notice, UiShared, error_text
from studio.ui.data_library import build_browser, build_mixer, build_template_editor
from studio.ui.fields import FieldWidget, build_fields, collect_sections

PREVIEW_MODEL = "smollm2-135m-instruct"
FILE_TYPES = [".csv", ".tsv", ".json", ".jsonl", ".parquet", ".xlsx", ".txt"]
EXPORT_FORMATS = ("jsonl", "csv", "parquet")


@dataclass
class DataView:
    file: gr.File
    format: gr.Dropdown
    slots: list[gr.Dropdown]
    table: gr.Dataframe
    facts: gr.Markdown
    template: gr.Dropdown
    system_prompt: gr.Textbox
    train_on_prompt: gr.Checkbox
    preview: gr.HighlightedText
    preview_note: gr.Markdown
    cleaning: list[FieldWidget]
    split: list[FieldWidget]
    name: gr.Textbox
    save: gr.Button
    message: gr.Markdown
    problems: gr.Dataframe
    datasets: gr.Dataframe
    picked: gr.Dropdown
    card: gr.JSON
    max_length: gr.Number
    stats_note: gr.Markdown
    histogram: gr.Plot
    columns: gr.Dataframe
    export_format: gr.Radio
    export: gr.Button
    download: gr.File
    source: gr.State  # {"path", "columns", "rows", "guess"} of the inspected file
    heldout: dict  # split -> gr.File: a separate file that becomes that split whole


LIBRARY_COLUMNS = ("name", "version", "format", "train", "validation", "test", "template", "skipped")


def library_headers(texts: Any, lang: str) -> list[str]:
    return [texts.t(lang, f"data.library.col.{c}") for c in LIBRARY_COLUMNS]


def _template_names(data: Any) -> list[str]:
    saved = [t.name for t in data.templates()] if data is not None else []
    return [*BUILTIN_TEMPLATES, *(n for n in saved if n not in BUILTIN_TEMPLATES)]



def saved_note(result: Any, texts: Any, lang: str) -> str:
    """'50 rows read: 45 imported, 3 skipped (see list), 2 removed by cleaning (2 exact duplicates) -> name v1':
    counts that add up to the rows read, in the page's language."""
    removed = result.removed()
    reasons = ", ".join(texts.t(lang, f"data.removed.{k}", n=n) for k, n in removed.items())
    return texts.t(lang, "data.msg.saved", read=result.read, imported=result.imported, skipped=result.skipped,
                   see=texts.t(lang, "data.msg.see_list") if result.skipped else "",
                   removed=texts.t(lang, "data.msg.removed", n=sum(removed.values()), reasons=reasons) if removed else "",
                   name=result.name, version=result.version,
                   text=texts.t(lang, f"data.msg.text_{result.text_mode}") if result.text_mode else "") + "".join(
        texts.t(lang, "data.msg.heldout", split=texts.t(lang, f"data.split.{part}"), file=h["file"], rows=h["rows"],
                skipped=h["skipped"], removed=h["removed"])
        for part, h in (getattr(result, "heldout", None) or {}).items())

def build_data(engine: Any, ui: UiShared) -> DataView:
    data = getattr(engine, "data", None)  # the workspace's datasets and templates (`studio.data.library`)
    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    t = lambda key, **kw: texts.t(lang, key, **kw)  # noqa: E731

    with gr.Row():
        with gr.Column(scale=2):
            file = loc.label(gr.File(label=t("data.file"), file_types=FILE_TYPES, type="filepath",
                                     elem_id="studio-data-file", height=120), "data.file")
            fmt = loc.label(gr.Dropdown(choices=list(FORMATS.names()), value=None, label=t("data.format.label"),
                                        info=t("data.format.info"), elem_id="studio-data-format"),
                            "data.format.label", "data.format.info")
            slots = [gr.Dropdown(choices=[""], value="", visible=False, interactive=True,
                                 elem_id=f"studio-data-map-{i}") for i in range(forms.MAX_FIELDS)]
        with gr.Column(scale=3):
            table = loc.label(gr.Dataframe(label=t("data.table"), interactive=False, wrap=True, max_height=260, visible=False,
                                           elem_id="studio-data-table"), "data.table")
            facts = gr.Markdown("", elem_id="studio-data-facts")
    with gr.Row():
        template = loc.label(gr.Dropdown(choices=list(BUILTIN_TEMPLATES), value="chat", label=t("data.template.label"),
                                         info=t("data.template.info"), elem_id="studio-data-template", scale=1),
                             "data.template.label", "data.template.info")
        system_prompt = loc.label(gr.Textbox(label=t("data.system"), lines=1, scale=2, elem_id="studio-data-system"),
                                  "data.system")
        train_on_prompt = loc.label(gr.Checkbox(value=False, label=t("data.train_on_prompt"), scale=1,
                                                elem_id="studio-data-train-on-prompt"), "data.train_on_prompt")
    build_template_editor(ui, data, template, lambda: _template_names(data))
    loss_labels = {texts.t(code, "data.preview.loss") for code in texts.locales}
    preview = loc.label(gr.HighlightedText(label=t("data.preview.label"), combine_adjacent=False, show_legend=False,
                                           visible=False,
                                           color_map={label: "#86efac" for label in loss_labels},
                                           elem_id="studio-data-preview"), "data.preview.label")
    preview_note = gr.Markdown("", elem_id="studio-data-preview-note")
    with loc.label(gr.Accordion(t("data.cleaning"), open=False), "data.cleaning"):
        cleaning = build_fields(CleaningConfig, "cleaning", loc, lang, per_row=4)
        split = build_fields(SplitConfig, "split", loc, lang, only=("validation", "test", "seed"), per_row=3)
        with gr.Row():
            heldout = {part: loc.label(gr.File(label=t(f"data.heldout.{part}"), file_types=FILE_TYPES,
                                               type="filepath", elem_id=f"studio-data-{part}-file"),
                                       f"data.heldout.{part}") for part in ("validation", "test")}
    with gr.Row(equal_height=True):
        name = loc.label(gr.Textbox(label=t("data.name.label"), placeholder=t("data.name.placeholder"), scale=3,
                                    elem_id="studio-data-name"), "data.name.label",
                         placeholder_key="data.name.placeholder")
        save = loc.value(gr.Button(t("data.save"), variant="primary", scale=1, elem_id="studio-data-save"),
                         "data.save")
    message = gr.Markdown("", elem_id="studio-data-message")
    problems = loc.label(gr.Dataframe(headers=[t("data.problems.line"), t("data.problems.reason")], value=[], label=t("data.problems"),
                                      interactive=False, visible=False, elem_id="studio-data-problems"),
                         "data.problems")
    with loc.label(gr.Accordion(t("data.library"), open=True), "data.library"):
        datasets = gr.Dataframe(headers=library_headers(texts, lang), value=[], interactive=False,
                                elem_id="studio-data-list")
        with gr.Row():
            picked = loc.label(gr.Dropdown(choices=[], value=None, label=t("data.picked"), scale=2,
                                           elem_id="studio-data-picked"), "data.picked")
            export_format = loc.label(gr.Radio(list(EXPORT_FORMATS), value="jsonl", label=t("data.export_format"),
                                               scale=2), "data.export_format")
            export = loc.value(gr.Button(t("data.export"), scale=1, elem_id="studio-data-export"), "data.export")
        download = loc.label(gr.File(label=t("data.download"), interactive=False, visible=False, height=90,
                                     elem_id="studio-data-download"),
                             "data.download")
        with gr.Row():
            max_length = loc.label(gr.Number(512, precision=0, minimum=16, label=t("data.stats.max_length"),
                                             scale=1, elem_id="studio-data-maxlen"), "data.stats.max_length")
            stats_note = gr.Markdown("", elem_id="studio-data-stats")
        histogram = gr.Plot(elem_id="studio-data-histogram", show_label=False, visible=False)
        columns = loc.label(gr.Dataframe(value=[], interactive=False, label=t("data.stats.columns"), visible=False,
                                         elem_id="studio-data-columns"), "data.stats.columns")
        card = loc.label(gr.JSON(label=t("data.card"), visible=False, elem_id="studio-data-card"), "data.card")

    def refreshed_library(new_name: str):
        rows = data.datasets() if data is not None else []
        return forms.dataset_rows(rows), gr.update(choices=[d["name"] for d in rows], value=new_name)

    build_mixer(ui, data, refreshed_library, [datasets, picked])
    build_browser(ui, data, picked)
    view = DataView(file, fmt, slots, table, facts, template, system_prompt, train_on_prompt, preview, preview_note,
                    cleaning, split, name, save, message, problems, datasets, picked, card, max_length, stats_note,
                    histogram, columns, export_format, export, download, gr.State(None), heldout)
    _wire(view, engine, ui)
    return view


def _wire(view: DataView, engine: Any, ui: UiShared) -> None:
    texts = ui.texts
    data = getattr(engine, "data", None)
    builtin = data or DataLibrary(None)  # built-in templates and the embedded tokenizer need no workspace
    tokenizers: dict[str, Any] = {}  # one tokenizer per app, loaded on the first preview

    def slot_updates(fmt, source, mapping=None):
        columns = source["columns"] if source else []
        mapping = forms.guess_mapping(fmt, columns, source and source["guess"]) if mapping is None else mapping
        return [gr.update(label=s["field"], choices=s["choices"], value=s["value"], visible=s["visible"])
                for s in forms.mapping_slots(fmt, columns, mapping)]

    def on_file(path, lang):
        if not path:
            return [None, gr.update(value=None), gr.update(value=None, visible=False), "", "",
                    *slot_updates(FORMATS.names()[0], None, {})]
        try:
            found = inspect_source(str(path))
        except StudioError as exc:  # said beside the file box, where the eye is, not below the form
            return [None, gr.update(value=None), gr.update(value=None, visible=False), error_notice(texts, lang, exc), "",
                    *slot_updates(FORMATS.names()[0], None, {})]
        guess = {"format": found.guess.format, "mapping": found.guess.mapping, "reason": found.guess.reason}
        source = {"path": str(path), "columns": found.columns, "rows": found.rows, "guess": guess}
        facts = texts.t(lang, "data.facts", reason=guess["reason"],
                        **forms.source_facts(found.info, found.problems, len(found.rows)))
        table = {"headers": found.columns, "data": forms.table_rows(found.columns, found.rows)}
        return [source, gr.update(value=guess["format"]), gr.update(value=table, visible=True), facts, "",
                *slot_updates(guess["format"], source, guess["mapping"])]

    def tokenizer():
        if PREVIEW_MODEL not in tokenizers:
            tokenizers[PREVIEW_MODEL] = builtin.tokenizer(PREVIEW_MODEL)
        return tokenizers[PREVIEW_MODEL]

    def on_preview(source, fmt, template, system_prompt, train_on_prompt, lang, *slot_values):
        if not source or not fmt:
            return gr.update(value=[], visible=False), ""
        try:
            records, problems = forms.preview_records(source["rows"], fmt, forms.mapping_from_slots(fmt, slot_values))
            if not records:
                first = f" ({problems[0][1]})" if problems else ""
                return gr.update(value=[], visible=False), texts.t(lang, "data.preview.none", first=first)
            chosen = builtin.template(template or "chat")
            roles = {r: texts.t(lang, f"data.role.{r}") for r in ("system", "user", "assistant")}
            spans = forms.highlight(tokenizer(), chosen, records, system_prompt or "", bool(train_on_prompt),
                                    texts.t(lang, "data.preview.loss"), roles)
            added = forms.default_system(tokenizer(), chosen, records, system_prompt or "")
        except StudioError as exc:
            return gr.update(value=[], visible=False), error_text(texts, lang, exc)
        notes = [texts.t(lang, "data.preview.skipped", n=len(problems))] if problems else []
        if added:
            notes.append(texts.t(lang, "data.preview.default_system", prompt=added))
        return gr.update(value=spans, visible=True), " ".join(notes)

    preview_inputs = [view.source, view.format, view.template, view.system_prompt, view.train_on_prompt, ui.lang,
                      *view.slots]
    preview_outputs = [view.preview, view.preview_note]
    private = dict(api_visibility="private")
    view.file.change(on_file, [view.file, ui.lang], [view.source, view.format, view.table, view.facts,
                                                     view.message, *view.slots], **private
                     ).then(on_preview, preview_inputs, preview_outputs, **private)
    view.format.input(lambda fmt, source: slot_updates(fmt, source), [view.format, view.source], view.slots,
                      **private).then(on_preview, preview_inputs, preview_outputs, **private)
    for widget in (view.template, view.train_on_prompt, *view.slots):
        widget.input(on_preview, preview_inputs, preview_outputs, **private)
    view.system_prompt.submit(on_preview, preview_inputs, preview_outputs, **private)
    view.system_prompt.blur(on_preview, preview_inputs, preview_outputs, **private)

    def library(selected=None, lang=None):
        """The saved datasets (headers in `lang`) and the picker, `selected` picked when it is one of them."""
        rows = data.datasets() if data is not None else []
        names = [d["name"] for d in rows]
        value = selected if selected in names else (names[0] if names else None)
        table = {"headers": library_headers(texts, lang or ui.default_lang), "data": forms.dataset_rows(rows)}
        return table, gr.update(choices=names, value=value)

    settings = {*(f.component for f in view.cleaning + view.split)}
    save_inputs = {view.source, view.name, view.format, view.template, view.system_prompt, ui.lang, *view.slots,
                   *settings, *view.heldout.values()}

    def on_save(values: dict, progress=gr.Progress()):
        lang, source = values[ui.lang], values[view.source]
        if not source:
            return {view.message: texts.t(lang, "data.msg.no_file")}
        sections = collect_sections(view.cleaning + view.split, values)
        try:
            request = forms.import_request(source["path"], values[view.name], values[view.format],
                                          [values[s] for s in view.slots], values[view.template],
                                          values[view.system_prompt], sections.get("cleaning", {}),
                                          sections.get("split", {}),
                                          {part: values[f] for part, f in view.heldout.items() if values[f]})
            # Big files stream: the bar follows the bytes read.
            result = data.import_file(request, progress=lambda done, total: progress(
                done / total if total else None, desc=texts.t(lang, "data.msg.reading")))
        except StudioError as exc:
            return {view.message: error_notice(texts, lang, exc)}
        table, picked = library(result.name, lang)
        note = saved_note(result, texts, lang)
        return {view.message: note, view.datasets: table, view.picked: picked,
                view.problems: gr.update(value={"headers": [texts.t(lang, "data.problems.line"),
                                                         texts.t(lang, "data.problems.reason")],
                                             "data": [list(p) for p in result.problems]},
                                      visible=bool(result.problems))}

    view.save.click(on_save, save_inputs, [view.message, view.datasets, view.picked, view.problems], **private)

    def on_pick(name, max_length, lang):
        hidden = gr.update(value=None, visible=False)
        if not name:
            return hidden, "", hidden, gr.update(value=[], visible=False)
        try:
            card = data.card(name)
            report = data.report(name, tokenizer(), int(max_length or 512))
        except (StudioError, OSError) as exc:
            note = error_text(texts, lang, exc) if isinstance(exc, StudioError) else ""
            return hidden, note, hidden, gr.update(value=[], visible=False)
        return (gr.update(value=card, visible=True), forms.stats_note(texts, lang, report),
                gr.update(value=histogram_figure(report, forms.histogram_words(texts, lang)), visible=True),
                gr.update(value=forms.column_rows(report, texts, lang), visible=True))

    pick_outputs = [view.card, view.stats_note, view.histogram, view.columns]
    view.picked.change(on_pick, [view.picked, view.max_length, ui.lang], pick_outputs, **private)
    view.max_length.submit(on_pick, [view.picked, view.max_length, ui.lang], pick_outputs, **private)
    def on_row(evt: gr.SelectData):
        return gr.update(value=evt.row_value[0]) if evt.row_value else gr.skip()

    view.datasets.select(on_row, None, [view.picked], **private)

    def on_export(name, fmt, lang):
        if not name:  # said as a toast: the message line is far below, by the Save button
            gr.Warning(texts.t(lang, "data.msg.pick_first"))
            return gr.skip(), gr.skip()
        try:
            path = data.export(name, Path(tempfile.mkdtemp(prefix="studio-export-")) / f"{name}.{fmt}", fmt)
        except StudioError as exc:
            gr.Warning(texts.error(lang, exc))
            return gr.skip(), gr.skip()
        return gr.update(value=str(path), visible=True), ""

    view.export.click(on_export, [view.picked, view.export_format, ui.lang], [view.download, view.message],
                      **private)
    ui.demo.load(lambda lang: library(None, lang), [ui.lang], [view.datasets, view.picked], **private)
    # The picked dataset stays picked, so its card and statistics are redrawn here (no change event follows).
    ui.on_language(lambda lang, picked, max_length: (*library(picked, lang), *on_pick(picked, max_length, lang)),
                   [view.picked, view.max_length], [view.datasets, view.picked, *pick_outputs])
    ui.demo.load(lambda: gr.update(choices=_template_names(data)), None, [view.template], **private)
