"""The collection's word index: BM25 from `bm25s`, stemmed in the collection's language, saved beside it.

Built once when a collection changes (after an ingest, or on the first search after another process changed it)
and loaded memory-mapped by every process that searches, so a question never re-reads every chunk. The stemmer
(Snowball, through PyStemmer) follows the language most of the chunks are written in: "pierdes" and "pierdo"
meet at "pierd", "printers" and "printer" at "printer". Numbers and one-letter codes stay words."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np

TOKENS = r"(?u)\b\w+\b"
# langdetect's codes -> Snowball stemmers; other languages are indexed unstemmed.
STEMMERS = {"en": "english", "es": "spanish", "fr": "french", "de": "german", "pt": "portuguese", "it": "italian",
            "nl": "dutch", "ca": "catalan"}
SAMPLE = 40  # chunks read to decide a collection's language
META = "studio.json"


def collection_language(texts: list[str]) -> str | None:
    """The langdetect code most of `texts` (an even sample of them) are written in; None when undecided."""
    from langdetect import DetectorFactory, LangDetectException, detect

    DetectorFactory.seed = 0  # the same texts always give the same language
    step = max(1, len(texts) // SAMPLE)
    votes: dict[str, int] = {}
    for text in texts[::step][:SAMPLE]:
        try:
            code = detect(text)
        except LangDetectException:
            continue
        votes[code] = votes.get(code, 0) + 1
    return max(votes, key=votes.get) if votes else None


def _stemmer(language: str | None):
    import Stemmer

    name = STEMMERS.get(language or "")
    return Stemmer.Stemmer(name) if name else None


class WordIndex:
    """BM25 (bm25s, Lucene's variant: k1 = 1.5, b = 0.75) over one collection's chunks, in `ids` order."""

    def __init__(self, retriever, ids: list[str], language: str | None, stamp: str):
        self.retriever, self.ids, self.language, self.stamp = retriever, ids, language, stamp
        self.stemmer = _stemmer(language)
        self.size = len(ids)
        self.vocab: dict[str, int] = retriever.vocab_dict if retriever is not None else {}

    @classmethod
    def build(cls, ids: list[str], texts: list[str], stamp: str = "", language: str | None = None) -> "WordIndex":
        import bm25s

        if not texts:  # an empty collection: nothing to index, every score 0
            return cls(None, [], language, stamp)
        language = language or collection_language(texts)
        tokens = bm25s.tokenize(texts, stopwords=None, stemmer=_stemmer(language), token_pattern=TOKENS,
                                show_progress=False)
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        return cls(retriever, list(ids), language, stamp)

    def save(self, folder: Path) -> None:
        """Write the index into `folder`, replacing what was there only once the new one is complete."""
        folder = Path(folder)
        if self.retriever is None:
            return
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.retriever.save(str(tmp), show_progress=False)
        (tmp / META).write_text(json.dumps({"ids": self.ids, "language": self.language, "stamp": self.stamp}),
                                encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)

    @classmethod
    def load(cls, folder: Path) -> "WordIndex | None":
        """The index saved in `folder` (memory-mapped), or None when there is none or it is unreadable."""
        import bm25s

        meta_path = Path(folder) / META
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            retriever = bm25s.BM25.load(str(folder), mmap=True, show_progress=False)
        except (OSError, ValueError, KeyError):
            return None
        return cls(retriever, meta["ids"], meta.get("language"), meta.get("stamp", ""))

    def terms(self, text: str) -> list[str]:
        """`text`'s words as the index knows them (lower-cased, stemmed), each once, unknown ones dropped."""
        import bm25s

        tokens = bm25s.tokenize(text, stopwords=None, stemmer=self.stemmer, token_pattern=TOKENS,
                                return_ids=False, show_progress=False)[0]
        return [t for t in dict.fromkeys(tokens) if t in self.vocab]

    def scores(self, query: str) -> np.ndarray:
        terms = self.terms(query)
        if not terms or not self.size:
            return np.zeros(self.size, dtype=np.float32)
        return self.retriever.get_scores(terms)

    def top(self, query: str, k: int) -> list[tuple[int, float]]:
        """(index, score) of the k best chunks with a positive score, best first."""
        scores = self.scores(query)
        k = min(k, self.size)
        if k <= 0:
            return []
        best = np.argpartition(-scores, k - 1)[:k]
        ranked = sorted(best.tolist(), key=lambda i: (-float(scores[i]), i))
        return [(i, float(scores[i])) for i in ranked if scores[i] > 0]

    def idf(self, word: str) -> float:
        """How rare `word` is among the chunks (Lucene's idf of its stem); a word no chunk holds gets the idf of a
        word in no chunk, the highest."""
        stem = self.stemmer.stemWord(word.lower()) if self.stemmer else word.lower()
        column = self.vocab.get(stem)
        df = 0
        if column is not None:
            indptr = self.retriever.scores["indptr"]
            df = int(indptr[column + 1] - indptr[column])
        return math.log(1 + (self.size - df + 0.5) / (df + 0.5))
