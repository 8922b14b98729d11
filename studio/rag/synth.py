"""Training data from documents: a teacher model writes a question for passages of a collection, and its answer.

`sample_passages` picks passages spread evenly over the collection; `write_pairs` asks the teacher (any model or
finished run; the embedded one works offline) for one question a reader could ask about each passage, in the
passage's language, then answers it from the passage: the teacher writes the answer, or (a teacher under 1B
parameters, which invents) the passage's own sentences closest to the question are the answer, as the RAG chat's
'quote' style does. Each pair keeps its file and page and says whether it is `grounded` (the question is about the
passage and the answer's words come from it), so a reviewer sees which to distrust. `save_pairs` turns the reviewed pairs into a versioned
instruction dataset (question -> answer) and a retrieval test set (`question`, `file`, `page` per line) that
`studio rag eval` scores the collection on.
"""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

from studio.errors import StudioError
from studio.rag.answerable import content_words

FIELD = "rag.synth"
GROUNDED_SHARE = 0.6  # at least this share of the answer's content words appear in the passage
MAX_PASSAGES = 500
QUESTION_GROUNDED = 0.34  # a question shares at least a third of its content words with its passage
ANSWERS = ("auto", "quote", "teacher")
ANSWER_SYSTEM = "Answer the question using only the passage. Keep it short."
_PREFIX = re.compile(r"^\s*(question|pregunta|q)\s*[:：]\s*", re.IGNORECASE)


