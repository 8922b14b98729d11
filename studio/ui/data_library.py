"""Three small tools of the Data tab: a custom-template editor, a dataset mixer and a paged record browser.

`build_template_editor` saves a user's Jinja template (prompt + response parts) through
`studio.data.template_store.save_template`, which checks it in the sandbox first, and then offers
it in the tab's template picker. `build_mixer` builds one dataset from several studio datasets
by share or count (`studio.data.builder.mix_datasets`), the FLAN-style multi-task mix the seeds
recommend against catastrophic forgetting. `build_browser` pages through a saved dataset's split.
All three only turn widget values into one engine call.
"""
from __future__ import annotations

from typing import Any, Callable

import gradio as gr

from studio.data.cleaning import SplitConfig
from studio.errors import StudioError
from studio.ui.common import UiShared, error_text

PRIVATE = {"api_visibility": "private"}


def parse_sources(text: str) -> list[tuple[str, float | int]]:
    """'tutor=0.7, faq=200' -> [('tutor', 0.7), ('faq', 200)]; a bad entry is named in the error."""
    sources = []
    for item in (p.strip() for p in (text or "").replace("\n", ",").split(",")):
        if not item:
            continue
        name, _, amount = item.partition("=")
        try:
            value = float(amount)
        except ValueError:
            raise StudioError(f"Mix entry '{item}' must look like name=0.3 (a share) or name=200 (a count).",
                              field="mix", key="ui.mix_entry", item=item) from None
        sources.append((name.strip(), int(value) if value >= 1 and value.is_integer() else value))
    if not sources:
        raise StudioError("The mix is empty; list datasets like tutor=0.7, faq=200.", field="mix",
                          key="ui.mix_empty")
    return sources


def build_template_editor(ui: UiShared, data: Any, template: gr.Dropdown, names: Callable[[], list[str]]) -> None:
    texts, loc, t = ui.texts, ui.localizer, (lambda key: ui.texts.t(ui.default_lang, key))
    with loc.label(gr.Accordion(t("data.custom.title"), open=False), "data.custom.title"):
        with gr.Row():
            name = loc.label(gr.Textbox(label=t("data.custom.name"), scale=1, elem_id="studio-tpl-name"),
                             "data.custom.name")
            save = loc.value(gr.Button(t("data.custom.save"), scale=1, elem_id="studio-tpl-save"), "data.custom.save")
        prompt = loc.label(gr.Code(value="### Question:\n{{ instruction }}\n\n### Answer:\n", language="jinja2",
                                   label=t("data.custom.prompt"), elem_id="studio-tpl-prompt"), "data.custom.prompt")
        response = loc.label(gr.Textbox(value="{{ output }}", label=t("data.custom.response"),
                                        elem_id="studio-tpl-response"), "data.custom.response")
        message = gr.Markdown("", elem_id="studio-tpl-message")

    def on_save(tpl_name, tpl_prompt, tpl_response, lang):
        try:
            saved = data.save_template((tpl_name or "").strip(), tpl_prompt or "", tpl_response or "{{ output }}")
        except StudioError as exc:
            return gr.skip(), error_text(texts, lang, exc)
        return gr.update(choices=names(), value=saved.name), texts.t(lang, "data.custom.saved", name=saved.name)

    save.click(on_save, [name, prompt, response, ui.lang], [template, message], **PRIVATE)


def build_mixer(ui: UiShared, data: Any, on_done: Callable[[str], Any], outputs: list) -> None:
    texts, loc, t = ui.texts, ui.localizer, (lambda key: ui.texts.t(ui.default_lang, key))
    with loc.label(gr.Accordion(t("data.mix.title"), open=False), "data.mix.title"):
        with gr.Row():
            sources = loc.label(gr.Textbox(label=t("data.mix.sources"), placeholder="tutor=0.7, general=500", scale=3,
                                           elem_id="studio-mix-sources"), "data.mix.sources")
            name = loc.label(gr.Textbox(label=t("data.mix.name"), scale=1, elem_id="studio-mix-name"), "data.mix.name")
            validation = loc.label(gr.Number(0.1, minimum=0, label=t("data.mix.validation"), scale=1),
                                   "data.mix.validation")
            button = loc.value(gr.Button(t("data.mix.build"), scale=1, elem_id="studio-mix-build"), "data.mix.build")
        message = gr.Markdown("", elem_id="studio-mix-message")

    def on_mix(text, mix_name, share, lang):
        try:
            value = float(share or 0)
            result = data.mix((mix_name or "").strip(), parse_sources(text),
                              SplitConfig(validation=int(value) if value >= 1 else value))
        except StudioError as exc:
            return [error_text(texts, lang, exc), *[gr.skip() for _ in outputs]]
        return [result.summary(), *on_done(result.name)]

    button.click(on_mix, [sources, name, validation, ui.lang], [message, *outputs], **PRIVATE)


PAGE_ROWS = 25


def page_of(records: list[dict], page: int) -> tuple[dict, int]:
    """One page of records as a table (nested values as JSON text) and the number of pages."""
    import json

    pages = max(1, -(-len(records) // PAGE_ROWS))
    page = min(max(1, int(page or 1)), pages)
    chunk = records[(page - 1) * PAGE_ROWS: page * PAGE_ROWS]
    headers = list(dict.fromkeys(k for r in chunk for k in r)) or ["(empty)"]
    rows = [[json.dumps(r.get(h), ensure_ascii=False) if isinstance(r.get(h), (list, dict)) else r.get(h)
             for h in headers] for r in chunk]
    return {"headers": headers, "data": rows}, pages


def build_browser(ui: UiShared, data: Any, picked: gr.Dropdown) -> None:
    texts, loc, t = ui.texts, ui.localizer, (lambda key: ui.texts.t(ui.default_lang, key))
    with loc.label(gr.Accordion(t("data.browse.title"), open=False), "data.browse.title"):
        with gr.Row():
            split_name = loc.label(gr.Radio(["train", "validation", "test"], value="train",
                                            label=t("data.browse.split"), scale=2), "data.browse.split")
            page = loc.label(gr.Number(1, precision=0, minimum=1, label=t("data.browse.page"), scale=1,
                                       elem_id="studio-browse-page"), "data.browse.page")
            pages = gr.Markdown("", elem_id="studio-browse-pages")
        rows = gr.Dataframe(value=[], interactive=False, wrap=True, max_height=420, elem_id="studio-browse-rows")

    def show(name, part, number, lang):
        if not name:
            return [], ""
        table, count = page_of(data.rows(name, part), number)
        return table, texts.t(lang, "data.browse.of", pages=count)

    inputs = [picked, split_name, page, ui.lang]
    for event in (picked.change, split_name.change, page.submit):
        event(show, inputs, [rows, pages], **PRIVATE)
