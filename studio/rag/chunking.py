"""Cut a parsed document into chunks the embedder reads whole, each tied to its pages and offsets.

Chunks are measured in the embedder's own word pieces, never in characters or words: an embedder
silently drops whatever lies past its input limit (256 word pieces for all-MiniLM-L6-v2), so a chunk
longer than that is indexed by its beginning only. The text is split on blank lines (paragraphs)
first, then sentences, then words, and for a single giant run without spaces at word-piece
boundaries; the pieces are packed in order up to the size, and each chunk repeats the last few
tokens of the one before it (starting at a sentence or word) so that an idea cut in two is still
found. A chunk never mixes documents and never crosses a page break (its overlap neither), so
every citation names the one page its text comes from (`pages` stays a list for formats where a
page is not known); `start`/`end` give its exact place in `document_text(doc)`. Embedding and storing chunks is left
to `store`; reading files to `parsing`.
"""
from __future__ import annotations

import hashlib
import json
import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.errors import StudioError
from studio.rag.parsing import Document
from studio.settings import setting

PAGE_SEPARATOR = "\n\n"
MIN_CHUNK_TOKENS = 16
SANE_MAX_LENGTH = 512  # what BERT-style embedders take when the tokenizer reports "no limit"
# A tokenizer's model_max_length at or above this is transformers' "unset" sentinel (int(1e30)).
HUGE_MAX_LENGTH = 1_000_000

PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# After . ! ? or … (optionally closed by a quote or bracket) and whitespace; CJK enders need no space.
SENTENCE_BREAK = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”’»)\]]))\s+|(?<=[。！？])\s*")
WORD_BREAK = re.compile(r"\s+")
LEVELS = (PARAGRAPH_BREAK, SENTENCE_BREAK, WORD_BREAK)


