"""The Playground tab: chat with up to three models or finished runs side by side, answers streamed.

Each of the three slots holds a model (alias, hub id, folder) or a finished run (`run:<id>`, which
answers through its result on its own base model); the second and third are optional and their
chats show only when set. One message goes to every slot in turn with the same system prompt
and generation settings (drawn from `GenerationSettings`, whose help texts explain each one in
plain words); `studio.generation.stream_chat` yields the growing answer and fills the speed line
under each chat (tokens/s, time to the first token). "Save this exchange" appends every shown
conversation to a chat dataset (`studio.generation.save_exchange`) for training or ranking later.
Loaded models live in one `ModelPool` per app (weights are shared, chats are not).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from studio.errors import StudioError
from studio.generation import GenerationSettings, throttled
from studio.models.refs import parse, run_spec
from studio.settings import parse_settings
from studio.ui.common import error_notice, UiShared, pick_default
from studio.ui.fields import FieldWidget, build_fields, collect_sections

DEFAULT_MODEL = "smollm2-135m-instruct"
SLOTS = ("a", "b", "c")


@dataclass
class PlaygroundView:
    slots: list[gr.Dropdown]
    chats: list[gr.Chatbot]
    columns: list[gr.Column]  # each chat with its speed line; hidden while its slot is empty
    speeds: list[gr.Markdown]
    system: gr.Textbox
    message: gr.Textbox
    send: gr.Button
    clear: gr.Button
    save_name: gr.Textbox
    save: gr.Button
    settings: list[FieldWidget]
    notice: gr.Markdown


def target_choices(models: list[str], runs: list[dict], texts: Any, lang: str, optional: bool) -> list:
    """Dropdown choices: models by name, finished runs as 'run:<id>'; optional slots start with 'none'."""
    head = [(texts.t(lang, "play.slot.none"), "")] if optional else []
    return head + [(m, m) for m in models] + [(texts.t(lang, "play.slot.run", name=r["name"], method=r["method"],
                                                       id=r["id"]), run_spec(r["id"])) for r in runs]


def split_target(value: str, runs: list[dict]) -> tuple[str, str | None]:
    """(base model spec, run id or None) of a slot's value."""
    ref = parse(value)
    if ref.is_run:
        run_id = ref.run_id
        run = next((r for r in runs if r["id"] == run_id), None)
        return (run["model"] if run else "", run_id)
    return value, None


def speed_text(stats: dict, texts: Any, lang: str) -> str:
    if not stats.get("tokens"):
        return ""
    return texts.t(lang, "play.speed", tps=f"{stats.get('tokens_per_s', 0):.1f}", tokens=stats["tokens"],
                   first=f"{stats.get('first_token_s', 0):.2f}")


def build_playground(engine: Any, ui: UiShared, tab: Any) -> PlaygroundView:
    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    t = lambda key, **kw: texts.t(lang, key, **kw)  # noqa: E731

    slots, chats, columns, speeds = [], [], [], []
    with gr.Row():
        for i, slot in enumerate(SLOTS):
            slots.append(loc.label(gr.Dropdown(choices=target_choices([], [], texts, lang, i > 0),
                                               value=None if i == 0 else "", allow_custom_value=True,
                                               label=t(f"play.slot.{slot}"), info=t(f"play.slot.{slot}.info"),
                                               elem_id=f"studio-play-{slot}"), f"play.slot.{slot}",
                                   f"play.slot.{slot}.info"))
    system = loc.label(gr.Textbox(label=t("play.system.label"), placeholder=t("play.system.placeholder"), lines=1,
                                  elem_id="studio-play-system"), "play.system.label",
                       placeholder_key="play.system.placeholder")
    with gr.Row():
        for i, slot in enumerate(SLOTS):
            with gr.Column(visible=i == 0) as column:
                columns.append(column)
                chat_id = "studio-chat" if i == 0 else f"studio-chat-{slot}"
                chats.append(gr.Chatbot(label=t(f"play.slot.{slot}"), height=380, elem_id=chat_id))
                speeds.append(gr.Markdown("", elem_id=f"{chat_id}-speed", elem_classes="studio-muted"))
    with gr.Row(equal_height=True):
        message = loc.label(gr.Textbox(label=t("play.message.label"), placeholder=t("play.message.placeholder"),
                                       scale=5, lines=1), "play.message.label",
                            placeholder_key="play.message.placeholder")
        send = loc.value(gr.Button(t("play.send"), variant="primary", scale=1), "play.send")
        clear = loc.value(gr.Button(t("play.clear"), scale=1), "play.clear")
    with gr.Row(equal_height=True):
        save_name = loc.label(gr.Textbox(value="playground", label=t("play.save.name"), info=t("play.save.info"),
                                         scale=3, elem_id="studio-play-save-name"), "play.save.name", "play.save.info")
        save = loc.value(gr.Button(t("play.save"), scale=1, elem_id="studio-play-save"), "play.save")
    notice = gr.Markdown("", elem_id="studio-play-notice")
    with loc.label(gr.Accordion(t("play.settings"), open=False), "play.settings"):
        settings = build_fields(GenerationSettings, "gen", loc, lang, per_row=4)
    view = PlaygroundView(slots, chats, columns, speeds, system, message, send, clear, save_name, save, settings, notice)
    _wire(view, engine, ui, tab)
    return view


