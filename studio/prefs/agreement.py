"""How much annotators agree: Kendall's W per item, Krippendorff's alpha per task set, each annotator
against the others, and the most contested items.

An item's rankings are given per annotator, either as tie groups `[[1], [0, 2]]` or as rank vectors
`[2.5, 1, 2.5]` (1 = best, ties averaged). Every statistic returns None where it is undefined (one
annotator, or nothing varies) rather than a made-up number. What counts as a submission and where
rankings are stored is left to the task-set store.

- Kendall's W (coefficient of concordance, with the tie correction):
  W = 12 S / (m^2 (k^3 - k) - m sum_j T_j), S = sum_i (R_i - m (k + 1) / 2)^2, R_i the sum of
  candidate i's ranks over the m annotators, T_j = sum over annotator j's tie groups of (t^3 - t).
  0 = no agreement, 1 = identical rankings (rankings that are all identical, even all tied, give 1).
- Krippendorff's alpha: 1 - D_o / D_e from the coincidence matrix of the values pairable within each
  unit (Krippendorff, 2011, "Computing Krippendorff's Alpha-Reliability", Annenberg School for
  Communication, Departmental Papers 43). For rankings the units are (item, candidate) and the
  values the ranks, compared with the ordinal metric
  delta^2(c, k) = (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2 over the ordered rank values, n_g the
  coincidence matrix's marginals; alpha = 1 - (n - 1) sum o_ck delta^2_ck / sum n_c n_k delta^2_ck.
  Ranks from items with different K share one scale of rank values.
- An annotator's agreement is Kendall's tau-b between their ranking and the mean ranks (Borda) of the
  other annotators of the same item, averaged over items. Tau-b rather than Spearman: with 2-6
  candidates it is the share of candidate pairs ordered alike minus the share ordered oppositely, the
  very pairs that become training data, and it treats ties properly. Items where either side ties
  every candidate give no tau and are not counted.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from studio.prefs.consensus import mean_ranks, rank_vector

METRICS = ("nominal", "ordinal", "interval")


def _item_k(rankings: Sequence[Any]) -> int:
    return len(rank_vector(rankings[0]))


def kendalls_w(rankings: Sequence[Sequence[Any]], k: int | None = None) -> float | None:
    """Kendall's W of several annotators' rankings of one item (see the module docstring); None with fewer than
    2 annotators."""
    m = len(rankings)
    if m < 2:
        return None
    k = _item_k(rankings) if k is None else k
    vectors = [rank_vector(r, k) for r in rankings]
    sums = [sum(v[i] for v in vectors) for i in range(k)]
    s = sum((r - m * (k + 1) / 2) ** 2 for r in sums)
    ties = sum(t ** 3 - t for v in vectors for t in Counter(v).values())
    denominator = m * m * (k ** 3 - k) - m * ties
    if denominator <= 1e-12:  # every annotator tied every candidate: identical rankings
        return 1.0
    return min(1.0, max(0.0, 12 * s / denominator))


def krippendorff_alpha(units: Sequence[Mapping[Hashable, Any]], metric: str = "ordinal") -> float | None:
    """Krippendorff's alpha for `units`, each a dict coder -> value (None = not coded). Units with fewer than
    two values cannot be paired and are left out. None when nothing is pairable or only one value occurs."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, not {metric!r}")
    coded = [[v for v in unit.values() if v is not None] for unit in units]
    coded = [values for values in coded if len(values) >= 2]
    levels = sorted({v for values in coded for v in values})
    if len(levels) < 2:
        return None
    where = {v: i for i, v in enumerate(levels)}
    observed = np.zeros((len(levels), len(levels)))
    for values in coded:
        counts = np.bincount([where[v] for v in values], minlength=len(levels)).astype(float)
        # each ordered pair of values from different coders adds 1 / (m_u - 1)
        observed += (np.outer(counts, counts) - np.diag(counts)) / (len(values) - 1)
    marginals = observed.sum(axis=1)
    n = marginals.sum()
    if metric == "nominal":
        delta = 1.0 - np.eye(len(levels))
    elif metric == "interval":
        values = np.asarray(levels, dtype=float)
        delta = (values[:, None] - values[None, :]) ** 2
    else:
        cumulative = np.cumsum(marginals)
        index = np.arange(len(levels))
        low, high = np.minimum.outer(index, index), np.maximum.outer(index, index)
        between = cumulative[high] - cumulative[low] + marginals[low]  # sum of n_g for g from low to high
        delta = (between - (marginals[:, None] + marginals[None, :]) / 2) ** 2
    expected = (np.outer(marginals, marginals) * delta).sum()
    if expected <= 0:
        return None
    return float(1 - (n - 1) * (observed * delta).sum() / expected)


def krippendorff_alpha_ordinal(items: Sequence[Mapping[Hashable, Any]]) -> float | None:
    """Ordinal alpha of a task set: `items` is a list of dicts annotator -> ranking (tie groups or rank vector);
    every (item, candidate) is a unit whose values are the ranks the annotators gave it."""
    units = []
    for item in items:
        vectors = {who: rank_vector(r) for who, r in item.items()}
        k = max((len(v) for v in vectors.values()), default=0)
        units.extend({who: v[i] for who, v in vectors.items() if i < len(v)} for i in range(k))
    return krippendorff_alpha(units, "ordinal")


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b of two equally long score lists; None when either ties everything."""
    concordant = discordant = tied_x = tied_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = x[i] - x[j], y[i] - y[j]
            tied_x += dx == 0
            tied_y += dy == 0
            concordant += dx * dy > 0
            discordant += dx * dy < 0
    pairs = len(x) * (len(x) - 1) // 2
    if tied_x == pairs or tied_y == pairs:
        return None
    return (concordant - discordant) / math.sqrt((pairs - tied_x) * (pairs - tied_y))


def _entries(items: Sequence[Mapping] | Mapping[Hashable, Mapping]) -> list[tuple[Hashable, Mapping]]:
    return list(items.items()) if isinstance(items, Mapping) else list(enumerate(items))


def annotator_agreement(items: Sequence[Mapping] | Mapping[Hashable, Mapping]) -> dict[Hashable, dict]:
    """Per annotator: {"tau": mean Kendall tau-b against the mean ranks of the item's other annotators, "items":
    how many items it averages}. `items` is a list (or dict id -> item) of dicts annotator -> ranking. An
    annotator who never shared a comparable item gets tau None."""
    taus: dict[Hashable, list[float]] = {}
    for _, item in _entries(items):
        if not item:
            continue
        k = _item_k(list(item.values()))
        for who, ranking in item.items():
            taus.setdefault(who, [])
            others = [r for other, r in item.items() if other != who]
            if not others:
                continue
            tau = kendall_tau_b(rank_vector(ranking, k), mean_ranks(others, k))
            if tau is not None:
                taus[who].append(tau)
    return {who: {"tau": sum(t) / len(t) if t else None, "items": len(t)} for who, t in taus.items()}


def contested(items: Sequence[Mapping] | Mapping[Hashable, Mapping], n: int = 10) -> list[tuple[Hashable, float]]:
    """The `n` items whose annotators agree least, as (index or id, Kendall's W), lowest W first; items with fewer
    than two annotators are not ranked."""
    scored = [(key, kendalls_w(list(item.values()))) for key, item in _entries(items)]
    scored = [(key, w) for key, w in scored if w is not None]
    return sorted(scored, key=lambda kw: kw[1])[:n]
