"""Finding the chunks that answer a question: dense (embeddings in Chroma), BM25 (words), or both fused.

Dense retrieval finds paraphrases ("car" for "automobile"); BM25 finds rare exact words (names,
codes, numbers) that embeddings blur. `retrieve` runs both over the same chunks and fuses the two
rankings with reciprocal rank fusion (RRF: each chunk scores sum 1 / (60 + rank)), which needs no
score calibration between the two. Each hit keeps its dense similarity (cosine, 0-1) so the
answer step can say "the documents do not contain it" when even the best hit is unrelated.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

RRF_K = 60
MODES = ("hybrid", "dense", "bm25")
_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class BM25:
    """Okapi BM25 (k1 = 1.5, b = 0.75) over lower-cased Unicode words."""

    def __init__(self, texts: list[str], k1: float = 1.5, b: float = 0.75):
        self.k1, self.b = k1, b
        self.docs = [Counter(words(t)) for t in texts]
        self.lengths = [sum(d.values()) for d in self.docs]
        self.avg = sum(self.lengths) / max(len(self.docs), 1)
        df = Counter(w for d in self.docs for w in d)
        n = len(self.docs)
        self.idf = {w: math.log(1 + (n - f + 0.5) / (f + 0.5)) for w, f in df.items()}

    def scores(self, query: str) -> list[float]:
        terms = [w for w in words(query) if w in self.idf]
        out = []
        for doc, length in zip(self.docs, self.lengths):
            norm = self.k1 * (1 - self.b + self.b * length / max(self.avg, 1e-9))
            out.append(sum(self.idf[w] * doc[w] * (self.k1 + 1) / (doc[w] + norm) for w in terms if w in doc))
        return out

    def top(self, query: str, k: int) -> list[tuple[int, float]]:
        """(index, score) of the k best documents with a positive score."""
        ranked = sorted(enumerate(self.scores(query)), key=lambda item: -item[1])
        return [(i, s) for i, s in ranked[:k] if s > 0]


def rrf(rankings: list[list[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal rank fusion of several ranked id lists, best first."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda item: -item[1])


@dataclass
class Hit:
    id: str
    text: str
    file: str
    pages: list[int]
    score: float                  # the ranking score of the mode used (RRF, cosine or BM25)
    similarity: float | None = None  # cosine similarity to the question, when the dense side saw it
    bm25: float | None = None
    meta: dict = field(default_factory=dict)
