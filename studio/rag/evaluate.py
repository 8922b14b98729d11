"""How well a collection's retrieval finds the page that answers a question: hit rate, MRR and nDCG per mode.

`read_questions` reads a questions file (JSONL or CSV with `question`, `file`, `page`), refusing a bad line
with its number and the fix; `evaluate_retrieval` asks the collection every question in every retrieval mode
and scores where the first chunk from an expected page lands. Relevance is per page, not per chunk: a page
counts once, at the rank of its best chunk, so two chunks of the same page never push nDCG above 1. Running
the searches is `store`'s job; generating answers is not evaluated here.
"""
from __future__ import annotations

import csv
import json
import math
import re
import time
from pathlib import Path
from typing import Any

from studio.errors import StudioError
from studio.rag.retrieval import MODES, Hit

FIELD = "rag.questions"
SUFFIXES = (".jsonl", ".csv")
DEPTH = 10  # MRR and nDCG look this far down the ranking
EXAMPLE = '{"question": "...", "file": "manual.pdf", "page": 3}'
_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def read_questions(path: Path) -> list[dict]:
    """The questions in `path`, each {"question", "file", "pages" (sorted ints), "page" (the first), "line"}.

    Each JSONL line (or CSV row) has "question", "file" and "page": a number, a list of numbers or a range
    like "3-5"; "pages" may stand in for "page"."""
    path = Path(path)
    if not path.is_file():
        raise StudioError(f"Questions file '{path}' does not exist; give the path of a .jsonl or .csv file.",
                          field=FIELD, key="rag.eval.no_file", file=str(path))
    if path.suffix.lower() not in SUFFIXES:
        raise StudioError(f"Questions file '{path.name}' must be .jsonl (one {EXAMPLE} per line) or .csv with the "
                          f"columns question, file, page.", field=FIELD, key="rag.eval.bad_format", file=path.name)
    text = path.read_text(encoding="utf-8-sig")
    records = _csv_records(text) if path.suffix.lower() == ".csv" else _jsonl_records(text, path.name)
    questions = [_question(record, line, path.name) for line, record in records]
    if not questions:
        raise StudioError(f"Questions file '{path.name}' has no questions; write one {EXAMPLE} per line.",
                          field=FIELD, key="rag.eval.empty", file=path.name)
    return questions


def _jsonl_records(text: str, name: str) -> list[tuple[int, Any]]:
    records = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            records.append((line, json.loads(raw)))
        except json.JSONDecodeError as e:
            raise StudioError(f"Line {line} of '{name}' is not valid JSON ({e.msg}); write one object per line, "
                              f"like {EXAMPLE}.", field=FIELD, key="rag.eval.not_json", file=name, line=line,
                              error=e.msg) from None
    return records


def _csv_records(text: str) -> list[tuple[int, Any]]:
    reader = csv.DictReader(text.splitlines())
    # line_num after reading a row is that row's line in the file (the header is line 1)
    return [(reader.line_num, row) for row in reader if any(str(v or "").strip() for v in row.values())]


def _question(record: Any, line: int, name: str) -> dict:
    if not isinstance(record, dict):
        raise StudioError(f"Line {line} of '{name}' is not an object; write it like {EXAMPLE}.", field=FIELD,
                          key="rag.eval.not_object", file=name, line=line)
    for needed in ("question", "file"):
        if not str(record.get(needed) or "").strip():
            raise StudioError(f"Line {line} of '{name}' has no '{needed}'; every line needs \"question\", \"file\" "
                              f"and \"page\", like {EXAMPLE}.", field=FIELD, key="rag.eval.missing_field",
                              file=name, line=line, name=needed)
    value = record.get("pages") if record.get("pages") not in (None, "") else record.get("page")
    if value in (None, ""):
        raise StudioError(f"Line {line} of '{name}' has no 'page'; give the page that answers it, like {EXAMPLE}.",
                          field=FIELD, key="rag.eval.missing_field", file=name, line=line, name="page")
    pages = _pages(value)
    if not pages:
        raise StudioError(f"Line {line} of '{name}': page {json.dumps(value, ensure_ascii=False)} is not a page "
                          "number; use a number like 3, a list like [3, 4] or a range like \"3-5\".", field=FIELD,
                          key="rag.eval.bad_page", file=name, line=line, value=str(value))
    return {"question": str(record["question"]).strip(), "file": str(record["file"]).strip(), "pages": pages,
            "page": pages[0], "line": line}


