"""Agreement statistics against hand-computed and published values; Borda consensus."""
from __future__ import annotations

import pytest

from studio.errors import StudioError
from studio.prefs.agreement import (annotator_agreement, contested, kendall_tau_b, kendalls_w, krippendorff_alpha,
                                    krippendorff_alpha_ordinal)
from studio.prefs.consensus import borda, mean_ranks


def test_kendalls_w_without_ties_matches_the_hand_computation():
    # ranks A (1,2,3), B (1,3,2), C (2,1,3): rank sums R = (4, 6, 8), mean m(k+1)/2 = 6, S = 4 + 0 + 4 = 8
    # W = 12 S / (m^2 (k^3 - k)) = 96 / (9 * 24) = 4/9
    assert kendalls_w([[[0], [1], [2]], [[0], [2], [1]], [[1], [0], [2]]], 3) == pytest.approx(4 / 9)


def test_kendalls_w_corrects_for_ties():
    # A (1, 2, 3), B (1, 2.5, 2.5): R = (2, 4.5, 5.5), mean 4, S = 4 + 0.25 + 2.25 = 6.5
    # B's tie group of 2: T = 2^3 - 2 = 6; W = 12 * 6.5 / (4 * 24 - 2 * 6) = 78 / 84 = 13/14
    assert kendalls_w([[[0], [1], [2]], [[0], [1, 2]]]) == pytest.approx(13 / 14)
    assert kendalls_w([[1, 2, 3], [1, 2.5, 2.5]], 3) == pytest.approx(13 / 14)  # rank vectors work too


def test_kendalls_w_is_one_for_identical_rankings_and_zero_for_opposite_pairs():
    assert kendalls_w([[[2], [0, 1]]] * 3) == pytest.approx(1.0)
    assert kendalls_w([[[0, 1, 2]]] * 2) == 1.0  # all tied by everyone: identical, so 1
    assert kendalls_w([[[0], [1]], [[1], [0]]]) == pytest.approx(0.0)
    assert kendalls_w([[[0], [1]]]) is None  # one annotator


