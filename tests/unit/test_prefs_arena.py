"""Bradley-Terry ratings against known cases, bootstrap intervals, the leaderboard, votes as pairs."""
from __future__ import annotations

import math

import pytest

from studio.errors import StudioError
from studio.prefs.arena import bootstrap_ci, bradley_terry, leaderboard, vote_pairs

ELO = 400 * math.log10(2)  # the gap for 2:1 odds


def test_two_models_where_a_wins_three_of_four_are_400_log10_3_apart():
    ratings = bradley_terry([("A", "B", "a")] * 3 + [("A", "B", "b")])
    assert ratings["A"] - ratings["B"] == pytest.approx(400 * math.log10(3))
    assert (ratings["A"] + ratings["B"]) / 2 == pytest.approx(1000)


def test_a_transitive_three_model_case_recovers_the_strengths_that_generated_it():
    # strengths 4 : 2 : 1 give P(A>B) = 2/3, P(B>C) = 2/3, P(A>C) = 4/5; votes in exactly those proportions make
    # them the maximum-likelihood fit (each model's wins equal its expected wins)
    votes = ([("A", "B", "a")] * 2 + [("B", "A", "a")] + [("B", "C", "a")] * 2 + [("C", "B", "a")]
             + [("C", "A", "b")] * 4 + [("A", "C", "b")])
    ratings = bradley_terry(votes)
    assert ratings == {"A": pytest.approx(1000 + ELO), "B": pytest.approx(1000), "C": pytest.approx(1000 - ELO)}


def test_ties_and_both_bad_count_as_half_a_win_each():
    # A: 1 win + 2 halves = 2; B: 2 halves = 1 -> odds 2:1
    ratings = bradley_terry([("A", "B", "a"), ("A", "B", "tie"), ("B", "A", "both_bad")])
    assert ratings["A"] - ratings["B"] == pytest.approx(ELO)
    assert bradley_terry([("A", "B", "tie")]) == {"A": pytest.approx(1000), "B": pytest.approx(1000)}


def test_an_unbeaten_model_gets_a_finite_rating_that_grows_with_its_wins():
    few = bradley_terry([("A", "B", "a")] * 3)
    many = bradley_terry([("A", "B", "a")] * 30)
    assert 0 < few["A"] - few["B"] < many["A"] - many["B"] < 1000
    # groups that never met still get ratings on one scale, through the virtual reference
    apart = bradley_terry([("A", "B", "a"), ("C", "D", "a")])
    assert apart["A"] == pytest.approx(apart["C"]) and apart["A"] > apart["B"]


def test_bootstrap_intervals_hold_the_rating_and_repeat_with_the_seed():
    votes = [("A", "B", "a")] * 12 + [("A", "B", "b")] * 4 + [("B", "C", "a")] * 10 + [("B", "C", "b")] * 6
    ratings = bradley_terry(votes)
    intervals = bootstrap_ci(votes, rounds=200, seed=1)
    for model, (low, high) in intervals.items():
        assert low < ratings[model] < high
    assert intervals == bootstrap_ci(votes, rounds=200, seed=1)
    assert intervals["A"][0] > intervals["C"][1]  # clearly separated
    wider = bootstrap_ci(votes[::4], rounds=200, seed=1)  # a quarter of the votes: wider intervals
    assert wider["A"][1] - wider["A"][0] > intervals["A"][1] - intervals["A"][0]


def test_leaderboard_sorts_by_rating_and_counts_every_vote():
    votes = [("A", "B", "a"), ("A", "B", "a"), ("B", "A", "tie"), ("A", "C", "both_bad"), ("C", "B", "a"),
             ("B", "C", "b")]
    rows = leaderboard(votes, rounds=50)
    assert [r["model"] for r in rows] == sorted(bradley_terry(votes), key=lambda m: -bradley_terry(votes)[m])
    a = next(r for r in rows if r["model"] == "A")
    assert (a["wins"], a["losses"], a["ties"], a["both_bad"], a["count"]) == (2, 0, 2, 1, 4)
    assert all(r["low"] <= r["rating"] <= r["high"] for r in rows)
    assert sum(r["count"] for r in rows) == 2 * len(votes)
    assert leaderboard(votes, rounds=0)[0]["low"] is None


@pytest.mark.parametrize("vote, key", [(("A", "B", "draw"), "prefs.arena.bad_outcome"),
                                       (("A", "A", "a"), "prefs.arena.same_model")])
def test_bad_votes_are_refused(vote, key):
    with pytest.raises(StudioError) as info:
        bradley_terry([("A", "B", "a"), vote])
    assert info.value.key == key and info.value.params["number"] == 2


def test_votes_become_pairs_and_ties_give_none():
    votes = [("m1", "m2", "a"), ("m1", "m2", "b"), ("m1", "m2", "tie"), ("m1", "m2", "both_bad"), ("m1", "m2", "a")]
    exchanges = [{"prompt": f"q{n}", "answer_a": f"a{n}", "answer_b": f"b{n}"} for n in range(4)]
    exchanges.append({"prompt": "q4", "answer_a": "same", "answer_b": "same", "system": "S"})
    result = vote_pairs(votes, exchanges)
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in result.rows] == [("q0", "a0", "b0"), ("q1", "b1", "a1")]
    assert result.dropped == 1 and result.empty_items == 3
    conversational = vote_pairs(votes[:1], exchanges[:1], conversational=True).rows[0]
    assert conversational["chosen"] == [{"role": "assistant", "content": "a0"}]