def _wire(view: PlaygroundView, engine: Any, ui: UiShared, tab: Any) -> None:
    texts = ui.texts

    def refresh(lang, *current):
        models, runs = engine.model_choices(), engine.finished_runs()
        valid = set(models) | {run_spec(r["id"]) for r in runs}
        first = current[0] or pick_default(models, DEFAULT_MODEL)
        return [gr.update(choices=target_choices(models, runs, texts, lang, i > 0),
                          value=first if i == 0 else (value if value in valid else ""))
                for i, value in enumerate(current)]

    for trigger in (tab.select, ui.demo.load):
        trigger(lambda lang, *cur: refresh(lang, *cur), [ui.lang, *view.slots], view.slots, api_visibility="private")
    ui.on_language(lambda lang, *cur: refresh(lang, *cur), view.slots, view.slots)

    def on_slot(value, lang, slot):
        label = texts.t(lang, f"play.slot.{slot}") + (f" · {value}" if value else "")
        return gr.update(visible=bool(value) or slot == "a"), gr.update(label=label)

    for slot, dropdown, chat, column in zip(SLOTS, view.slots, view.chats, view.columns):
        dropdown.change(lambda value, lang, slot=slot: on_slot(value, lang, slot), [dropdown, ui.lang],
                        [column, chat], api_visibility="private")

    inputs = {view.message, view.system, ui.lang, *view.slots, *view.chats, *(f.component for f in view.settings)}

    def on_send(values: dict):
        lang, text = values[ui.lang], (values[view.message] or "").strip()
        if not text:
            yield {view.notice: ""}
            return
        try:
            settings = parse_settings(GenerationSettings, collect_sections(view.settings, values).get("gen", {}))
        except StudioError as exc:
            yield {view.notice: error_notice(texts, lang, exc)}
            return
        runs = engine.finished_runs()
        active = [(chat, speed, values[slot]) for slot, chat, speed in zip(view.slots, view.chats, view.speeds)
                  if values[slot]]
        system = (values[view.system] or "").strip()
        histories = {}
        for chat, _, _ in active:
            history = list(values[chat] or [])
            if system and not any(m.get("role") == "system" for m in history):
                history = [{"role": "system", "content": system}] + history
            histories[chat] = history + [{"role": "user", "content": text}]
        yield {view.message: "", view.notice: "",
               **{chat: _shown(h) + [{"role": "assistant", "content": "…"}] for chat, h in histories.items()}}
        for chat, speed, value in active:
            history, stats = histories[chat], {}
            model, run_id = split_target(value, runs)
            try:
                for answer in throttled(engine.chat(model, run_id, history, settings, stats=stats)):
                    yield {chat: _shown(history) + [{"role": "assistant", "content": answer}],
                           speed: speed_text(stats, texts, lang)}
            except StudioError as exc:
                yield {chat: _shown(history), view.notice: error_notice(texts, lang, exc)}
                return

    outputs = [view.message, view.notice, *view.chats, *view.speeds]
    for trigger in (view.send.click, view.message.submit):
        trigger(on_send, inputs, outputs, concurrency_limit=1, concurrency_id="studio-generate",
                api_visibility="private")
    view.clear.click(lambda: ([], [], [], "", "", "", ""), None, [*view.chats, *view.speeds, view.notice],
                     api_visibility="private")

    def on_save(name, system, lang, *rest):
        chats, slots = rest[:len(SLOTS)], rest[len(SLOTS):]
        system = (system or "").strip()
        saved = 0
        try:
            for history, source in zip(chats, slots):
                if source and history:
                    messages = ([{"role": "system", "content": system}] if system else []) + list(history)
                    dataset = engine.save_exchange((name or "playground").strip(), messages, source)
                    saved += 1
        except StudioError as exc:
            return error_notice(texts, lang, exc)
        if not saved:
            return texts.t(lang, "play.save.nothing")
        return texts.t(lang, "play.saved", n=saved, name=dataset)

    view.save.click(on_save, [view.save_name, view.system, ui.lang, *view.chats, *view.slots], [view.notice],
                    api_visibility="private")


def _shown(history: list[dict]) -> list[dict]:
    """The conversation as the chat shows it: the system prompt is a setting, not a bubble."""
    return [m for m in history if m.get("role") != "system"]
