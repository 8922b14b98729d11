"""The whole browser app: header with the language switch, the tabs, and the named API endpoints.

`build_app(engine)` lays out the header and one tab per module (train, data, runs, evaluate, playground, RAG,
preferences, export), each built by its own `build_<tab>` function, then wires the language switch: it stores
the choice in a per-user `gr.State`, returns one `gr.update` per registered component (labels, tooltips,
button texts) and runs the tabs' own language hooks. Styling (`APP_CSS`, `make_theme`) is
applied at launch, where Gradio 6 takes it. Serving and authentication live in `studio.ui.serve`.
"""
from __future__ import annotations

from typing import Any

import gradio as gr

from studio.ui.api import add_api
from studio.ui.common import UiShared
from studio.ui.data_tab import build_data
from studio.ui.i18n import DEFAULT_LANG, LANGUAGES, Localizer, Texts
from studio.ui.jobs_bar import build_jobs_bar
from studio.ui.playground_tab import build_playground
from studio.ui.prefs_tab import build_prefs
from studio.ui.rag_tab import build_rag
from studio.ui.evaluate_tab import build_evaluate
from studio.ui.export_tab import build_export
from studio.ui.guard import StudioBlocks, allow, may
from studio.ui.runs_tab import build_runs
from studio.ui.glossary import build_glossary
from studio.ui.train_tab import build_train

APP_CSS = """
#studio-header { align-items: center; }
#studio-header h1 { margin: 0; font-size: 1.6rem; }
#studio-header p { margin: 0; color: var(--body-text-color-subdued); }
#studio-lang { max-width: 260px; margin-left: auto; }
.studio-method-summary { color: var(--body-text-color-subdued); font-size: 0.9rem; }
.studio-progress { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px 14px; }
.studio-progress-empty { color: var(--body-text-color-subdued); }
.studio-progress-head { display: flex; justify-content: space-between; margin-bottom: 6px; }
.studio-bar { height: 12px; background: var(--neutral-200); border-radius: 6px; overflow: hidden; }
.studio-bar-fill { height: 100%; background: var(--color-accent); transition: width 0.6s ease; }
.studio-progress-facts { margin-top: 6px; font-variant-numeric: tabular-nums; }
.studio-progress-error { margin-top: 6px; color: var(--error-text-color); }
.studio-status { font-weight: 600; }
.studio-status-completed { color: #15803d; }
.studio-status-failed, .studio-status-interrupted { color: #b91c1c; }
.studio-status-cancelled, .studio-status-cancelling { color: #a16207; }
.studio-muted { color: var(--body-text-color-subdued); }
.studio-eval-example { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px 14px;
                       margin-bottom: 10px; }
.studio-eval-prompt, .studio-eval-reference { margin-bottom: 6px; white-space: pre-wrap; }
.studio-eval-answer { margin-top: 6px; padding-top: 6px; border-top: 1px dashed var(--border-color-primary);
                      overflow-wrap: anywhere; }
.studio-diff-added { background: #dcfce7; color: #166534; border-radius: 3px; }
.studio-diff-removed { background: #fee2e2; color: #991b1b; text-decoration: line-through; border-radius: 3px; }
"""


# Gradio words its own upload boxes and footer link in the browser's language, not the studio's: each language's
# words are drawn over them while that language is the one picked (CSS `:has`, no script).
GRADIO_WORDS_CSS = """
body:has(#studio-lang input[value="{lang}"]:checked) [data-testid="upload-text"] {{ font-size: 0; }}
body:has(#studio-lang input[value="{lang}"]:checked) [data-testid="upload-text"]::after {{
  content: "{drop}"; font-size: var(--text-lg); }}
body:has(#studio-lang input[value="{lang}"]:checked) footer .show-api {{ font-size: 0; }}
body:has(#studio-lang input[value="{lang}"]:checked) footer .show-api::before {{
  content: "{api}"; font-size: var(--text-md); }}
"""


def app_css(texts: Texts) -> str:
    """APP_CSS plus, in every language of `texts`, the words Gradio would write in the browser's language: the upload
    boxes' and the footer's API link."""
    def words(code: str, key: str) -> str:
        return texts.t(code, key).replace('"', "'")

    return APP_CSS + "".join(GRADIO_WORDS_CSS.format(lang=code, drop=words(code, "app.upload"), api=words(code, "app.api"))
                             for _, code in LANGUAGES)


def make_theme() -> Any:
    return gr.themes.Soft(primary_hue="blue", neutral_hue="slate")


def _header(ui: UiShared) -> gr.Radio:
    texts, lang = ui.texts, ui.default_lang

    def heading(lg: str) -> str:
        return f"# {texts.t(lg, 'app.title')}\n{texts.t(lg, 'app.subtitle')}"

    with gr.Row(elem_id="studio-header"):
        title = gr.Markdown(heading(lang), elem_id="studio-title")
        ui.localizer.add(title, lambda lg: gr.update(value=heading(lg)))
        language = gr.Radio(choices=list(LANGUAGES), value=lang, label=texts.t(lang, "app.language"),
                            show_label=False, container=False, elem_id="studio-lang")
    return language