def sample_passages(store: Any, collection: str, n: int, seed: int = 0) -> list[dict]:
    """Up to `n` passages spread evenly over the collection (in index order: file by file, page by page), each
    {"chunk_id", "text", "file", "page"}."""
    if not 0 < n <= MAX_PASSAGES:
        raise StudioError(f"'passages' is {n}; ask for 1 to {MAX_PASSAGES} passages.", field="passages",
                          key="rag.synth.passages", n=n, most=MAX_PASSAGES)
    name = store.require(collection)
    ids = store.word_index(name).ids
    step = max(1, len(ids) // n)
    picked = ids[seed % step::step][:n]
    col = store.client.get_collection(name, embedding_function=None)
    got = col.get(ids=picked, include=["documents", "metadatas"])
    rows = {i: (d, m) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"])}
    out = []
    for chunk_id in picked:
        text, meta = rows[chunk_id]
        pages = [int(p) for p in str(meta["pages"]).split(",") if p]
        out.append({"chunk_id": chunk_id, "text": text, "file": meta["file"], "page": pages[0] if pages else 1})
    return out


def clean_question(text: str) -> str | None:
    """The teacher's question: its first line without quotes or a "Question:" label; None unless it is a question of
    three words or more."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    line = _PREFIX.sub("", line).strip().strip('"“”\'*').strip()
    return line if line.endswith("?") and len(line.split()) >= 3 else None


def grounded(text: str, passage: str, share: float = GROUNDED_SHARE) -> bool:
    """Whether at least `share` of `text`'s content words are in the passage."""
    words = content_words(text)
    if not words:
        return False
    present = set(content_words(passage))
    return sum(w in present for w in words) / len(words) >= share


def question_prompt(passage: str) -> list[dict]:
    """Ask for one question the passage answers, in the passage's language."""
    from studio.rag.grounding import answer_language

    language = answer_language(passage[:600])
    ask = "Write one question that the text above answers."
    if language and language != "English":
        ask += f" Write it in {language}."
    return [{"role": "user", "content": f"{passage}\n\n{ask}"}]


def write_pairs(passages: list[dict], ask: Callable[[list[dict]], str], answer: Callable[[str, str], str],
                progress: Callable[[int, int], Any] = lambda done, total: None) -> list[dict]:
    """One {"question", "answer", "file", "page", "chunk_id", "grounded"} per passage the teacher wrote a question
    for (`ask(messages)` is its reply) that `answer(question, passage)` answered. `grounded`: the question is about
    the passage and the answer's words come from it."""
    pairs = []
    for done, passage in enumerate(passages, start=1):
        question = clean_question(ask(question_prompt(passage["text"])))
        reply = answer(question, passage["text"]).strip() if question else ""
        if question and reply:
            pairs.append({"question": question, "answer": reply, "file": passage["file"], "page": passage["page"],
                          "chunk_id": passage["chunk_id"],
                          "grounded": grounded(question, passage["text"], QUESTION_GROUNDED)
                          and grounded(reply, passage["text"])})
        progress(done, len(passages))
    return pairs


def quote_answerer(embedder: Any) -> Callable[[str, str], str]:
    """Answers made of the passage's own sentences closest to the question (the RAG chat's 'quote' style)."""
    from studio.rag.answer import NOT_FOUND, Source, quote_answer

    def answer(question: str, passage: str) -> str:
        source = Source(n=1, file="", pages=[], text=passage, score=0.0, similarity=None, chunk_id="")
        text = quote_answer(question, [source], embedder, 0.0)
        return "" if text == NOT_FOUND else " ".join(text.replace(" [1]", "").split())

    return answer


def model_answerer(generate: Callable[[list[dict]], str]) -> Callable[[str, str], str]:
    """Answers the teacher writes from the passage."""
    def answer(question: str, passage: str) -> str:
        return generate([{"role": "system", "content": ANSWER_SYSTEM},
                         {"role": "user", "content": f"Passage:\n{passage}\n\nQuestion: {question}"}])

    return answer


def teacher(ws: Any, spec: str, embedder: Any, answers: str = "auto", max_new_tokens: int = 96,
            pool: Any = None) -> tuple[Callable, Callable, str]:
    """(ask, answer, how answers are written) with the model or run `spec` (greedy). `answers`: 'teacher' writes
    them, 'quote' takes the passage's sentences, 'auto' quotes for a teacher under 1B parameters (the embedded
    135M one invents when it writes)."""
    from studio.evaluation import resolve_target
    from studio.generation import GenerationSettings, ModelPool, stream_chat
    from studio.rag.grounding import resolved_style

    if answers not in ANSWERS:
        raise StudioError(f"'answers' is '{answers}'; choose {', '.join(ANSWERS)}.", field="answers",
                          key="rag.synth.answers", answers=answers, choices=", ".join(ANSWERS))
    target = resolve_target(ws, spec)
    pool = pool or ModelPool(ws, capacity=1)
    settings = GenerationSettings(do_sample=False, max_new_tokens=max_new_tokens)

    def generate(messages: list[dict]) -> str:
        text = ""
        for text in stream_chat(ws, target.model, target.run_id, messages, settings, pool):
            pass
        return text

    if answers == "auto":
        answers = "quote" if resolved_style("auto", pool.get(target.model, target.run_id).model) == "quote" \
            else "teacher"
    return generate, quote_answerer(embedder) if answers == "quote" else model_answerer(generate), answers


def save_pairs(ws: Any, pairs: list[dict], name: str) -> dict:
    """The kept pairs as a new version of dataset `name` (instruction: question -> answer) and a retrieval test
    set `STUDIO_HOME/rag/tests/<name>.jsonl`; returns {"dataset", "version", "rows", "test_set"}."""
    from studio.data.builder import ImportRequest, import_dataset
    from studio.data.cleaning import SplitConfig

    kept = [p for p in pairs if str(p.get("question", "")).strip() and str(p.get("answer", "")).strip()]
    if not kept:
        raise StudioError("There are no question and answer pairs to save; write some first, or keep at least one.",
                          field=FIELD, key="rag.synth.nothing")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / f"{name}.jsonl"
        source.write_text("".join(json.dumps({"question": p["question"], "answer": p["answer"], "file": p["file"],
                                              "page": p["page"]}, ensure_ascii=False) + "\n" for p in kept),
                          encoding="utf-8")
        result = import_dataset(ws, ImportRequest(source=str(source), name=name, format="instruction",
                                                  mapping={"instruction": "question", "output": "answer"},
                                                  split=SplitConfig(validation=0.0)))
    tests = Path(ws.home) / "rag" / "tests"
    tests.mkdir(parents=True, exist_ok=True)
    test_set = tests / f"{result.name}.jsonl"
    test_set.write_text("".join(json.dumps({"question": p["question"], "file": p["file"], "page": int(p["page"])},
                                           ensure_ascii=False) + "\n" for p in kept), encoding="utf-8")
    return {"dataset": result.name, "version": result.version, "rows": result.imported, "test_set": str(test_set)}