def _pages(value: Any) -> list[int]:
    """Sorted page numbers from 3, "3", [3, 4], "3-5" or "3, 4"; [] when any part is not a page number."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value] if value >= 1 else []
    if isinstance(value, list):
        parts = [_pages(v) for v in value]
        return [] if not parts or not all(parts) else sorted({p for part in parts for p in part})
    if isinstance(value, str):
        if "," in value:
            return _pages([v for v in value.split(",")])
        if found := _RANGE.match(value):
            low, high = int(found[1]), int(found[2])
            return list(range(low, high + 1)) if 1 <= low <= high else []
        return _pages(int(value)) if value.strip().isdigit() else []
    return []


def check_request(store: Any, collection: str, questions: list[dict], k: int = 5,
                  modes: tuple[str, ...] = MODES) -> None:
    """Refuse a bad k or mode, no questions, a missing collection or a question about a file it lacks: all
    known without an embedder, so `studio rag eval` checks them before loading one."""
    if not 1 <= k <= DEPTH:
        raise StudioError(f"k is {k}; use a number from 1 to {DEPTH}.", field="rag.k", key="rag.eval.bad_k", k=k,
                          high=DEPTH)
    for mode in modes:
        if mode not in MODES:
            raise StudioError(f"Retrieval mode '{mode}' does not exist; choose {', '.join(MODES)}.",
                              field="rag.mode", key="rag.store.bad_mode", mode=mode, modes=", ".join(MODES))
    if not questions:
        raise StudioError("There are no questions to evaluate; give a questions file with at least one line.",
                          field=FIELD, key="rag.eval.no_questions")
    store.require(collection)
    files = list(store.manifest(collection)["files"])
    for q in questions:
        if q["file"] not in files:
            raise StudioError(f"Question '{q['question']}' names '{q['file']}', which is not in collection "
                              f"'{collection}'; use one of its files: {', '.join(files)}.", field=FIELD,
                              key="rag.eval.unknown_file", file=q["file"], collection=collection,
                              files=", ".join(files))


def evaluate_retrieval(store: Any, collection: str, embedder: Any, questions: list[dict], k: int = 5,
                       modes: tuple[str, ...] = MODES, translate: str = "off") -> dict:
    """Ask `collection` every question in each mode; hit rate@k, MRR and nDCG@10 per mode, and one row per question.

    Returns {"k", "questions", "modes": {mode: {"hit_rate", "mrr", "ndcg@10", "recall", "seconds"}}, "rows"}; a
    row gives the question, its file and pages, and per mode the rank of the first relevant chunk (None when
    none is in the top 10) and the top hit's file and pages. `translate` (see `studio.rag.translate`): a question in
    another language than the documents is also searched in translation, as the chat does; each row keeps it."""
    from studio.rag.translate import cross_language

    check_request(store, collection, questions, k, modes)
    store.collection(collection, embedder)  # another embedder's collection is refused here
    rows = [{"question": q["question"], "file": q["file"], "pages": q["pages"], "rank": {}, "top": {},
             "cross": cross_language(store, collection, q["question"], translate)} for q in questions]
    summary = {}
    for mode in modes:
        began = time.perf_counter()
        scores = []
        for q, row in zip(questions, rows):
            hits = store.search(collection, q["question"], embedder, k=max(k, DEPTH), mode=mode,
                                also=row["cross"]["also"])
            score = score_ranking(hits, q["file"], q["pages"], k)
            scores.append(score)
            row["rank"][mode] = score["rank"]
            row["top"][mode] = {"file": hits[0].file, "pages": hits[0].pages} if hits else None
        n = len(scores)
        summary[mode] = {name: round(sum(s[name] for s in scores) / n, 4)
                         for name in ("hit_rate", "mrr", "ndcg@10", "recall")}
        summary[mode]["seconds"] = round(time.perf_counter() - began, 3)
    for row in rows:
        cross = row.pop("cross")
        row["translation"] = cross["also"][0] if cross["also"] else None
    return {"k": k, "questions": len(questions), "modes": summary, "rows": rows}


def score_ranking(hits: list[Hit], file: str, pages: list[int], k: int) -> dict:
    """One question's scores: rank of the first relevant hit, hit@k, reciprocal rank, nDCG@10 and recall@k.

    A hit is relevant when it comes from `file` (or a copy indexed under several names, "a.pdf = b.pdf") and
    from an expected page that no better-ranked hit already covered."""
    wanted = set(pages)
    found: set[int] = set()
    relevant_ranks = []
    found_in_k: set[int] = set()
    for rank, hit in enumerate(hits[:DEPTH], start=1):
        new = (set(hit.pages) & wanted) - found
        if file in [n.strip() for n in hit.file.split(" = ")] and new:
            found |= new
            relevant_ranks.append(rank)
            if rank <= k:
                found_in_k |= new
    first = relevant_ranks[0] if relevant_ranks else None
    dcg = sum(1 / math.log2(rank + 1) for rank in relevant_ranks)
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(len(wanted), DEPTH) + 1))
    return {"rank": first, "hit_rate": float(first is not None and first <= k), "mrr": 1 / first if first else 0.0,
            "ndcg@10": dcg / ideal, "recall": len(found_in_k) / len(wanted)}


def missed_by_every_mode(report: dict) -> list[dict]:
    """The rows whose expected page was in no mode's top k."""
    k = report["k"]
    return [row for row in report["rows"]
            if all(rank is None or rank > k for rank in row["rank"].values())]
