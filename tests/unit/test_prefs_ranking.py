"""Rankings -> pairs and KTO labels for every strategy, with ties; the JSONL import and its bad lines."""
from __future__ import annotations

import json

import pytest

from studio.errors import StudioError
from studio.prefs.ranking import (STRATEGIES, kto_rows, pairs_rows, ranks, read_rankings_jsonl, to_kto, to_pairs,
                                  validate_ranking)

# 5 candidates in 3 tie groups: 2 best; 0 and 3 tied; 1 and 4 tied last
TIERED = [[2], [0, 3], [1, 4]]


def test_ranks_average_the_places_a_tie_spans():
    assert ranks([[1], [0, 2]]) == [2.5, 1.0, 2.5]
    assert ranks(TIERED) == [2.5, 4.5, 1.0, 2.5, 4.5]
    assert ranks([[0, 1, 2]]) == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("strategy, expected", [
    ("all_pairs", [(2, 0), (2, 3), (2, 1), (2, 4), (0, 1), (0, 4), (3, 1), (3, 4)]),
    ("best_vs_rest", [(2, 0), (2, 3), (2, 1), (2, 4)]),
    ("adjacent", [(2, 0), (2, 3), (0, 1), (0, 4), (3, 1), (3, 4)]),
])
def test_each_strategy_pairs_across_tie_groups_only(strategy, expected):
    pairs = to_pairs(TIERED, strategy)
    assert pairs == expected
    same_group = {frozenset(p) for g in TIERED for p in [(a, b) for a in g for b in g if a != b]}
    assert not any(frozenset(p) in same_group for p in pairs)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_an_all_tied_item_gives_no_pair_and_a_strict_order_of_two_gives_one(strategy):
    assert to_pairs([[0, 1, 2]], strategy) == []
    assert to_pairs([[1], [0]], strategy) == [(1, 0)]


def test_kto_labels_top_group_desirable_bottom_undesirable_and_skips_the_middle():
    assert to_kto(TIERED) == [(2, True), (1, False), (4, False)]
    assert to_kto([[0, 1]]) == []
    assert to_kto([[0, 1], [2]]) == [(0, True), (1, True), (2, False)]


@pytest.mark.parametrize("ranking, k, key, words", [
    ([[0], [1]], 3, "prefs.ranking.missing", "leaves out candidate 3"),
    ([[0], [2]], 4, "prefs.ranking.missing", "leaves out candidates 2, 4"),
    ([[0], [1, 0]], 2, "prefs.ranking.duplicate", "candidate 1 twice"),
    ([[0], [], [1]], 2, "prefs.ranking.empty_group", "Group 2"),
    ([[0], [5]], 2, "prefs.ranking.unknown_candidate", "index 5"),
    ([[0], [True]], 2, "prefs.ranking.unknown_candidate", "True"),
    ([0, 1], 2, "prefs.ranking.not_groups", "list of groups"),
    ([[0]], 1, "prefs.ranking.too_few_candidates", "at least 2"),
])
def test_invalid_rankings_are_refused_with_a_keyed_sentence(ranking, k, key, words):
    with pytest.raises(StudioError, match=words) as info:
        validate_ranking(ranking, k)
    assert info.value.key == key and info.value.field == "prefs.ranking"


def test_unknown_strategy_is_refused():
    with pytest.raises(StudioError, match="best_vs_rest") as info:
        to_pairs([[0], [1]], "round_robin")
    assert info.value.key == "prefs.pairs.unknown_strategy"


ITEMS = [
    {"prompt": "2+2?", "candidates": ["4", "5", "four"], "ranking": [[0, 2], [1]]},
    {"prompt": "Capital of France?", "candidates": ["Paris", "Lyon"], "ranking": [[0, 1]]},  # all tied
    {"prompt": "Say hi", "candidates": ["hi", "hi ", "bye"], "ranking": [[0], [1], [2]], "system": "Be brief."},
]