def test_krippendorff_alpha_reproduces_krippendorffs_worked_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the example with 4 observers, 12 units
    # and missing values; published: nominal 0.743, ordinal 0.815, interval 0.849.
    n = None
    observers = {"A": [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
                 "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
                 "C": [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
                 "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n]}
    units = [{who: values[u] for who, values in observers.items()} for u in range(12)]
    assert krippendorff_alpha(units, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(units, "ordinal") == pytest.approx(0.815, abs=5e-4)
    assert krippendorff_alpha(units, "interval") == pytest.approx(0.849, abs=5e-4)


def test_ordinal_alpha_of_rankings_matches_the_hand_computation():
    # one item, A ranks (1, 2, 3), B ranks (1, 2.5, 2.5). Units (candidates): {1,1}, {2,2.5}, {3,2.5}.
    # Coincidences (each pair weighs 1/(2-1)): o[1,1]=2, o[2,2.5]=o[2.5,2]=1, o[2.5,3]=o[3,2.5]=1;
    # marginals n_1=2, n_2=1, n_2.5=2, n_3=1, n=6. Ordinal delta^2 = (sum n_g from c to k - (n_c+n_k)/2)^2:
    # (1,2) 2.25, (1,2.5) 9, (1,3) 20.25, (2,2.5) 2.25, (2,3) 9, (2.5,3) 2.25.
    # Observed sum o*delta^2 = 2*2.25 + 2*2.25 = 9; expected sum n_c n_k delta^2 = 2*(4.5+36+40.5+4.5+9+4.5) = 198.
    # alpha = 1 - (n-1) * 9 / 198 = 1 - 45/198 = 17/22
    assert krippendorff_alpha_ordinal([{"A": [[0], [1], [2]], "B": [[0], [1, 2]]}]) == pytest.approx(17 / 22)


def test_ordinal_alpha_of_two_items_one_agreed_one_reversed():
    # units {1,1}, {2,2}, {1,2}, {2,1}: o = [[2,2],[2,2]], n_1 = n_2 = 4, n = 8, delta^2 = (8 - 4)^2 = 16
    # alpha = 1 - 7 * (4 * 16) / (2 * 4 * 4 * 16) = 1 - 7/8
    items = [{"A": [[0], [1]], "B": [[0], [1]]}, {"A": [[0], [1]], "B": [[1], [0]]}]
    assert krippendorff_alpha_ordinal(items) == pytest.approx(1 / 8)


def test_perfect_agreement_gives_alpha_one_and_nothing_pairable_gives_none():
    items = [{"ana": [[1], [0, 2]], "ben": [[1], [0, 2]], "eva": [[1], [0, 2]]}, {"ana": [[0], [1]], "ben": [[0], [1]]}]
    assert krippendorff_alpha_ordinal(items) == pytest.approx(1.0)
    assert krippendorff_alpha_ordinal([{"ana": [[0], [1]]}]) is None  # one annotator: no pairs
    assert krippendorff_alpha_ordinal([{"ana": [[0, 1]], "ben": [[0, 1]]}]) is None  # one value: undefined


def test_kendall_tau_b_handles_ties_and_refuses_constant_lists():
    # (1,2,3) vs (1.5,1.5,3): pair (0,1) tied in y; (0,2), (1,2) concordant -> 2 / sqrt(3 * 2)
    assert kendall_tau_b([1, 2, 3], [1.5, 1.5, 3]) == pytest.approx(2 / 6 ** 0.5)
    assert kendall_tau_b([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert kendall_tau_b([1, 1], [1, 2]) is None


def test_each_annotator_is_compared_with_the_consensus_of_the_others():
    # A (1,2,3) and B (1,2,3) each against the mean of the other two: (1.5,1.5,3) -> 2/sqrt(6);
    # C (2,1,3) against the mean of A and B (1,2,3): one discordant pair of three -> 1/3
    items = [{"A": [[0], [1], [2]], "B": [[0], [1], [2]], "C": [[1], [0], [2]]},
             {"A": [[0], [1]], "B": [[0], [1]]},
             {"A": [[0], [1]]}]  # a lone annotator is not compared
    result = annotator_agreement(items)
    # item 2: A and B agree (tau 1) -> A, B average (2/sqrt6 + 1) / 2 over 2 items
    assert result["A"] == {"tau": pytest.approx((2 / 6 ** 0.5 + 1) / 2), "items": 2}
    assert result["B"] == result["A"]
    assert result["C"] == {"tau": pytest.approx(1 / 3), "items": 1}


def test_contested_lists_the_least_agreed_items_first_by_id():
    items = {"calm": {"A": [[0], [1]], "B": [[0], [1]]},
             "split": {"A": [[0], [1]], "B": [[1], [0]]},
             "mixed": {"A": [[0], [1], [2]], "B": [[0], [2], [1]], "C": [[1], [0], [2]]},
             "alone": {"A": [[0], [1]]}}
    assert contested(items, 2) == [("split", pytest.approx(0.0)), ("mixed", pytest.approx(4 / 9))]
    assert [key for key, _ in contested(list(items.values()))] == [1, 2, 0]


def test_borda_orders_by_mean_rank_and_ties_equal_means():
    assert borda([[[0], [1], [2]], [[1], [0], [2]]], 3) == [[0, 1], [2]]
    assert borda([[[2], [0, 1]], [[2], [1], [0]], [[1], [2], [0]]], 3) == [[2], [1], [0]]
    assert mean_ranks([[[2], [0, 1]], [[2], [1], [0]]], 3) == [2.75, 2.25, 1.0]
    assert borda([[[1], [0]]], 2) == [[1], [0]]


def test_borda_refuses_no_rankings_and_an_incomplete_one():
    with pytest.raises(StudioError) as info:
        borda([], 3)
    assert info.value.key == "prefs.consensus.no_rankings"
    with pytest.raises(StudioError, match="leaves out candidate 3") as info:
        borda([[[0], [1]]], 3)
    assert info.value.key == "prefs.ranking.missing"
