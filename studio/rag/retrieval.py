"""Finding the chunks that answer a question: dense (embeddings in Chroma), BM25 (words), or both fused.

Dense retrieval finds paraphrases ("car" for "automobile"); BM25 (`words_index`) finds rare exact words (names,
codes, numbers) that embeddings blur. The store runs both over the same chunks and fuses the two
rankings with reciprocal rank fusion (RRF: each chunk scores sum 1 / (60 + rank)), which needs no
score calibration between the two. Each hit keeps its dense similarity (cosine, 0-1) so the
answer step can say "the documents do not contain it" when even the best hit is unrelated.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

RRF_K = 60
MODES = ("hybrid", "dense", "bm25")
_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


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
