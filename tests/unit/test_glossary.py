"""The glossary: every term in plain words in English and Spanish, covering the words the studio's pickers show."""
from __future__ import annotations

from studio.ui.glossary import glossary_markdown, terms
from studio.ui.i18n import Texts


def test_every_term_has_a_name_and_plain_words_in_both_languages():
    texts = Texts.load()
    found = terms(texts)
    assert len(found) >= 40 and len(set(found)) == len(found)
    for term in found:
        for lang in ("en", "es"):
            name, words = (texts.locales[lang].get(f"glossary.{term}.{part}") for part in ("name", "text"))
            assert name and words and words.endswith((".", ".'")), (term, lang)
        assert texts.locales["es"][f"glossary.{term}.text"] != texts.locales["en"][f"glossary.{term}.text"], term


def test_the_glossary_covers_the_methods_stages_metrics_and_agreement_words_the_ui_shows():
    texts = Texts.load()
    english, spanish = glossary_markdown(texts, "en"), glossary_markdown(texts, "es")
    for word in ("LoRA", "QLoRA", "Full fine-tuning", "Prompt tuning", "DPO", "Continued pretraining", "ROUGE",
                 "BLEU", "Exact match", "Perplexity", "Kendall's W", "tau-b", "Krippendorff's alpha", "GGUF", "RAG",
                 "Learning rate", "Epoch"):
        assert f"**{word}" in english or word in english, word
    assert "**Ajuste completo**" in spanish and "Tasa de aprendizaje" in spanish and "Epoch" not in spanish
    lines = english.splitlines()
    assert lines == sorted(lines, key=str.casefold)  # alphabetical in the page's language