def build_app(engine: Any, texts: Texts | None = None) -> gr.Blocks:
    """The studio's Blocks, bound to `engine` (which it never creates or shuts down)."""
    texts = texts or Texts.load()
    with StudioBlocks(title=texts.t(DEFAULT_LANG, "app.title"), analytics_enabled=False) as demo:
        demo.studio_engine = engine
        ui = UiShared(texts, Localizer(texts), gr.State(DEFAULT_LANG), demo)
        language = _header(ui)
        build_jobs_bar(engine, ui)
        build_glossary(ui)
        with gr.Tabs() as tabs:
            with gr.Tab(texts.t(DEFAULT_LANG, "tab.train"), id="train", elem_id="studio-tab-train") as train_tab:
                with ui.admin_part():
                    train = build_train(engine, ui)
            with gr.Tab(texts.t(DEFAULT_LANG, "tab.data"), id="data", elem_id="studio-tab-data") as data_tab:
                with ui.admin_part():
                    build_data(engine, ui)
            with gr.Tab(texts.t(DEFAULT_LANG, "tab.runs"), id="runs", elem_id="studio-tab-runs") as runs_tab:
                with ui.admin_part():
                    build_runs(engine, ui, runs_tab, train, tabs)
            with gr.Tab(texts.t(DEFAULT_LANG, "tab.evaluate"), id="evaluate", elem_id="studio-tab-evaluate") as eval_tab:
                with ui.admin_part():
                    build_evaluate(engine, ui, eval_tab)
            with gr.Tab(texts.t(DEFAULT_LANG, "tab.playground"), id="playground",
                        elem_id="studio-tab-playground") as play_tab:
                with ui.admin_part():
                    build_playground(engine, ui, play_tab)
            with gr.Tab(texts.t(DEFAULT_LANG, "tab.rag"), id="rag", elem_id="studio-tab-rag") as rag_tab:
                with ui.admin_part():
                    build_rag(engine, ui, rag_tab)
            with gr.Tab(texts.t(DEFAULT_LANG, "tab.prefs"), id="prefs", elem_id="studio-tab-prefs") as prefs_tab:
                build_prefs(engine, ui, prefs_tab)
            with gr.Tab(texts.t(DEFAULT_LANG, "tab.export"), id="export", elem_id="studio-tab-export") as export_tab:
                with ui.admin_part():
                    build_export(engine, ui, export_tab)
        for tab, key in ((train_tab, "tab.train"), (data_tab, "tab.data"), (runs_tab, "tab.runs"),
                         (eval_tab, "tab.evaluate"), (play_tab, "tab.playground"), (rag_tab, "tab.rag"),
                         (prefs_tab, "tab.prefs"), (export_tab, "tab.export")):
            ui.localizer.label(tab, key)
        # A dataset saved in the Data tab is offered as soon as the user comes back to Train.
        def offer_datasets():
            choices = engine.dataset_choices()
            return gr.update(choices=choices), gr.update(choices=choices)

        train_tab.select(offer_datasets, None, [train.dataset, train.guide.dataset], api_visibility="private",
                         show_progress="hidden")
        _wire_admin_parts(engine, ui, tabs)
        _wire_language(language, ui)
        add_api(engine)
    return demo


def _wire_admin_parts(engine: Any, ui: UiShared, tabs: gr.Tabs) -> None:
    """On page load: anyone but an admin sees the notices instead of the parts, starting on Preferences. An admin's
    page is built that way already and gets no update at all (re-sending `visible=True` to some 90 containers only
    added them to what Gradio's frontend revisits on every later event)."""
    bodies = [body for body, _ in ui.admin_parts]
    notices = [notice for _, notice in ui.admin_parts]

    @allow("page")
    def parts_for(request: gr.Request):
        if may(engine, request, "admin"):
            return [gr.skip()] * (len(bodies) + len(notices) + 1)
        return [gr.update(visible=False)] * len(bodies) + [gr.update(visible=True)] * len(notices) + [
            gr.Tabs(selected="prefs")]

    ui.demo.load(parts_for, None, [*bodies, *notices, tabs], api_visibility="private", show_progress="hidden")


def _wire_language(language: gr.Radio, ui: UiShared) -> None:
    components = ui.localizer.components

    @allow("page")
    def switch(lang: str):
        lang = lang if lang in ui.texts.locales else DEFAULT_LANG
        return [lang, *ui.localizer.redraw(lang)]

    event = language.change(switch, [language], [ui.lang, *components], api_visibility="private",
                            show_progress="hidden")
    for fn, inputs, outputs in ui.language_hooks:
        event = event.then(fn, [ui.lang, *inputs], outputs, api_visibility="private", show_progress="hidden")
