"""Judgements on RAG answers: thumbs up/down and better answers, kept and turned into training and test data.

Every judgement is appended to `<workspace>/rag/feedback.jsonl` (the question, the prompt the model
saw, its answer, the sources and the verdict). From that log, `save_feedback` rebuilds three things:
- the studio dataset `rag-feedback` (prompt, completion, label: thumbs up = true), for KTO;
- the studio dataset `rag-preferences` (prompt, chosen = the better answer, rejected = the model's), for
  DPO/ORPO and reward models;
- `<workspace>/rag/evalsets/<collection>.jsonl`: each approved answer's question with the file and pages
  of the source it cited first, a labelled test set for `studio rag eval`.
The prompt kept is the one the model answered (sources and question), so training teaches grounded answers.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from studio.errors import StudioError

FEEDBACK_DATASET = "rag-feedback"
PREFERENCE_DATASET = "rag-preferences"


def _folder(ws: Any) -> Path:
    folder = Path(ws.home) / "rag"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def feedback_log(ws: Any) -> list[dict]:
    path = _folder(ws) / "feedback.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def save_feedback(ws: Any, collection: str, answer: dict, rating: str | None = None, better: str = "",
                  model: str = "") -> dict:
    """Record a verdict on `answer` (an `Answer.as_dict()` plus its `messages`): `rating` 'up' or 'down', and/or a
    `better` answer written by the user. Returns what was updated: {datasets: [...], evalset: path or None}."""
    better = (better or "").strip()
    if rating not in (None, "up", "down"):
        raise StudioError(f"Rating '{rating}' is not 'up' or 'down'.", field="rag.rating", key="rag.feedback.rating",
                          rating=str(rating))
    if rating is None and not better:
        raise StudioError("There is nothing to save; give the answer a thumbs up or down, or write a better one.",
                          field="rag.feedback", key="rag.feedback.nothing")
    if not answer or not answer.get("answer"):
        raise StudioError("There is no answer to judge yet; ask a question first.", field="rag.feedback",
                          key="rag.feedback.no_answer")
    if better and better == answer["answer"].strip():
        raise StudioError("The better answer is the same as the model's; edit it, or just use thumbs up.",
                          field="rag.better", key="rag.feedback.same")
    messages = answer.get("messages") or []
    record = {"collection": collection, "question": answer["question"], "query": answer.get("query"),
              "answer": answer["answer"], "rating": rating, "better": better, "model": model,
              "found": answer.get("found", True), "system": next((m["content"] for m in messages
                                                                   if m["role"] == "system"), ""),
              "prompt": next((m["content"] for m in reversed(messages) if m["role"] == "user"), answer["question"]),
              "cited": [{"file": s["file"], "pages": s["pages"]} for s in answer.get("sources", []) if s.get("cited")],
              "saved_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    with (_folder(ws) / "feedback.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return _rebuild(ws, collection)


def _rebuild(ws: Any, collection: str) -> dict:
    from studio.data.store import import_file

    log = feedback_log(ws)
    exports = _folder(ws) / "exports"
    exports.mkdir(exist_ok=True)
    updated = []
    rated = [{"prompt": r["prompt"], "completion": r["answer"], "label": r["rating"] == "up"} for r in log
             if r.get("rating")]
    pairs = [{"system": r["system"], "prompt": r["prompt"], "chosen": r["better"], "rejected": r["answer"]}
             for r in log if r.get("better")]
    for name, rows, changed in ((FEEDBACK_DATASET, rated, bool(log[-1].get("rating"))),
                                (PREFERENCE_DATASET, pairs, bool(log[-1].get("better")))):
        if rows and changed:
            path = exports / f"{name}.jsonl"
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            updated.append(import_file(ws, path, name))
    tests = [{"question": r["question"], "file": r["cited"][0]["file"].split(" = ")[0], "page": r["cited"][0]["pages"]}
             for r in log if r["collection"] == collection and r.get("rating") == "up" and r.get("cited")]
    evalset = None
    if tests:
        evalset = _folder(ws) / "evalsets" / f"{collection}.jsonl"
        evalset.parent.mkdir(exist_ok=True)
        evalset.write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in tests), encoding="utf-8")
    return {"datasets": updated, "evalset": str(evalset) if evalset else None}
