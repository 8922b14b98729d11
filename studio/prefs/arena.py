"""Arena: ratings of models from blind A/B votes, with bootstrap intervals, and the votes as pairs.

A vote is (model_a, model_b, outcome), outcome one of "a", "b", "tie", "both_bad". Ratings come from
the Bradley-Terry model P(i beats j) = p_i / (p_i + p_j), fitted by maximum likelihood (Newton's
method), on the Elo scale: rating = 400 log10 p, shifted so the mean is 1000 (a 400-point gap means
10:1 odds). A tie counts as half a win for each side; "both bad" says nothing about which of the two
is better, so it is a tie too (`leaderboard` still counts it apart).

The fit has no finite solution when some group of models won every vote against the rest (a model
that never lost would rate infinitely high). In that case only, every model also gets `prior`
virtual ties against one virtual reference player (left out of the results), which keeps ratings
finite and pulls the unbeaten ones back by an amount that shrinks as votes accumulate; otherwise the
plain maximum-likelihood ratings are returned. `bootstrap_ci` refits on votes resampled with
replacement and reports the 2.5th and 97.5th percentiles.

Collecting votes and showing the two answers blind is the UI's job; storing them is the store's.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from studio.errors import StudioError
from studio.prefs.ranking import PreferenceRows, pairs_rows

OUTCOMES = ("a", "b", "tie", "both_bad")
BASE_RATING = 1000.0
SCALE = 400.0 / math.log(10)  # natural-log strength -> Elo points
PRIOR_TIES = 1.0
MAX_ITERATIONS = 100
TOLERANCE = 1e-9


def check_votes(votes: Sequence[Sequence[Any]]) -> list[tuple[str, str, str]]:
    """Votes as (model_a, model_b, outcome) tuples, refusing unknown outcomes and a model against itself."""
    out = []
    for number, vote in enumerate(votes, start=1):
        a, b, outcome = vote
        if outcome not in OUTCOMES:
            raise StudioError(f"Vote {number} has outcome '{outcome}'; use one of {', '.join(OUTCOMES)}.",
                              field="prefs.vote", key="prefs.arena.bad_outcome", number=number,
                              outcome=str(outcome), choices=", ".join(OUTCOMES))
        if a == b:
            raise StudioError(f"Vote {number} compares '{a}' with itself; an arena vote needs two different "
                              "models.", field="prefs.vote", key="prefs.arena.same_model", number=number, model=str(a))
        out.append((str(a), str(b), outcome))
    return out


def _encode(votes: list[tuple[str, str, str]], models: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Votes as arrays: index of model a, index of model b, and a's share of the win (1, 0 or 0.5 for a tie)."""
    where = {m: i for i, m in enumerate(models)}
    return (np.array([where[a] for a, _, _ in votes], dtype=int), np.array([where[b] for _, b, _ in votes], dtype=int),
            np.array([{"a": 1.0, "b": 0.0}.get(o, 0.5) for _, _, o in votes]))


def _wins(encoded: tuple[np.ndarray, np.ndarray, np.ndarray], size: int, weights: np.ndarray | None = None
          ) -> np.ndarray:
    """wins[i, j]: how often i beat j, ties counting half to each side (each vote counted `weights` times)."""
    first, second, share = encoded
    weights = np.ones(len(share)) if weights is None else weights
    wins = np.zeros((size, size))
    np.add.at(wins, (first, second), weights * share)
    np.add.at(wins, (second, first), weights * (1 - share))
    return wins


def _connected(wins: np.ndarray) -> bool:
    """True when every model can be reached from every other along "beat (or tied)" edges: the MLE exists."""
    beat = wins > 0
    for graph in (beat, beat.T):
        reached, frontier = {0}, [0]
        while frontier:
            for nxt in np.flatnonzero(graph[frontier.pop()]):
                if nxt not in reached:
                    reached.add(int(nxt))
                    frontier.append(int(nxt))
        if len(reached) < len(wins):
            return False
    return True


def _log_likelihood(theta: np.ndarray, wins: np.ndarray) -> float:
    return float(-(wins * np.logaddexp(0.0, theta[None, :] - theta[:, None])).sum())


def _fit(wins: np.ndarray, prior: float) -> np.ndarray:
    """Log-strengths with mean 0, by Newton's method on the concave log-likelihood (a few steps, halved while
    they do not improve it); adds the virtual reference player when the plain fit has no finite solution."""
    size = len(wins)
    if prior > 0 and not _connected(wins):
        wins = np.pad(wins, (0, 1))
        wins[:size, size] = wins[size, :size] = prior / 2
    games = wins + wins.T
    theta = np.zeros(len(wins))
    current = _log_likelihood(theta, wins)
    for _ in range(MAX_ITERATIONS):
        beats = 1.0 / (1.0 + np.exp(theta[None, :] - theta[:, None]))  # P(i beats j)
        gradient = wins.sum(axis=1) - (games * beats).sum(axis=1)
        weight = games * beats * beats.T
        laplacian = np.diag(weight.sum(axis=1)) - weight  # minus the Hessian; null space: shifting all strengths
        step = np.linalg.pinv(laplacian) @ gradient
        for _ in range(30):
            trial = _log_likelihood(theta + step, wins)
            if trial >= current - 1e-12:
                break
            step /= 2
        else:
            break  # no step improves the fit any more: at the optimum to float precision
        theta, current = theta + step, trial
        if np.max(np.abs(step)) < TOLERANCE:
            break
    theta = theta[:size]
    return theta - theta.mean()


