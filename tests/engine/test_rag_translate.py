"""A question in another language than the documents is also searched in translation (Apertium when installed, or
the answering model when asked), on a real Chroma with the fake embedder; the question's own wording still counts."""
from __future__ import annotations

import shutil

import pytest

from studio.rag import translate
from studio.rag.answer import AskSettings
from studio.rag.store import RagStore
from tests.engine.test_rag_answer import indexed, service  # noqa: F401 (fixture)
from tests.rag_fixtures import FakeEmbedder

QUESTION = "¿Cuántas horas de sol necesitan los tomates?"
TRANSLATION = "How many hours of sun do tomatoes need?"


def fake_apertium(monkeypatch, out: str = TRANSLATION) -> list:
    calls = []
    monkeypatch.setattr(translate, "apertium_mode", lambda src, dst: f"{src}-{dst}")
    monkeypatch.setattr(translate, "apertium", lambda text, mode: calls.append((text, mode)) or out)
    return calls


def test_question_language_reads_spanish_marks_and_plain_english():
    assert translate.question_language("¿Dónde está?") == "es"
    assert translate.question_language("How often does the chain need oil on a bike?") == "en"


def test_only_a_question_in_another_language_is_translated(monkeypatch):
    calls = fake_apertium(monkeypatch)
    assert translate.translate_question(QUESTION, "en") == (TRANSLATION, "apertium es-en")
    assert calls == [(QUESTION, "es-en")]
    assert translate.translate_question(TRANSLATION, "en") == (None, "same language")
    assert translate.translate_question(QUESTION, "en", "off") == (None, "off")
    assert translate.translate_question(QUESTION, None)[0] is None


def test_without_apertium_auto_says_why_and_model_translates_when_asked(monkeypatch):
    monkeypatch.setattr(translate, "apertium_mode", lambda src, dst: None)
    text, why = translate.translate_question(QUESTION, "en")
    assert text is None and "install apertium" in why
    seen = []
    text, why = translate.translate_question(QUESTION, "en", "model",
                                             lambda messages: seen.append(messages) or f" {TRANSLATION}\n")
    assert (text, why) == (TRANSLATION, "model")
    assert "into English" in seen[0][0]["content"] and seen[0][1]["content"] == QUESTION


def test_search_ranks_each_wording_and_keeps_the_best_of_both(workspace, corpus):
    embedder = FakeEmbedder()
    store = RagStore(workspace)
    store.ingest("docs", corpus, embedder)
    alone = store.search("docs", QUESTION, embedder, k=1)
    both = store.search("docs", QUESTION, embedder, k=3, also=[TRANSLATION])
    assert not (alone[0].file == "garden.pdf" and alone[0].pages == [1])  # the Spanish words alone miss it
    assert both[0].file == "garden.pdf" and both[0].pages == [1]
    chain = store.search("docs", "How often does the chain need oil?", embedder, k=1, also=[TRANSLATION])
    assert chain[0].file == "bikes.pdf"  # the question's own wording keeps its best chunk first


def test_the_chat_searches_the_translation_and_quotes_from_it(service, corpus, monkeypatch):  # noqa: F811
    fake_apertium(monkeypatch)
    indexed(service, corpus)
    final = list(service.ask("home-docs", QUESTION, model="tiny", ask=AskSettings(style="quote")))[-1]
    assert final.found and final.translation == TRANSLATION
    assert final.text.startswith("Tomatoes need six hours of sun a day. [")
    assert final.as_dict()["translation"] == TRANSLATION and final.stats["translation"] == "apertium es-en"
    off = list(service.ask("home-docs", QUESTION, model="tiny", ask=AskSettings(style="quote", translate="off")))[-1]
    assert off.translation is None and not off.found


@pytest.mark.skipif(not shutil.which("apertium"), reason="Apertium is not installed (apt install apertium "
                                                         "apertium-en-es; .ci/run installs it)")
def test_apertium_translates_a_spanish_question_offline():
    mode = translate.apertium_mode("es", "en")
    assert mode == "spa-eng"
    text, why = translate.translate_question("¿Puedo usar vinagre para quitar la cal de la máquina?", "en")
    assert why == "apertium spa-eng" and "vinegar" in text and "machine" in text
