"""studio.metrics against the reference implementations on fixed pairs."""
from __future__ import annotations

import math

import pytest

from studio.metrics import bleu, exact_match, perplexity, rouge, text_metrics

PREDICTIONS = ["the cat sat on the mat", "a quick brown fox", "budgets plan money for a month",
               "photosynthesis turns light into sugar", "nothing in common"]
REFERENCES = ["the cat is on the mat", "the quick brown fox jumps", "a budget plans your money for one month",
              "photosynthesis turns light into chemical energy", "completely different words here"]


def test_rouge_equals_rouge_score_on_english_pairs():
    from rouge_score import rouge_scorer

    reference = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])  # its own default tokenizer
    ours = rouge(PREDICTIONS, REFERENCES)
    for key in ("rouge1", "rouge2", "rougeL"):
        expected = sum(reference.score(r, p)[key].fmeasure for p, r in zip(PREDICTIONS, REFERENCES)) / 5
        assert ours[key] == pytest.approx(expected, abs=1e-6)
    assert 0 < ours["rougeL"] < 1


def test_rouge_keeps_accented_words_that_the_default_tokenizer_mangles():
    # rouge-score's default turns "está" into "est" and "sí" into "s": different words would match.
    assert rouge(["está aquí"], ["esta aqui"])["rouge1"] == 0.0
    assert rouge(["La fotosíntesis está aquí"], ["la fotosíntesis está aquí"])["rouge1"] == pytest.approx(1.0)
    half = text_metrics(["esta casa", "Sales up."], ["está casa", "Sales up."])
    assert half["rouge1"] == pytest.approx(0.75) and half["exact_match"] == 0.5


def test_bleu_equals_sacrebleu_corpus_bleu():
    import sacrebleu

    assert bleu(PREDICTIONS, REFERENCES) == pytest.approx(sacrebleu.corpus_bleu(PREDICTIONS, [REFERENCES]).score,
                                                          abs=1e-6)
    assert bleu(["the cat is on the mat"], ["the cat is on the mat"]) == pytest.approx(100.0)
    assert bleu([], []) == 0.0


def test_exact_match_ignores_only_whitespace():
    assert exact_match(["  yes\n", "No", "a  b"], ["yes", "no", "a b"]) == pytest.approx(2 / 3)


def test_text_metrics_has_every_metric_and_perplexity_is_exp_nll():
    metrics = text_metrics(PREDICTIONS, REFERENCES)
    assert set(metrics) == {"rouge1", "rouge2", "rougeL", "bleu", "exact_match"}
    assert perplexity(math.log(12.5)) == pytest.approx(12.5)
    assert perplexity(1e9) == pytest.approx(math.exp(50))
    with pytest.raises(ValueError):
        rouge(["one"], [])
