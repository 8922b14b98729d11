"""Sentence embedders for the RAG index: the embedded all-MiniLM-L6-v2 by default, any sentence-transformers
model by hub id when the machine is online.

`Embedder` is what the index needs: a stable `name` (recorded in each collection so a query never
mixes embedding spaces), the vector size, the tokenizer (chunking counts its word pieces) and
`encode`, which returns unit-length vectors so Chroma's cosine distance is 1 - dot product.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from studio.errors import StudioError

DEFAULT_EMBEDDER = "all-minilm-l6-v2"
BATCH = 64


class Embedder(Protocol):
    name: str
    dim: int
    tokenizer: Any

    def encode(self, texts: list[str]) -> list[list[float]]: ...


@dataclass
class SentenceEmbedder:
    name: str
    model: Any

    @property
    def dim(self) -> int:
        dimension = getattr(self.model, "get_embedding_dimension", None)  # sentence-transformers >= 6
        return int(dimension() if dimension else self.model.get_sentence_embedding_dimension())

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def encode(self, texts: list[str]) -> list[list[float]]:
        vectors = self.model.encode(list(texts), batch_size=BATCH, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return vectors.tolist()


_LOADED: dict[str, SentenceEmbedder] = {}


def load_embedder(spec: str, ws) -> SentenceEmbedder:
    """The sentence embedder `spec` names (alias, folder or hub id), loaded once per process."""
    from studio.models.catalogue import resolve_model

    name = (spec or DEFAULT_EMBEDDER).strip()
    if name in _LOADED:
        return _LOADED[name]
    source = resolve_model(name, ws)
    try:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(source), device="cuda" if _has_cuda() else "cpu")
    except (OSError, ValueError) as error:
        raise StudioError(f"'{name}' could not be loaded as a sentence embedder ({error}); use "
                          f"'{DEFAULT_EMBEDDER}' or a sentence-transformers model.", field="rag.embedder",
                          key="rag.embedder.load", name=name, reason=str(error)) from None
    _LOADED[name] = SentenceEmbedder(name, model)
    return _LOADED[name]


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
