"""A plain-words glossary of the terms the studio shows (methods, stages, settings, metrics, export and RAG words),
in the page's language: an accordion under the header, open from any tab. The words live in
`studio/locales/<lang>/glossary.json` as `glossary.<term>.name` and `glossary.<term>.text`."""
from __future__ import annotations

from typing import Any

import gradio as gr

PREFIX = "glossary."


def terms(texts: Any) -> list[str]:
    """Every term the English locale defines, in file order."""
    return [k[len(PREFIX):-len(".name")] for k in texts.locales["en"] if k.startswith(PREFIX) and k.endswith(".name")]


def glossary_markdown(texts: Any, lang: str) -> str:
    """One line per term, sorted by its name in `lang`: **name**: plain words."""
    rows = sorted(((texts.t(lang, f"{PREFIX}{term}.name"), texts.t(lang, f"{PREFIX}{term}.text")) for term in terms(texts)),
                  key=lambda row: row[0].casefold())
    return "\n".join(f"- **{name}**: {text}" for name, text in rows)


def build_glossary(ui: Any) -> None:
    texts, loc, lang = ui.texts, ui.localizer, ui.default_lang
    with loc.label(gr.Accordion(texts.t(lang, "glossary.title"), open=False, elem_id="studio-glossary"),
                   "glossary.title"):
        loc.add(gr.Markdown(glossary_markdown(texts, lang), elem_id="studio-glossary-text"),
                lambda lg: gr.update(value=glossary_markdown(texts, lg)))
