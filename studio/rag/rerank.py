"""An optional second look at the passages found: a cross-encoder reads the question and each passage
together and re-orders them.

Dense and BM25 retrieval score the question and a passage separately, which is fast but coarse; a
cross-encoder (e.g. `cross-encoder/ms-marco-MiniLM-L6-v2`) scores each pair jointly, more accurately
and about k times slower. None is shipped with the studio: it is used when the user names one (a hub
id when the machine is online, or a local folder), and the answer step then retrieves three times
more passages and keeps the best k after re-ranking.
"""
from __future__ import annotations

from typing import Any

from studio.errors import StudioError
from studio.rag.retrieval import Hit

FIELD = "rag.reranker"
_LOADED: dict[str, Any] = {}


def load_reranker(spec: str, ws: Any) -> Any:
    """The sentence-transformers `CrossEncoder` that `spec` names, loaded once per process."""
    from studio.models.catalogue import resolve_model

    name = spec.strip()
    if name not in _LOADED:
        source = resolve_model(name, ws)
        try:
            import torch
            from sentence_transformers import CrossEncoder

            _LOADED[name] = CrossEncoder(str(source), device="cuda" if torch.cuda.is_available() else "cpu")
        except (OSError, ValueError) as error:
            raise StudioError(f"'{name}' could not be loaded as a re-ranker ({error}); name a cross-encoder such "
                              "as 'cross-encoder/ms-marco-MiniLM-L6-v2' (online) or a folder holding one, or leave "
                              "the re-ranker empty.", field=FIELD, key="rag.rerank.load", name=name,
                              reason=str(error)) from None
    return _LOADED[name]


def rerank(model: Any, query: str, hits: list[Hit], k: int) -> list[Hit]:
    """The `k` hits the cross-encoder scores highest for `query`, best first; `score` becomes its score and the
    retrieval score moves to `meta['retrieval_score']`."""
    if not hits:
        return hits
    scores = model.predict([(query, h.text) for h in hits], show_progress_bar=False)
    ranked = sorted(zip(hits, scores), key=lambda pair: -float(pair[1]))[:k]
    for hit, score in ranked:
        hit.meta = {**hit.meta, "retrieval_score": hit.score}
        hit.score = float(score)
    return [hit for hit, _ in ranked]
