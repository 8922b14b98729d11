"""What the RAG tests share: a small corpus of known text on known pages and a deterministic fake embedder."""
from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

from tests.rag_pdf import make_pdf

CORPUS = {
    "garden.pdf": ["Tomatoes need six hours of sun a day.\n\nWater them at the base, not on the leaves.",
                   "Basil grows well next to tomatoes and keeps some insects away."],
    "bikes.pdf": ["Check the tyre pressure every week; road tyres want 6 to 8 bar.",
                  "A chain needs oil every 300 kilometres or after riding in the rain."],
    "taxes.txt": ["The deadline for the yearly tax form is the 30th of June.\fLate forms pay a fee of 50 euros."],
}


class FakeEmbedder:
    """Words hashed into 64 buckets, normalised: texts sharing words are close. Uses the real MiniLM tokenizer."""

    name, dim = "fake-words", 64

    def __init__(self):
        from transformers import AutoTokenizer

        from studio.models.embedded import minilm_path

        self.tokenizer = AutoTokenizer.from_pretrained(minilm_path())

    def encode(self, texts):
        out = []
        for text in texts:
            v = [0.0] * self.dim
            for word in re.findall(r"\w+", text.lower()):
                v[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
            norm = math.sqrt(sum(x * x for x in v)) or 1.0
            out.append([x / norm for x in v])
        return out


def write_corpus(folder: Path) -> list[Path]:
    """The corpus's files in `folder`: PDFs one page per string, the .txt with form feeds between pages."""
    paths = []
    for name, pages in CORPUS.items():
        if name.endswith(".pdf"):
            paths.append(make_pdf(folder / name, pages))
        else:
            (folder / name).write_text(pages[0], encoding="utf-8")
            paths.append(folder / name)
    return paths
