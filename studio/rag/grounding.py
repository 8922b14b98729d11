"""What keeps a RAG answer honest with a small model: the style chosen for it, the language it answers in, and
where a looping answer is cut.

`resolved_style('auto', model)`: models under `GROUNDED_BELOW` parameters (the embedded 135M one among them) often
ignore their sources and invent, so they answer with the documents' own sentences ('quote'); larger ones write
('generate'). `answer_language` names the question's language when it is clear, so the prompt asks for an
answer in it. `repetition_cut` finds where a generated answer starts repeating a sentence it already wrote.
"""
from __future__ import annotations

import re
from typing import Any

GROUNDED_BELOW = 1_000_000_000  # parameters: below this, 'auto' answers by quoting the documents
_CLAUSE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")
_MARKERS = re.compile(r"\[\d+(?:\s*[,;]\s*\d+)*\]")


def parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def resolved_style(style: str, model: Any) -> str:
    """'quote' or 'generate' for an AskSettings.style; 'auto' follows the answering model's size."""
    if style != "auto":
        return style
    return "quote" if parameters(model) < GROUNDED_BELOW else "generate"


def answer_language(question: str) -> str | None:
    """The English name of the question's language ('Spanish') when it is clear (three words or more and
    langdetect sure of it), else None."""
    from studio.rag.translate import LANGUAGES, question_language

    if len(question.split()) < 3:
        return None
    return LANGUAGES.get(question_language(question, sure=0.9) or "")


def repetition_cut(text: str, min_words: int = 4) -> int | None:
    """Where `text` starts a sentence (of `min_words` words or more) it already wrote, else None: cutting there
    keeps the first time and drops the loop."""
    seen: set[str] = set()
    for match in _CLAUSE.finditer(text):
        words = _MARKERS.sub("", match.group()).lower().split()
        if len(words) < min_words:
            continue
        key = " ".join(w.strip(".,;:!?¿¡\"'") for w in words)
        if key in seen:
            return match.start()
        seen.add(key)
    return None