def _models(votes: list[tuple[str, str, str]]) -> list[str]:
    return sorted({m for a, b, _ in votes for m in (a, b)})


def bradley_terry(votes: Sequence[Sequence[Any]], prior: float = PRIOR_TIES) -> dict[str, float]:
    """{model: rating} on the Elo scale (mean 1000). If A beat B in 3 of 4 votes, A is 400 log10 3 = 191 points
    above B. `prior`: virtual ties per model used only when the plain fit has no finite solution (see above)."""
    votes = check_votes(votes)
    models = _models(votes)
    if not models:
        return {}
    theta = _fit(_wins(_encode(votes, models), len(models)), prior)
    return {m: float(BASE_RATING + SCALE * t) for m, t in zip(models, theta)}


def bootstrap_ci(votes: Sequence[Sequence[Any]], rounds: int = 1000, seed: int = 0,
                 prior: float = PRIOR_TIES) -> dict[str, tuple[float, float]]:
    """{model: (low, high)}: the 95% interval of each rating over `rounds` refits on votes resampled with
    replacement (seeded, so the same votes give the same intervals). A round where a model drew no vote does not
    count for that model."""
    votes = check_votes(votes)
    models = _models(votes)
    if not votes:
        return {}
    encoded = _encode(votes, models)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {m: [] for m in models}
    for _ in range(rounds):
        weights = np.bincount(rng.integers(0, len(votes), len(votes)), minlength=len(votes)).astype(float)
        wins = _wins(encoded, len(models), weights)
        present = np.flatnonzero((wins + wins.T).sum(axis=1) > 0)  # a model may draw no vote in a round
        theta = _fit(wins[np.ix_(present, present)], prior)
        for i, t in zip(present, theta):
            samples[models[i]].append(BASE_RATING + SCALE * t)
    return {m: (float(np.percentile(s, 2.5)), float(np.percentile(s, 97.5))) if s else (math.nan, math.nan)
            for m, s in samples.items()}


def leaderboard(votes: Sequence[Sequence[Any]], rounds: int = 1000, seed: int = 0) -> list[dict]:
    """Rows {model, rating, low, high, wins, losses, ties, both_bad, count}, best rating first. `ties` includes
    the "both bad" votes, which are also counted apart. `rounds=0` skips the intervals (low/high None)."""
    votes = check_votes(votes)
    ratings = bradley_terry(votes)
    intervals = bootstrap_ci(votes, rounds, seed) if rounds else {}
    rows = {m: {"model": m, "rating": r, "low": None, "high": None, "wins": 0, "losses": 0, "ties": 0,
                "both_bad": 0, "count": 0} for m, r in ratings.items()}
    for m, (low, high) in intervals.items():
        rows[m]["low"], rows[m]["high"] = low, high
    for a, b, outcome in votes:
        rows[a]["count"] += 1
        rows[b]["count"] += 1
        if outcome in ("tie", "both_bad"):
            rows[a]["ties"] += 1
            rows[b]["ties"] += 1
            rows[a]["both_bad"] += outcome == "both_bad"
            rows[b]["both_bad"] += outcome == "both_bad"
        else:
            winner, loser = (a, b) if outcome == "a" else (b, a)
            rows[winner]["wins"] += 1
            rows[loser]["losses"] += 1
    return sorted(rows.values(), key=lambda r: (-r["rating"], r["model"]))


def vote_pairs(votes: Sequence[Sequence[Any]], exchanges: Sequence[dict], conversational: bool = False
               ) -> PreferenceRows:
    """Preference rows from votes: `exchanges[n]` = {prompt, answer_a, answer_b, system?} is what vote n judged.
    The winner's answer is chosen, the loser's rejected; ties and "both bad" give no pair."""
    votes = check_votes(votes)
    if len(exchanges) != len(votes):
        raise ValueError(f"{len(votes)} votes but {len(exchanges)} exchanges; give one exchange per vote")
    order = {"a": [[0], [1]], "b": [[1], [0]], "tie": [[0, 1]], "both_bad": [[0, 1]]}
    items = [{**{k: v for k, v in ex.items() if k in ("prompt", "system")},
              "candidates": [ex["answer_a"], ex["answer_b"]], "ranking": order[outcome]}
             for (_, _, outcome), ex in zip(votes, exchanges)]
    return pairs_rows(items, "all_pairs", conversational)
