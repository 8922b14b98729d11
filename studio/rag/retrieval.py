"""Finding the chunks that answer a question: dense (embeddings in Chroma), BM25 (words), or both fused.

Dense retrieval finds paraphrases ("car" for "automobile"); BM25 finds rare exact words (names,
codes, numbers) that embeddings blur. `retrieve` runs both over the same chunks and fuses the two
rankings with reciprocal rank fusion (RRF: each chunk scores sum 1 / (60 + rank)), which needs no
score calibration between the two. Each hit keeps its dense similarity (cosine, 0-1) so the
answer step can say "the documents do not contain it" when even the best hit is unrelated.
"""
from __future__ import annotations

import heapq
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
    """Okapi BM25 (k1 = 1.5, b = 0.75) over lower-cased Unicode words, with an inverted index: a question
    costs the postings of its own words, not a pass over every chunk."""

    def __init__(self, texts: list[str], k1: float = 1.5, b: float = 0.75):
        self.k1, self.b = k1, b
        self.postings: dict[str, list[tuple[int, int]]] = {}  # word -> [(chunk index, count)]
        lengths = []
        for i, text in enumerate(texts):
            counts = Counter(words(text))
            lengths.append(sum(counts.values()))
            for word, count in counts.items():
                self.postings.setdefault(word, []).append((i, count))
        self.size = len(texts)
        avg = sum(lengths) / max(self.size, 1)
        self.norm = [k1 * (1 - b + b * length / max(avg, 1e-9)) for length in lengths]
        n = self.size
        self.idf = {w: math.log(1 + (n - len(p) + 0.5) / (len(p) + 0.5)) for w, p in self.postings.items()}

    def sparse_scores(self, query: str) -> dict[int, float]:
        """{chunk index: score} of the chunks holding at least one of the query's words."""
        out: dict[int, float] = {}
        for word in words(query):
            idf = self.idf.get(word)
            if idf is None:
                continue
            for i, count in self.postings[word]:
                out[i] = out.get(i, 0.0) + idf * count * (self.k1 + 1) / (count + self.norm[i])
        return out

    def scores(self, query: str) -> list[float]:
        dense = [0.0] * self.size
        for i, score in self.sparse_scores(query).items():
            dense[i] = score
        return dense

    def top(self, query: str, k: int) -> list[tuple[int, float]]:
        """(index, score) of the k best documents with a positive score."""
        scored = self.sparse_scores(query)
        return [(i, s) for i, s in heapq.nlargest(k, scored.items(), key=lambda item: (item[1], -item[0])) if s > 0]


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