@dataclass
class ChunkSettings:
    """How long chunks are and how much of each one the next repeats."""

    chunk_tokens: int = setting(200, help="Longest chunk, in the embedder's word pieces (about 3/4 of a word "
                                "each in English). Never more than the embedder reads in one go (254 for the "
                                "built-in one), whatever is set here.", min=MIN_CHUNK_TOKENS, max=8192)
    overlap_tokens: int = setting(40, help="How many word pieces at the end of a chunk the next chunk repeats, "
                                  "so a sentence cut in two is still found whole.", min=0, max=8191)

    def __post_init__(self):
        if self.chunk_tokens < MIN_CHUNK_TOKENS:
            raise StudioError(f"'rag.chunk_tokens' is {self.chunk_tokens}; use at least {MIN_CHUNK_TOKENS} so a "
                              "chunk holds a sentence.", field="rag.chunk_tokens", key="rag.chunk.too_small",
                              value=self.chunk_tokens, low=MIN_CHUNK_TOKENS)
        if self.overlap_tokens < 0:
            raise StudioError(f"'rag.overlap_tokens' is {self.overlap_tokens}; use 0 or more.",
                              field="rag.overlap_tokens", key="rag.chunk.negative_overlap",
                              value=self.overlap_tokens)
        if self.overlap_tokens >= self.chunk_tokens:
            raise StudioError(f"'rag.overlap_tokens' ({self.overlap_tokens}) must be smaller than "
                              f"'rag.chunk_tokens' ({self.chunk_tokens}); lower the overlap, e.g. to "
                              f"{self.chunk_tokens // 5}.", field="rag.overlap_tokens",
                              key="rag.chunk.overlap_too_big", overlap=self.overlap_tokens,
                              size=self.chunk_tokens, suggested=self.chunk_tokens // 5)


@dataclass
class Chunk:
    """A piece of one document, small enough for the embedder to read whole."""

    text: str
    file: str  # the document's name
    pages: list[int]  # 1-based page numbers the text comes from, sorted
    start: int  # document_text(doc)[start:end] == text
    end: int
    sha256: str  # of the whitespace-normalised text, so identical passages are stored once


def document_text(doc: Document) -> str:
    """The whole document as one string: its pages joined by a blank line (a paragraph break)."""
    return PAGE_SEPARATOR.join(page.text for page in doc.pages)


def token_limit(tokenizer: Any) -> int:
    """The most content tokens one embedder input holds: its maximum length less [CLS]/[SEP] and the like.

    A sentence-transformers folder's `max_seq_length` wins over the tokenizer's own, larger figure
    (MiniLM's tokenizer says 512, the model is trained and truncates at 256)."""
    length = getattr(tokenizer, "model_max_length", None) or HUGE_MAX_LENGTH
    if length >= HUGE_MAX_LENGTH:
        length = SANE_MAX_LENGTH
    config = Path(str(getattr(tokenizer, "name_or_path", "") or "")) / "sentence_bert_config.json"
    if config.is_file():
        length = min(length, json.loads(config.read_text()).get("max_seq_length") or length)
    return length - tokenizer.num_special_tokens_to_add()


def chunk_document(doc: Document, tokenizer: Any, settings: ChunkSettings | None = None) -> list[Chunk]:
    """Cut `doc` into chunks of at most min(chunk_tokens, token_limit(tokenizer)) word pieces.

    `tokenizer` is a Hugging Face fast tokenizer (it must give offsets). When the embedder's limit
    is below chunk_tokens, the overlap shrinks in the same proportion."""
    settings = settings or ChunkSettings()
    limit = min(settings.chunk_tokens, token_limit(tokenizer))
    overlap = settings.overlap_tokens * limit // settings.chunk_tokens
    return _Chunker(doc, tokenizer, limit, overlap).chunks(doc)


class _Chunker:
    """One document's text, its word-piece offsets, and the packing of its pieces into chunks."""

    def __init__(self, doc: Document, tokenizer: Any, limit: int, overlap: int):
        self.text, self.tokenizer, self.limit, self.overlap = document_text(doc), tokenizer, limit, overlap
        self.pages = _page_spans(doc)
        # One batch over the pages (a page break is a paragraph break, so nothing spans two); a span's
        # size is then how many word pieces start inside it.
        encoded = tokenizer([page.text for page in doc.pages], add_special_tokens=False,
                            return_offsets_mapping=True, verbose=False)["offset_mapping"] if doc.pages else []
        self.starts = [page_start + a for (page_start, _, _), offsets in zip(self.pages, encoded)
                       for a, _ in offsets]

    def _offsets(self, text: str) -> list[tuple[int, int]]:
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [tuple(pair) for pair in encoded["offset_mapping"]]

    def page_of(self, offset: int) -> int:
        """The number of the page whose text holds character `offset`."""
        return next((number for start, end, number in self.pages if start <= offset < end), self.pages[-1][2])

    def count(self, a: int, b: int) -> int:
        return bisect_left(self.starts, b) - bisect_left(self.starts, a)

    def chunks(self, doc: Document) -> list[Chunk]:
        pieces = self._pieces(0, len(self.text), 0)
        spans, i, start = [], 0, None
        while i < len(pieces):
            if start is None:
                start = pieces[i][0]
            j, page = i, self.page_of(pieces[i][0])
            # A chunk stays on one page, so every citation names the page it comes from.
            while (j + 1 < len(pieces) and self.page_of(pieces[j + 1][0]) == page
                   and self.count(start, pieces[j + 1][1]) <= self.limit):
                j += 1
            start, j = self._fit(pieces, start, i, j)
            spans.append((start, pieces[j][1]))
            i = j + 1
            same_page = i < len(pieces) and self.page_of(pieces[i][0]) == page
            start = self._overlap_start(spans[-1], pieces[i]) if same_page else None
        return [self._chunk(doc, a, b) for a, b in spans]

    def _pieces(self, a: int, b: int, level: int) -> list[tuple[int, int]]:
        """Spans of at most `limit` word pieces covering the text in [a, b), split as coarsely as they fit."""
        out = []
        for s, e in _split(self.text, a, b, LEVELS[level]):
            if self.count(s, e) <= self.limit:
                out.append((s, e))
            elif level + 1 < len(LEVELS):
                out += self._pieces(s, e, level + 1)
            else:  # one run without spaces longer than a chunk: cut it between word pieces,
                # leaving room for the overlap the next chunk takes from this piece
                first, last = bisect_left(self.starts, s), bisect_left(self.starts, e)
                step = max(self.limit - self.overlap, 1)
                cuts = [s, *self.starts[first + step:last:step], e]
                out += list(zip(cuts, cuts[1:]))
        return out

    def _fit(self, pieces: list[tuple[int, int]], start: int, i: int, j: int) -> tuple[int, int]:
        """Check the chunk [start, pieces[j].end) on the real tokenizer and back off while it is too long.

        Counting word pieces of the whole text is exact for BERT-style tokenizers; others may tokenize
        a cut-out span a little differently, and the embedder sees the span on its own."""
        while len(self._offsets(self.text[start:pieces[j][1]])) > self.limit:
            if j > i:
                j -= 1
            elif start < pieces[i][0]:
                start = pieces[i][0]  # drop the overlap before cutting a piece
            else:
                offsets = self._offsets(self.text[start:pieces[i][1]])
                cut = max(start + offsets[self.limit - 1][1], start + 1)
                pieces[i:i + 1] = [(start, cut), *_split(self.text, cut, pieces[i][1], WORD_BREAK)[:1]]
        return start, j

    def _overlap_start(self, previous: tuple[int, int], following: tuple[int, int]) -> int:
        """Where the next chunk starts: inside `previous`, so its last ~overlap word pieces are repeated,
        at a sentence start if that keeps at least half of them, else at a word start."""
        budget = min(self.overlap, self.limit - self.count(*following))
        a, b = previous
        if budget <= 0:
            return following[0]
        for breaks in (_sentence_starts, _word_starts):
            fitting = [p for p in breaks(self.text, a, b) if self.count(p, b) <= budget]
            if fitting and (breaks is _word_starts or 2 * self.count(fitting[0], b) >= budget):
                return fitting[0]
        last = bisect_left(self.starts, b)  # a run without spaces: start between word pieces
        first = max(last - budget, bisect_left(self.starts, a) + 1)
        return self.starts[first] if first < last else following[0]

    def _chunk(self, doc: Document, a: int, b: int) -> Chunk:
        """The chunk text[a:b], with the pages that hold some of its (non-blank) text."""
        numbers = []
        for s, e, number in self.pages[max(bisect_right(self.pages, (a, len(self.text) + 1)) - 1, 0):]:
            if s >= b:
                break
            if self.text[max(s, a):min(e, b)].strip():
                numbers.append(number)
        text = self.text[a:b]
        digest = hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()
        return Chunk(text=text, file=doc.name, pages=sorted(numbers), start=a, end=b, sha256=digest)


def _page_spans(doc: Document) -> list[tuple[int, int, int]]:
    """(start, end, page number) of each page in document_text(doc), in order."""
    spans, offset = [], 0
    for page in doc.pages:
        spans.append((offset, offset + len(page.text), page.number))
        offset += len(page.text) + len(PAGE_SEPARATOR)
    return spans


def _split(text: str, a: int, b: int, pattern: re.Pattern) -> list[tuple[int, int]]:
    """The non-blank spans of text[a:b] between matches of `pattern`, trimmed of whitespace."""
    spans, last = [], a
    for match in pattern.finditer(text, a, b):
        spans.append((last, match.start()))
        last = match.end()
    spans.append((last, b))
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if s < e:
            out.append((s, e))
    return out


def _sentence_starts(text: str, a: int, b: int) -> list[int]:
    """Where sentences and paragraphs begin strictly inside (a, b), in order."""
    return sorted({m.end() for pattern in (PARAGRAPH_BREAK, SENTENCE_BREAK)
                   for m in pattern.finditer(text, a, b) if a < m.end() < b})


def _word_starts(text: str, a: int, b: int) -> list[int]:
    return [m.end() for m in WORD_BREAK.finditer(text, a, b) if a < m.end() < b]
