"""Answering a question from a collection: retrieve, build a prompt with numbered sources, stream, cite.

`answer_question` is the whole loop. The question is first made to stand alone (`standalone_query`:
a follow-up such as "and how long does it take?" carries the previous question's words into the
search), the collection is searched (`RagStore.search`), and when the passages cannot answer it
(`answerable`: even the best is unrelated, or only loosely related and missing most of the question's
rarer words) the answer says the documents do not contain it instead of letting the model invent one. Otherwise the retrieved chunks
become numbered sources in the prompt (`build_messages`), the model's answer streams, and the
markers it writes ([1], [2]) are matched back to their sources (`cited_numbers`). Each update is an
`Answer`: the query searched for, the sources with file, pages, snippet and scores, the answer so far.
Generation goes through `studio.generation.stream_chat`, so any model, hub id or finished run answers
with the playground's settings. This module never imports gradio.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterator

from studio.errors import StudioError
from studio.rag.answerable import MIN_SIMILARITY, answerable
from studio.rag.grounding import answer_language, repetition_cut, resolved_style
from studio.rag.retrieval import MODES, Hit, words
from studio.rag.translate import TRANSLATE, cross_language
from studio.settings import setting

NOT_FOUND = "The documents do not contain an answer to this question."
SYSTEM = ("You answer questions using only the numbered sources you are given. After each fact, cite the source "
          "it comes from as [1], [2] and so on. If the sources do not contain the answer, say that the documents "
          "do not contain it.")
# Words that make a question lean on the one before it ("what about its price?", "¿y cuánto cuesta eso?").
_REFERRING = set("""it its it's they them their theirs this that these those he him his she her there then
    also same other else former latter one ones
    eso esto ese esa esos esas ello él ella ellos ellas su sus lo la los las le les allí ahí aquello mismo misma
    también otro otra""".split())
_OPENERS = ("and ", "what about", "how about", "y ", "¿y ", "e ", "¿qué tal", "what else", "and?", "¿y?")
SNIPPET_CHARS = 320
STYLES = ("auto", "generate", "quote")
QUOTE_SENTENCES = 3
RELATIVE_FLOOR = 0.85
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_PARAGRAPH = re.compile(r"\n\s*\n")


@dataclass
class AskSettings:
    """How the RAG chat searches before it answers; every help text is what the UI shows."""

    k: int = setting(4, help="How many passages of your documents the model reads before answering (more: more "
                     "context, but a longer, slower prompt).", min=1, max=20)
    mode: str = setting("hybrid", help="How passages are found: 'hybrid' combines meaning (embeddings) and exact "
                        "words (BM25); 'dense' uses meaning only; 'bm25' exact words only.", choices=MODES)
    min_similarity: float = setting(MIN_SIMILARITY, help="When even the best passage is less similar to the question "
                                    "than this (0-1), the answer says the documents do not contain it instead of "
                                    "guessing (between this and 0.5, the passages must also hold most of the "
                                    "question's words).", min=0.0, max=1.0, advanced=True)
    style: str = setting("auto", help="'quote': the answer is the passages' sentences closest to the question, each "
                         "with its source: always grounded, instant. 'generate': the model writes the answer from the "
                         "passages and cites them (small models such as the embedded 135M one often ignore them and "
                         "invent). 'auto': quote with models under 1B parameters, generate with larger ones.",
                         choices=STYLES)
    reranker: str = setting("", help="Optional: a cross-encoder that re-reads the question with each passage found and "
                            "re-orders them (more accurate, slower), e.g. 'cross-encoder/ms-marco-MiniLM-L6-v2' when "
                            "online, or a folder holding one. Empty: no re-ranking.", advanced=True)
    rewrite_followups: bool = setting(True, help="Make follow-up questions ('and how much does it cost?') stand "
                                      "alone by adding the previous question's words to the search.", advanced=True)
    translate: str = setting("auto", help="A question in another language than the documents is also searched in "
                             "translation: 'auto' translates with Apertium when it has the language pair (offline; "
                             "apt install apertium apertium-en-es), 'model' asks the answering model (good from about "
                             "1B parameters), 'off' searches the question as written.", choices=TRANSLATE,
                             advanced=True)


@dataclass
class Source:
    n: int                 # the number the prompt and the answer use: [n]
    file: str
    pages: list[int]
    text: str
    score: float           # ranking score of the retrieval mode (RRF, cosine or BM25)
    similarity: float | None
    chunk_id: str
    cited: bool = False

    @property
    def snippet(self) -> str:
        flat = " ".join(self.text.split())
        return flat if len(flat) <= SNIPPET_CHARS else flat[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " ..."

    def as_dict(self) -> dict:
        return {"n": self.n, "file": self.file, "page": self.pages[0] if self.pages else None, "pages": self.pages,
                "text": self.text, "snippet": self.snippet, "score": round(self.score, 4),
                "similarity": None if self.similarity is None else round(self.similarity, 4), "cited": self.cited}


@dataclass
class Answer:
    question: str
    query: str                                   # what was searched for (the question made to stand alone)
    translation: str | None = None               # the query in the documents' language, searched too
    sources: list[Source] = field(default_factory=list)
    text: str = ""
    found: bool = True                           # False: the documents do not contain it (nothing relevant)
    done: bool = False
    messages: list[dict] = field(default_factory=list)  # the prompt the model saw
    stats: dict = field(default_factory=dict)    # tokens, seconds, tokens_per_s, first_token_s
    best_similarity: float | None = None
    indexing: dict | None = None                 # the collection's indexing job while one runs

    @property
    def citations(self) -> list[Source]:
        """The sources the answer cites; all retrieved sources when it cites none (marked cited=False)."""
        cited = [s for s in self.sources if s.cited]
        return cited or ([] if not self.found else list(self.sources))

    def as_dict(self) -> dict:
        return {"question": self.question, "query": self.query, "translation": self.translation, "answer": self.text, "found": self.found,
                "citations": [s.as_dict() for s in self.citations],
                # A refused question lists no sources (they did not back anything); the nearest passages stay
                # visible to whoever tunes min_similarity.
                "sources": [s.as_dict() for s in self.sources] if self.found else [],
                "closest": [] if self.found else [s.as_dict() for s in self.sources],
                "best_similarity": None if self.best_similarity is None else round(self.best_similarity, 4),
                "indexing": self.indexing,
                "stats": {k: round(v, 3) if isinstance(v, float) else v for k, v in self.stats.items()}}


def is_followup(question: str) -> bool:
    """Whether `question` leans on an earlier one: it opens like a follow-up or refers back with a pronoun."""
    text = question.strip().lower()
    if text.startswith(_OPENERS):
        return True
    tokens = words(text)
    return bool(tokens) and (any(t in _REFERRING for t in tokens) or len(tokens) <= 3)


def standalone_query(question: str, previous: list[str]) -> str:
    """The search query for `question`: itself, or, for a follow-up, the previous query's words followed by it.

    `previous` holds the queries of earlier turns (already standalone), oldest first."""
    question = question.strip()
    if previous and is_followup(question):
        return f"{previous[-1]} {question}"
    return question


def sources_block(sources: list[Source]) -> str:
    parts = []
    for s in sources:
        pages = ", ".join(map(str, s.pages))
        parts.append(f"[{s.n}] {s.file}, page {pages}:\n{' '.join(s.text.split())}")
    return "\n\n".join(parts)


def build_messages(question: str, sources: list[Source], history: list[dict] | None = None,
                   system: str | None = None) -> list[dict]:
    """The chat the model sees: the instructions, earlier turns (questions and answers only, no old sources),
    then the numbered sources with the question."""
    messages = [{"role": "system", "content": system or SYSTEM}]
    for turn in (history or [])[-4:]:
        if turn.get("role") in ("user", "assistant") and str(turn.get("content") or "").strip():
            messages.append({"role": turn["role"], "content": str(turn["content"])})
    language = answer_language(question)
    answer_in = f" Answer in {language}." if language else ""
    messages.append({"role": "user", "content": f"Sources:\n\n{sources_block(sources)}\n\nQuestion: {question}\n"
                                                f"Answer from the sources and cite them like [1].{answer_in}"})
    return messages


_MARKER = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


def cited_numbers(answer: str, count: int) -> list[int]:
    """The source numbers 1..count that `answer` cites as [n] (also [1, 2]), in order of first citation."""
    seen: list[int] = []
    for group in _MARKER.findall(answer):
        for part in re.split(r"[,;]", group):
            n = int(part)
            if 1 <= n <= count and n not in seen:
                seen.append(n)
    return seen


def to_sources(hits: list[Hit]) -> list[Source]:
    return [Source(n=i, file=h.file, pages=h.pages, text=h.text, score=h.score, similarity=h.similarity,
                   chunk_id=h.id) for i, h in enumerate(hits, start=1)]


def fit_sources(sources: list[Source], tokenizer: Any, budget: int) -> list[Source]:
    """The leading sources whose text fits `budget` tokens of prompt (at least one)."""
    kept, used = [], 0
    for s in sources:
        used += len(tokenizer(s.text, add_special_tokens=False)["input_ids"]) + 16
        if kept and used > budget:
            break
        kept.append(s)
    return kept


def check_question(question: str | None) -> str:
    """The question without surrounding spaces; an empty one is refused."""
    question = (question or "").strip()
    if not question:
        raise StudioError("The question is empty; type a question about your documents.", field="question",
                          key="rag.answer.empty_question")
    return question


def answer_question(ws: Any, store: Any, collection: str, question: str, embedder: Any, *,
                    model: str, run_id: str | None = None, generation: Any = None, ask: AskSettings | None = None,
                    history: list[dict] | None = None, previous_queries: list[str] | None = None,
                    pool: Any = None) -> Iterator[Answer]:
    """Yield the growing `Answer` to `question` over `collection`; the last one has `done=True`.

    `history` is the chat so far as role/content messages; `previous_queries` the standalone queries of its
    earlier questions (for follow-ups). `model`/`run_id` pick the answering model as in the playground."""
    from studio.generation import GenerationSettings, ModelPool, stream_chat

    question = check_question(question)
    ask = ask or AskSettings()
    query = standalone_query(question, previous_queries or []) if ask.rewrite_followups else question
    pool = pool or ModelPool(ws, capacity=1)
    cross = cross_language(store, collection, query, ask.translate, _model_translator(ws, model, run_id, pool))
    also = cross["also"]
    if ask.reranker.strip():
        from studio.rag.rerank import load_reranker, rerank

        reranker = load_reranker(ask.reranker, ws)
        found = store.search(collection, query, embedder, k=ask.k * 3, mode=ask.mode, also=also)
        hits = rerank(reranker, also[0] if also else query, found, ask.k)
    else:
        hits = store.search(collection, query, embedder, k=ask.k, mode=ask.mode, also=also)
    sources = to_sources(hits)
    best = max((s.similarity for s in sources if s.similarity is not None), default=None)
    result = Answer(question=question, query=query, sources=sources, best_similarity=best,
                    translation=also[0] if also else None)
    result.stats["translation"] = cross["by"]
    index = store.word_index(collection)
    if not any(answerable(wording, hits, index, ask.min_similarity) for wording in [query, *also]):
        result.found, result.text, result.done = False, NOT_FOUND, True
        yield result
        return
    entry = None if ask.style == "quote" else pool.get(model, run_id)
    if ask.style == "quote" or resolved_style(ask.style, entry.model) == "quote":
        result.text = quote_answer(also[0] if also else query, sources, embedder, ask.min_similarity)
        result.stats["style"] = "quote"
        _mark_cited(result)
        result.done = True
        yield result
        return
    result.stats["style"] = "generate"
    context = int(getattr(entry.model.config, "max_position_embeddings", 2048) or 2048)
    generation = generation or GenerationSettings(do_sample=False, max_new_tokens=200)
    result.sources = fit_sources(sources, entry.tokenizer, max(context - generation.max_new_tokens - 400, 256))
    result.messages = build_messages(question, result.sources, history)
    yield result
    for text in stream_chat(ws, model, run_id, result.messages, generation, pool, stats=result.stats):
        cut = repetition_cut(text)
        result.text = text if cut is None else text[:cut].rstrip()
        _mark_cited(result)
        yield result
        if cut is not None:  # the answer loops: stop generating (the stream ends the generation) and keep it once
            result.stats["stopped"] = "repetition"
            break
    result.done = True
    yield result


def _model_translator(ws: Any, model: str, run_id: str | None, pool: Any):
    """A function that has the answering model write a translation (greedy, short), for `translate: model`."""
    def translate(messages: list[dict]) -> str:
        from studio.generation import GenerationSettings, stream_chat

        text = ""
        for text in stream_chat(ws, model, run_id, messages, GenerationSettings(do_sample=False, max_new_tokens=96),
                                pool):
            pass
        return text.strip().split("\n")[0]

    return translate


def _mark_cited(result: Answer) -> None:
    cited = set(cited_numbers(result.text, len(result.sources)))
    for s in result.sources:
        s.cited = s.n in cited


def quote_answer(query: str, sources: list[Source], embedder: Any, min_similarity: float,
                 limit: int = QUOTE_SENTENCES) -> str:
    """The sources' sentences most similar to `query` (at most `limit`, at least `min_similarity`), in source order,
    each followed by its marker: an answer made only of the documents' own words."""
    sentences = [(s.n, i, text) for s in sources for i, text in enumerate(_sentences(s.text))
                 if len(words(text)) >= 3]
    if not sentences:
        return NOT_FOUND
    vectors = embedder.encode([query] + [text for _, _, text in sentences])
    q = vectors[0]
    scored = sorted(((sum(a * b for a, b in zip(q, v)), item) for v, item in zip(vectors[1:], sentences)),
                    key=lambda pair: -pair[0])
    floor = max(min_similarity, RELATIVE_FLOOR * scored[0][0])  # drop sentences far below the best one
    best = [item for score, item in scored[:limit] if score >= floor] or [scored[0][1]]
    return " ".join(f"{text} [{n}]" for n, _, text in sorted(best))


def _sentences(text: str) -> list[str]:
    """`text`'s sentences, each on one line. A paragraph break ends a sentence, and so does a heading: a short
    line (at most 8 words) without closing punctuation followed by a line that starts with a capital."""
    lines = text.split("\n")
    for i in range(len(lines) - 1):
        line, following = lines[i].strip(), lines[i + 1].strip()
        if line and following[:1].isupper() and len(line.split()) <= 8 and line[-1] not in ".,;:-":
            lines[i] = line + "\n"
    text = "\n".join(lines)
    return [sentence.strip() for paragraph in _PARAGRAPH.split(text)
            for sentence in _SENTENCE_END.split(" ".join(paragraph.split())) if sentence.strip()]
