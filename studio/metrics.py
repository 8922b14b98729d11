"""Text-generation metrics, computed offline with the reference libraries themselves.

`evaluate.load("rouge")` fetches its script from the hub and fails offline, so ROUGE comes from
`rouge-score` and BLEU from `sacrebleu` directly:

- ROUGE-1/2/L: mean F1 over the pairs, from `rouge_score.RougeScorer` without stemming. Its
  default tokenizer keeps only ASCII letters and digits ("está" -> "est"), useless for Spanish,
  so words are Unicode `\\w+` runs, lower-cased; on ASCII text the two agree exactly.
- BLEU: `sacrebleu.corpus_bleu` with its standard 13a tokenisation, on the 0-100 scale people
  quote.
- exact match: share of predictions equal to their reference after trimming and collapsing
  whitespace.
- perplexity: exp of the mean negative log-likelihood per predicted token.

All take parallel lists of predictions and references; values are not rounded.
"""
from __future__ import annotations

import math
import re

TEXT_METRICS = ("rouge1", "rouge2", "rougeL", "bleu", "exact_match")


class UnicodeWords:
    """rouge-score tokenizer: lower-cased Unicode words."""

    def tokenize(self, text: str) -> list[str]:
        return re.findall(r"\w+", text.lower())


def rouge(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F1 (0-1)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=UnicodeWords())
    sums = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for prediction, reference in zip(predictions, references, strict=True):
        for key, score in scorer.score(reference, prediction).items():
            sums[key] += score.fmeasure
    n = max(len(references), 1)
    return {key: total / n for key, total in sums.items()}


def bleu(predictions: list[str], references: list[str]) -> float:
    """Corpus BLEU (0-100) with one reference per prediction."""
    import sacrebleu

    if len(predictions) != len(references):
        raise ValueError("predictions and references differ in length")
    if not predictions:
        return 0.0
    return float(sacrebleu.corpus_bleu(predictions, [references]).score)


def _normal(text: str) -> str:
    return " ".join(text.split())


def exact_match(predictions: list[str], references: list[str]) -> float:
    """Share (0-1) of predictions equal to their reference, ignoring leading, trailing and repeated whitespace."""
    pairs = list(zip(predictions, references, strict=True))
    return sum(_normal(p) == _normal(r) for p, r in pairs) / max(len(pairs), 1)


def text_metrics(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Every text metric of TEXT_METRICS for these pairs."""
    return {**rouge(predictions, references), "bleu": bleu(predictions, references),
            "exact_match": exact_match(predictions, references)}


def perplexity(mean_nll: float) -> float:
    """exp(mean NLL per token), capped so a diverged model reads as a huge number rather than an overflow."""
    return math.exp(min(mean_nll, 50.0))
