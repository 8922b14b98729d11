""""Find a model on the Hub" under the Train tab's model picker: search (`Engine.hub_search`), a table with size,
licence, downloads and whether LoRA / QLoRA training fit this machine, then download into the local cache with
progress (`Engine.hub_download`) and use it in the form. Offline the table lists the downloaded models and the note
says why it cannot search."""
from __future__ import annotations

from typing import Any

import gradio as gr

from studio.errors import StudioError
from studio.ui.common import UiShared, error_notice

COLUMNS = ("model", "params", "license", "downloads", "lora", "qlora", "here")


def _fit(texts: Any, lang: str, value: Any) -> str:
    return "-" if value is None else texts.t(lang, "hub.yes" if value else "hub.no")


def results_table(found: dict, texts: Any, lang: str) -> dict:
    data = [[m["id"], f"{m['params'] / 1e9:.2f}B" if m["params"] else "-", m["license"] or "-",
             m["downloads"] if m["downloads"] is not None else "-", _fit(texts, lang, m["lora"]),
             _fit(texts, lang, m["qlora"]), texts.t(lang, "hub.cached") if m["cached"] else ""]
            for m in found["models"]]
    return {"headers": [texts.t(lang, f"hub.col.{c}") for c in COLUMNS], "data": data}


def build_hub_box(engine: Any, ui: UiShared, model: Any) -> None:
    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    t = lambda key, **kw: texts.t(lang, key, **kw)  # noqa: E731
    with loc.label(gr.Accordion(t("hub.title"), open=False, elem_id="studio-hub-box"), "hub.title"):
        with gr.Row(equal_height=True):
            query = loc.label(gr.Textbox(value="", label=t("hub.query"), placeholder="SmolLM2, Qwen2.5, Llama 3.2",
                                         scale=4, elem_id="studio-hub-query"), "hub.query")
            go = loc.value(gr.Button(t("hub.search"), scale=1, elem_id="studio-hub-search"), "hub.search")
        note = gr.Markdown("", elem_id="studio-hub-note")
        table = gr.Dataframe(value=None, interactive=False, wrap=True, elem_id="studio-hub-results")
        with gr.Row(equal_height=True):
            picked = loc.label(gr.Textbox(value="", label=t("hub.picked"), scale=4, elem_id="studio-hub-picked"),
                               "hub.picked")
            fetch = loc.value(gr.Button(t("hub.download"), scale=1, elem_id="studio-hub-download"), "hub.download")
            use = loc.value(gr.Button(t("hub.use"), scale=1, elem_id="studio-hub-use"), "hub.use")

    def on_search(text, lang):
        found = engine.hub_search(text)
        return results_table(found, texts, lang), texts.t(lang, "hub.offline") if not found["online"] else ""

    for trigger in (go.click, query.submit):
        trigger(on_search, [query, ui.lang], [table, note], api_visibility="private")

    def on_row(evt: gr.SelectData):
        row = evt.row_value or []
        return row[0] if row else gr.skip()

    table.select(on_row, None, [picked], api_visibility="private")

    def on_download(repo, lang):
        """The download runs in a thread; the note shows its MB every half second until it ends."""
        import threading

        latest, outcome = [texts.t(lang, "hub.starting", model=repo)], {}

        def progress(done: int, total: int) -> None:
            latest.append(texts.t(lang, "hub.downloading", model=repo, done=done // 2**20, total=total // 2**20))

        def work() -> None:
            try:
                outcome["path"] = engine.hub_download(repo, progress)
            except StudioError as exc:
                outcome["error"] = exc

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        while worker.is_alive():
            yield latest[-1]
            worker.join(0.5)
        if "error" in outcome:
            yield error_notice(texts, lang, outcome["error"])
        else:
            yield texts.t(lang, "hub.ready", model=repo, path=outcome["path"])

    fetch.click(on_download, [picked, ui.lang], [note], api_visibility="private")
    use.click(lambda repo: gr.update(value=repo.strip()) if repo.strip() else gr.skip(), [picked], [model],
              api_visibility="private")
