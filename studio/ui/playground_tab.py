"""The Playground tab: chat with a base model or a finished run, answers streamed token by token.

The user picks a base model and, optionally, a finished run (`Engine.finished_runs`); a run
brings its own base model. Messages go to `studio.generation.stream_chat`, which yields the
growing answer; the generation settings are widgets drawn from `GenerationSettings`. With
"compare" on, the same message is also answered by the run's base model in a second chat, side
by side. Loaded models live in one `ModelPool` per app (weights are shared, chats are not).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from studio.errors import StudioError
from studio.generation import GenerationSettings, ModelPool, stream_chat
from studio.settings import parse_settings
from studio.ui.common import UiShared, error_text, pick_default
from studio.ui.fields import FieldWidget, build_fields, collect_sections

DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass
class PlaygroundView:
    base: gr.Dropdown
    run: gr.Dropdown
    compare: gr.Checkbox
    chat: gr.Chatbot
    base_chat: gr.Chatbot
    message: gr.Textbox
    send: gr.Button
    clear: gr.Button
    settings: list[FieldWidget]
    notice: gr.Markdown


def run_choices(runs: list[dict], texts: Any, lang: str) -> list[tuple[str, str]]:
    return [(texts.t(lang, "play.run.none"), "")] + [(f"{r['name']} · {r['method']} · {r['id']}", r["id"])
                                                     for r in runs]


def build_playground(engine: Any, ui: UiShared, tab: Any) -> PlaygroundView:
    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    t = lambda key, **kw: texts.t(lang, key, **kw)  # noqa: E731

    with gr.Row():
        base = loc.label(gr.Dropdown(choices=[], value=None, allow_custom_value=True, label=t("play.base.label"),
                                     info=t("play.base.info"), scale=3), "play.base.label", "play.base.info")
        run = gr.Dropdown(choices=run_choices([], texts, lang), value="", label=t("play.run.label"),
                          info=t("play.run.info"), scale=3, elem_id="studio-play-run")
        compare = loc.label(gr.Checkbox(False, label=t("play.compare.label"), info=t("play.compare.info"), scale=2,
                                        elem_id="studio-compare"),
                            "play.compare.label", "play.compare.info")
    with gr.Row():
        chat = loc.label(gr.Chatbot(label=t("play.chat"), height=380, elem_id="studio-chat"), "play.chat")
        base_chat = loc.label(gr.Chatbot(label=t("play.base_chat"), height=380, visible=False,
                                         elem_id="studio-base-chat"), "play.base_chat")
    with gr.Row(equal_height=True):
        message = loc.label(gr.Textbox(label=t("play.message.label"), placeholder=t("play.message.placeholder"),
                                       scale=5, lines=1), "play.message.label",
                            placeholder_key="play.message.placeholder")
        send = loc.value(gr.Button(t("play.send"), variant="primary", scale=1), "play.send")
        clear = loc.value(gr.Button(t("play.clear"), scale=1), "play.clear")
    notice = gr.Markdown("")
    with loc.label(gr.Accordion(t("play.settings"), open=False), "play.settings"):
        settings = build_fields(GenerationSettings, "gen", loc, lang, per_row=4)
    view = PlaygroundView(base, run, compare, chat, base_chat, message, send, clear, settings, notice)
    _wire(view, engine, ui, tab, ModelPool(engine.ws, capacity=2))
    return view


def _wire(view: PlaygroundView, engine: Any, ui: UiShared, tab: Any, pool: ModelPool) -> None:
    texts = ui.texts

    def refresh(current_base, current_run, lang):
        models = engine.model_choices()
        runs = engine.finished_runs()
        keep_run = current_run if current_run in [r["id"] for r in runs] else ""
        return (gr.update(choices=models, value=current_base or pick_default(models, DEFAULT_MODEL)),
                gr.update(choices=run_choices(runs, texts, lang), value=keep_run,
                          label=texts.t(lang, "play.run.label"), info=texts.t(lang, "play.run.info")))

    for trigger in (tab.select, ui.demo.load):
        trigger(refresh, [view.base, view.run, ui.lang], [view.base, view.run], api_visibility="private")
    ui.on_language(lambda lang, b, r: refresh(b, r, lang), [view.base, view.run], [view.base, view.run])

    def on_run(run_id, compare, lang):
        """A run answers with its own base model (and names the chat); the base chat shows when comparing."""
        run = next((r for r in engine.finished_runs() if r["id"] == run_id), None)
        label = texts.t(lang, "play.chat") + (f" · {run['name']}" if run else "")
        return (gr.update(value=run["model"], interactive=False) if run else gr.update(interactive=True),
                gr.update(visible=bool(run and compare)), gr.update(label=label))

    view.run.change(on_run, [view.run, view.compare, ui.lang], [view.base, view.base_chat, view.chat],
                    api_visibility="private")
    view.compare.change(lambda run_id, compare: gr.update(visible=bool(run_id and compare)),
                        [view.run, view.compare], [view.base_chat], api_visibility="private")

    inputs = {view.message, view.chat, view.base_chat, view.base, view.run, view.compare, ui.lang,
              *(f.component for f in view.settings)}

    def on_send(values: dict):
        lang, text = values[ui.lang], (values[view.message] or "").strip()
        if not text:
            yield {view.notice: ""}
            return
        run_id = values[view.run] or None
        try:
            settings = parse_settings(GenerationSettings, collect_sections(view.settings, values).get("gen", {}))
        except StudioError as exc:
            gr.Warning(texts.error(lang, exc))
            yield {view.notice: error_text(texts, lang, exc)}
            return
        targets = [(view.chat, run_id)] + ([(view.base_chat, None)] if run_id and values[view.compare] else [])
        histories = {box: list(values[box] or []) + [{"role": "user", "content": text}] for box, _ in targets}
        yield {view.message: "", view.notice: "",
               **{box: h + [{"role": "assistant", "content": "…"}] for box, h in histories.items()}}
        for box, target_run in targets:
            history = histories[box]
            try:
                for answer in stream_chat(engine.ws, values[view.base], target_run, history, settings, pool):
                    yield {box: history + [{"role": "assistant", "content": answer}]}
            except StudioError as exc:
                gr.Warning(texts.error(lang, exc))
                yield {box: history, view.notice: error_text(texts, lang, exc)}
                return

    outputs = [view.message, view.notice, view.chat, view.base_chat]
    for trigger in (view.send.click, view.message.submit):
        trigger(on_send, inputs, outputs, concurrency_limit=1, concurrency_id="studio-generate",
                api_visibility="private")
    view.clear.click(lambda: ([], [], ""), None, [view.chat, view.base_chat, view.notice], api_visibility="private")