def test_pairs_rows_in_standard_form_keep_system_and_drop_equal_texts():
    result = pairs_rows(ITEMS, "all_pairs")
    # "hi" over "hi " is dropped (same text once trimmed); "hi " over "bye" repeats "hi" over "bye"
    assert (result.items, result.dropped, result.duplicates, result.empty_items) == (3, 1, 1, 1)
    assert result.rows == [
        {"system": "", "prompt": "2+2?", "chosen": "4", "rejected": "5"},
        {"system": "", "prompt": "2+2?", "chosen": "four", "rejected": "5"},
        {"system": "Be brief.", "prompt": "Say hi", "chosen": "hi", "rejected": "bye"},
    ]
    assert all("system" not in r for r in pairs_rows(ITEMS[:2], "all_pairs").rows)


def test_pairs_rows_in_conversational_form_fold_the_system_prompt_into_messages():
    rows = pairs_rows(ITEMS, "best_vs_rest", conversational=True).rows
    assert rows[0] == {"prompt": [{"role": "user", "content": "2+2?"}],
                       "chosen": [{"role": "assistant", "content": "4"}],
                       "rejected": [{"role": "assistant", "content": "5"}]}
    assert rows[-1]["prompt"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}]
    assert set(rows[-1]) == {"prompt", "chosen", "rejected"}


def test_identical_candidates_in_one_group_give_each_pair_once():
    item = {"prompt": "p", "candidates": ["same", "same", "other"], "ranking": [[0, 1], [2]]}
    result = pairs_rows([item])
    assert [(r["chosen"], r["rejected"]) for r in result.rows] == [("same", "other")]
    assert result.duplicates == 1 and result.dropped == 0


def test_kto_rows_label_the_extremes_and_drop_texts_labelled_both_ways():
    result = kto_rows(ITEMS)
    assert [(r["prompt"], r["completion"], r["label"]) for r in result.rows] == [
        ("2+2?", "4", True), ("2+2?", "four", True), ("2+2?", "5", False),
        ("Say hi", "hi", True), ("Say hi", "bye", False)]
    assert result.empty_items == 1
    clash = {"prompt": "p", "candidates": ["x", "x", "y"], "ranking": [[0], [2], [1]]}
    assert kto_rows([clash]).rows == [] and kto_rows([clash]).dropped == 2
    conversational = kto_rows(ITEMS[2:], conversational=True).rows[0]
    assert conversational["completion"] == [{"role": "assistant", "content": "hi"}] and conversational["label"] is True


def _write(tmp_path, lines) -> str:
    path = tmp_path / "rankings.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n",
                    encoding="utf-8")
    return str(path)


def test_read_rankings_maps_texts_to_indices_and_keeps_system_and_id(tmp_path):
    path = _write(tmp_path, [
        {"prompt": "Q1", "candidates": ["text A", "text B", "text C"], "ranking": [["text B"], ["text A", "text C"]],
         "system": "S", "id": "item-1", "annotator": "ignored"},
        "",
        {"prompt": "Q2", "candidates": ["x", "y"], "ranking": ["y ", "x"]},  # lone texts, trailing space
    ])
    first, second = read_rankings_jsonl(path)
    assert first == {"prompt": "Q1", "candidates": ["text A", "text B", "text C"], "ranking": [[1], [0, 2]],
                     "system": "S", "id": "item-1"}
    assert second == {"prompt": "Q2", "candidates": ["x", "y"], "ranking": [[1], [0]]}


def test_identical_candidate_texts_are_one_answer_that_ties_with_itself(tmp_path):
    path = _write(tmp_path, [{"prompt": "Q", "candidates": ["a", "b", "a"], "ranking": [["b"], ["a"]]}])
    assert read_rankings_jsonl(path)[0]["ranking"] == [[1], [0, 2]]


GOOD = {"prompt": "Q", "candidates": ["A", "B", "C"], "ranking": [["B"], ["A", "C"]]}


