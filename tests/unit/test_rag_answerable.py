"""The 'documents do not contain it' rule: unrelated passages are refused, very similar ones answer, and in between
the passages must hold most of the question's rarer words (prefixes count, stopwords do not)."""
from __future__ import annotations

from studio.rag.answerable import answerable, content_words, word_coverage
from studio.rag.retrieval import Hit
from studio.rag.words_index import WordIndex

TEXTS = ["Holiday: every full-time employee gets 25 days of paid holiday a year.",
         "Sickness: tell your manager before 10:00 on the first day you are sick.",
         "Expenses are paid back within 30 days when the receipt is attached."]
INDEX = WordIndex.build([str(i) for i in range(len(TEXTS))], TEXTS)


def hits(similarity: float, texts=TEXTS[:2]) -> list[Hit]:
    return [Hit(id=str(i), text=t, file="handbook.pdf", pages=[i + 1], score=0.1, similarity=similarity - i * 0.05)
            for i, t in enumerate(texts)]


def test_content_words_drop_stopwords_and_short_words():
    assert content_words("What does the company pay when I am sick?") == ["company", "pay", "sick"]
    assert content_words("¿Cuántos días de vacaciones tengo?") == ["días", "vacaciones"]


def test_coverage_weighs_rare_and_unseen_words_most():
    assert word_coverage("How many holiday days do I get?", TEXTS[:1], INDEX) == 1.0
    assert word_coverage("Do I get paid sickness leave?", TEXTS[1:2], INDEX) < 0.6  # 'leave', 'paid' absent
    assert word_coverage("When am I sick?", TEXTS[1:2], INDEX) == 1.0
    assert word_coverage("sicknesses", TEXTS[1:2], INDEX) == 1.0  # shares 'sick' with 'sickness'
    assert word_coverage("How?", TEXTS, INDEX) == 1.0  # no content words: nothing to miss


def test_similarity_floor_sure_threshold_and_words_in_between():
    assert not answerable("How many holiday days do I get?", hits(0.2), INDEX)
    assert answerable("How many holiday days do I get?", hits(0.35), INDEX)
    assert not answerable("What is the dress code for wedding parties?", hits(0.35), INDEX)
    assert answerable("What is the dress code for wedding parties?", hits(0.55), INDEX)
    assert not answerable("How many holiday days do I get?", hits(0.35), INDEX, floor=0.4)
    assert not answerable("anything", [], INDEX)
