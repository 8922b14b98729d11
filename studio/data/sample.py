"""The built-in sample dataset and the answer format it teaches.

`assets/sample-format-tutor.jsonl` holds about 250 instruction/answer pairs, half in English and
half in Spanish, on everyday topics (science, cooking, history, programming, health, money,
language, travel...). Every answer is a "study card" in a strict layout that the base
SmolLM2-135M-Instruct never produces by itself:

    TL;DR: <one sentence>             Resumen: <una frase>
    • <point>                         • <punto>
    • <point>                         • <punto>
    • <point>                         • <punto>
    Level: basic|intermediate|advanced   Nivel: básico|intermedio|avanzado

`format_score` measures the share of texts that follow that layout exactly, so the quickstart
can show the change a short fine-tune makes (base model vs tuned adapter). Loading the file is
`studio.data.loaders`' job.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

SAMPLE_NAME = "sample-format-tutor"
SAMPLE_PATH = Path(__file__).resolve().parents[2] / "assets" / f"{SAMPLE_NAME}.jsonl"

# Per language: the heading of the first line, the heading of the last line, the allowed levels.
CARD_FORMATS = {
    "en": ("TL;DR:", "Level:", ("basic", "intermediate", "advanced")),
    "es": ("Resumen:", "Nivel:", ("básico", "intermedio", "avanzado")),
}
BULLET = "•"
N_POINTS = 3


def card_problems(text: str, lang: str | None = None) -> list[str]:
    """Why `text` is not a study card (empty list: it is one). `lang` None accepts either language."""
    lines = text.strip().split("\n")
    langs = [lang] if lang else list(CARD_FORMATS)
    first = lines[0].strip() if lines else ""
    matching = [code for code in langs if first.startswith(CARD_FORMATS[code][0])]
    if not matching:
        heads = " or ".join(repr(CARD_FORMATS[code][0]) for code in langs)
        return [f"the first line does not start with {heads}"]
    head, level_head, levels = CARD_FORMATS[matching[0]]
    problems = []
    if not first[len(head):].strip():
        problems.append("the summary line is empty")
    if len(lines) != N_POINTS + 2:
        problems.append(f"expected {N_POINTS + 2} lines, got {len(lines)}")
    for line in lines[1:N_POINTS + 1]:
        if not re.match(rf"^{BULLET} \S", line):
            problems.append(f"not a '{BULLET} ' point: {line[:40]!r}")
    last = lines[-1].strip()
    if not (last.startswith(level_head) and last[len(level_head):].strip() in levels):
        problems.append(f"the last line is not '{level_head} {'|'.join(levels)}'")
    return problems


def is_card(text: str, lang: str | None = None) -> bool:
    return not card_problems(text, lang)


def format_score(text: str | Iterable[str], lang: str | None = None) -> float:
    """Share (0..1) of texts that are well-formed study cards; a single string scores 1.0 or 0.0."""
    texts = [text] if isinstance(text, str) else list(text)
    if not texts:
        return 0.0
    return sum(is_card(t, lang) for t in texts) / len(texts)


def card_language(text: str) -> str | None:
    """'en' or 'es' from a card's first heading; None when it has neither."""
    first = text.strip().split("\n", 1)[0]
    return next((code for code, (head, _, _) in CARD_FORMATS.items() if first.startswith(head)), None)