@pytest.mark.parametrize("line, key, words", [
    ('{"prompt": "Q", ', "prefs.import.not_json", "not valid JSON"),
    ("[1, 2]", "prefs.import.not_object", "not an object"),
    ({"prompt": "Q", "candidates": ["A", "B"]}, "prefs.import.missing_field", "has no 'ranking'"),
    ({**GOOD, "prompt": ""}, "prefs.import.bad_prompt", "non-empty text"),
    ({**GOOD, "system": 3}, "prefs.import.bad_system", "'system' must be text"),
    ({**GOOD, "candidates": "A, B"}, "prefs.import.bad_candidates", "list of answer texts"),
    ({**GOOD, "candidates": ["A"], "ranking": [["A"]]}, "prefs.import.too_few_candidates", "1 candidate answers"),
    ({**GOOD, "ranking": [["B"], []]}, "prefs.import.bad_ranking", "groups of candidate texts"),
    ({**GOOD, "ranking": {"B": 1}}, "prefs.import.bad_ranking", "groups of candidate texts"),
    ({**GOOD, "ranking": [["B"], ["A", "D"]]}, "prefs.import.unknown_text", "names 'D', which is not one"),
    ({**GOOD, "ranking": [["B"], ["A", "C"], ["B"]]}, "prefs.import.ranked_twice", "places 'B' twice"),
    ({**GOOD, "ranking": [["B"], ["A"]]}, "prefs.import.left_out", "leaves out 'C'"),
])
def test_a_bad_line_is_refused_with_its_number_and_the_fix(tmp_path, line, key, words):
    path = _write(tmp_path, [GOOD, line])
    with pytest.raises(StudioError, match=words) as info:
        read_rankings_jsonl(path)
    assert info.value.key == key and info.value.params["line"] == 2
    assert str(info.value).startswith("Line 2 of 'rankings.jsonl'")


def test_a_missing_or_empty_file_is_refused(tmp_path):
    with pytest.raises(StudioError) as info:
        read_rankings_jsonl(tmp_path / "nope.jsonl")
    assert info.value.key == "prefs.import.no_file"
    with pytest.raises(StudioError) as info:
        read_rankings_jsonl(_write(tmp_path, ["", "  "]))
    assert info.value.key == "prefs.import.empty"


def test_every_prefs_error_key_has_a_spanish_sentence_its_params_fill():
    """Cheap twin of tests/unit/test_ui.py's check, for this package's keys only."""
    import ast
    import string
    from pathlib import Path

    import studio

    root = Path(studio.__file__).parent
    es = json.loads((root / "locales" / "es" / "errors-prefs.json").read_text(encoding="utf-8"))
    files = [root / "prefs" / f"{name}.py" for name in ("ranking", "agreement", "consensus", "arena")]
    files.append(root / "cli_prefs.py")
    seen = 0
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "StudioError":
                kw = {k.arg: k.value for k in node.keywords if k.arg}
                key = kw["key"].value
                template = es[f"error.{key}"]
                wanted = {f for _, f, _, _ in string.Formatter().parse(template) if f}
                assert wanted <= set(kw) - {"key", "field"}, (path.name, key)
                seen += 1
    assert seen >= 20


def test_typed_rankings_parse_to_display_slots_and_back():
    from studio.prefs.ranking import format_ranking_text, parse_ranking_text

    assert parse_ranking_text("2 > 1 = 3", 3) == [[1], [0, 2]]
    assert parse_ranking_text(" 3>2>1 ", 3) == [[2], [1], [0]]
    assert format_ranking_text([[1], [0, 2]]) == "2 > 1 = 3"
    for text, key in (("", "prefs.ranking.empty_text"), ("2 > x", "prefs.ranking.bad_text"),
                      ("1 > 2", "prefs.ranking.missing"), ("1 > 4 > 2 = 3", "prefs.ranking.not_shown"),
                      ("1 > 1 > 2 = 3", "prefs.ranking.duplicate")):
        with pytest.raises(StudioError) as error:
            parse_ranking_text(text, 3)
        assert error.value.key == key, text
