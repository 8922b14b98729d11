"""The RAG Chat tab's "Training data from these documents" box: a teacher writes a question and answer for passages
of the chosen collection (`RagService.write_pairs`); the person reviews and edits them in a table (untick a row to
drop it) and saves the kept ones as a versioned dataset plus a retrieval test set (`studio.rag.synth.save_pairs`)."""
from __future__ import annotations

from typing import Any

import gradio as gr

from studio.errors import StudioError
from studio.ui.common import UiShared, error_notice

COLUMNS = ("keep", "question", "answer", "file", "page", "grounded")


def pairs_table(pairs: list[dict], texts: Any, lang: str) -> dict:
    data = [[bool(p["grounded"]), p["question"], p["answer"], p["file"], int(p["page"]),
             texts.t(lang, "rag.qa.yes" if p["grounded"] else "rag.qa.no")] for p in pairs]
    return {"headers": headers(texts, lang), "data": data}


def headers(texts: Any, lang: str) -> list[str]:
    return [texts.t(lang, f"rag.qa.col.{c}") for c in COLUMNS]


def table_rows(table: Any) -> list[list]:
    """A dataframe value (pandas, or {"headers", "data"}, or rows) as its rows, edits included."""
    if hasattr(table, "columns"):  # pandas
        return table.values.tolist()
    return (table.get("data") if isinstance(table, dict) else table) or []


def relabelled(table: Any, texts: Any, lang: str) -> dict:
    """The table as the person left it, with its headers in `lang` (the language switch)."""
    return {"headers": headers(texts, lang), "data": table_rows(table)}


def kept_pairs(table: Any) -> list[dict]:
    """The rows the person kept, as edited: a dataframe value (pandas or rows) back to pair dicts."""
    rows = table_rows(table)
    return [{"question": str(r[1]).strip(), "answer": str(r[2]).strip(), "file": str(r[3]), "page": int(r[4])}
            for r in rows if r and r[0] in (True, "true", "True", 1)]


def build_rag_qa(engine: Any, ui: UiShared, collection: Any) -> None:
    from studio.rag.synth import ANSWERS

    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    t = lambda key, **kw: texts.t(lang, key, **kw)  # noqa: E731
    with loc.label(gr.Accordion(t("rag.qa.title"), open=False, elem_id="studio-rag-qa"), "rag.qa.title"):
        loc.value(gr.Markdown(t("rag.qa.intro")), "rag.qa.intro")
        with gr.Row(equal_height=True):
            teacher = loc.label(gr.Dropdown(choices=engine.model_choices(), value=engine.model_choices()[0],
                                            allow_custom_value=True, label=t("rag.qa.teacher"),
                                            elem_id="studio-rag-qa-teacher"), "rag.qa.teacher")
            passages = loc.label(gr.Number(value=12, precision=0, label=t("rag.qa.passages"),
                                           elem_id="studio-rag-qa-passages"), "rag.qa.passages")
            answers = loc.label(gr.Dropdown(choices=list(ANSWERS), value="auto", label=t("rag.qa.answers"),
                                            info=t("rag.qa.answers.info"), elem_id="studio-rag-qa-answers"),
                                "rag.qa.answers", "rag.qa.answers.info")
            write = loc.value(gr.Button(t("rag.qa.write"), variant="primary", elem_id="studio-rag-qa-write"),
                              "rag.qa.write")
        table = gr.Dataframe(value=pairs_table([], texts, lang), interactive=True, wrap=True,
                             datatype=["bool", "str", "str", "str", "number", "str"],
                             column_widths=["7%", "33%", "38%", "12%", "5%", "5%"], elem_id="studio-rag-qa-table")
        with gr.Row(equal_height=True):
            name = loc.label(gr.Textbox(value="", label=t("rag.qa.name"), elem_id="studio-rag-qa-name"), "rag.qa.name")
            save = loc.value(gr.Button(t("rag.qa.save"), elem_id="studio-rag-qa-save"), "rag.qa.save")
        notice = gr.Markdown("", elem_id="studio-rag-qa-notice")

    def on_write(name_of, teacher_spec, count, how, lang):
        try:
            pairs = engine.rag.write_pairs((name_of or "").strip(), teacher_spec, int(count or 0), how)
        except StudioError as exc:
            return gr.skip(), error_notice(texts, lang, exc)
        grounded = sum(p["grounded"] for p in pairs)
        return pairs_table(pairs, texts, lang), texts.t(lang, "rag.qa.written", n=len(pairs), grounded=grounded)

    write.click(on_write, [collection, teacher, passages, answers, ui.lang], [table, notice],
                api_visibility="private")

    def on_save(rows, dataset, lang):
        try:
            saved = engine.save_rag_pairs(kept_pairs(rows), (dataset or "").strip())
        except StudioError as exc:
            return error_notice(texts, lang, exc)
        return texts.t(lang, "rag.qa.saved", **saved)

    save.click(on_save, [table, name, ui.lang], [notice], api_visibility="private")
    ui.on_language(lambda lang, shown: relabelled(shown, texts, lang), [table], [table])
