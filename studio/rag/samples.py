"""The sample documents shipped in `assets/rag/`: four short PDFs (three English, one Spanish), questions whose
answers sit on known pages, and questions none of them answers.

They exist so that a demo, a test, the retrieval benchmark and the "the documents do not contain it" threshold
all run on the same realistic text without shipping binary files: `write_sample_pdfs` draws the PDFs from
`corpus.json` with the small writer in `pdfwriter`. Scoring retrieval against the questions is `evaluate`'s job.
"""
from __future__ import annotations

import json
from pathlib import Path

from studio.rag.pdfwriter import make_pdf

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "rag"


def sample_corpus() -> dict[str, list[str]]:
    """{file name: [page 1 text, page 2 text, ...]} for the sample documents."""
    return json.loads((ASSETS / "corpus.json").read_text(encoding="utf-8"))


def write_sample_pdfs(folder: Path) -> list[Path]:
    """Write the sample documents as PDFs into `folder` (created if needed); their paths in corpus order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [make_pdf(folder / name, pages) for name, pages in sample_corpus().items()]


def sample_questions(name: str = "questions.jsonl") -> list[dict]:
    """The questions about the sample documents, each {"question", "file", "page"}; `questions-es-over-en.jsonl`
    asks the three English documents in Spanish."""
    from studio.rag.evaluate import read_questions

    return read_questions(ASSETS / name)


def unanswerable_questions(name: str = "unanswerable.txt") -> list[str]:
    """Questions that none of the sample documents answers (some on nearby topics, some off-topic);
    `unanswerable-es.txt` holds Spanish ones."""
    lines = (ASSETS / name).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]
