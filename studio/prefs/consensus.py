"""One consensus ranking per item from several annotators' rankings: average-rank Borda.

Each annotator gives each candidate its rank (1 = best; tied candidates share the average of the
places they span, so a tie neither helps nor hurts them); the consensus orders candidates by their
mean rank over annotators, and candidates with the same mean rank form a tie group. Borda rather
than ranked pairs (Tideman): it is simple to explain to an annotator ("answers sorted by their
average place"), it uses ties as given instead of needing a rule for them, it always gives a
result, and with the 2-6 candidates and handful of annotators of an item the two rarely differ.
Ranked pairs would resist a lone annotator's extreme placements better; the admin's list of
contested items (`agreement.contested`) is where such disagreements are settled instead.
"""
from __future__ import annotations

from typing import Any, Sequence

from studio.errors import StudioError
from studio.prefs.ranking import Ranking, ranks, validate_ranking

TOLERANCE = 1e-9  # mean ranks closer than this tie (they are sums of halves divided by the annotator count)


def rank_vector(ranking: Sequence[Any], k: int | None = None) -> list[float]:
    """Ranks (1 = best, ties averaged) from tie groups `[[1], [0, 2]]` or from a rank vector `[2.5, 1, 2.5]`."""
    if ranking and all(isinstance(g, (list, tuple)) for g in ranking):
        return ranks(validate_ranking(ranking, sum(len(g) for g in ranking) if k is None else k))
    vector = [float(r) for r in ranking]
    if k is not None and len(vector) != k:
        raise StudioError(f"A rank vector has {len(vector)} ranks for {k} answers; give one rank per answer.",
                          field="prefs.ranking", key="prefs.ranking.wrong_length", count=len(vector), k=k)
    return vector


def mean_ranks(rankings: Sequence[Sequence[Any]], k: int) -> list[float]:
    """Each candidate's rank averaged over the annotators' rankings (tie groups or rank vectors)."""
    if not rankings:
        raise StudioError("There are no rankings to combine; an item needs at least one submitted ranking.",
                          field="prefs.ranking", key="prefs.consensus.no_rankings")
    vectors = [rank_vector(r, k) for r in rankings]
    return [sum(v[i] for v in vectors) / len(vectors) for i in range(k)]


def groups_from_scores(scores: Sequence[float]) -> Ranking:
    """Tie groups, lowest score (best mean rank) first; scores within TOLERANCE tie."""
    groups: Ranking = []
    last = None
    for index in sorted(range(len(scores)), key=lambda i: (scores[i], i)):
        if last is not None and scores[index] - last <= TOLERANCE:
            groups[-1].append(index)
        else:
            groups.append([index])
            last = scores[index]
    return groups


def borda(rankings: Sequence[Sequence[Any]], k: int) -> Ranking:
    """The consensus of several annotators' rankings of one item's `k` candidates, as tie groups best first:
    candidates sorted by mean rank, equal means tied (`[[0],[1],[2]]` and `[[1],[0],[2]]` -> `[[0, 1], [2]]`)."""
    return groups_from_scores(mean_ranks(rankings, k))
