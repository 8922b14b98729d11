"""`studio prefs pairs`: rankings collected elsewhere -> DPO pairs or KTO rows, as JSONL or Parquet."""
from __future__ import annotations

import json

import pytest

from studio.cli import main

RANKINGS = [
    {"prompt": "Name a primary colour.", "candidates": ["Red", "Green", "Blue", "Purple"],
     "ranking": [["Red", "Blue"], ["Green"], ["Purple"]], "system": "Answer in one word.", "id": "colours"},
    {"prompt": "2+2?", "candidates": ["4", "four"], "ranking": [["4", "four"]]},  # all tied: no pair
    # "Hello!" twice (once with a trailing space): one answer, so one pair, the repeat counted
    {"prompt": "Greet me.", "candidates": ["Hello!", "Hello! ", "Go away."], "ranking": [["Hello!"], ["Go away."]]},
]


@pytest.fixture
def rankings(tmp_path):
    path = tmp_path / "rankings.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RANKINGS), encoding="utf-8")
    return path


def _read(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_pairs_writes_trl_rows_and_says_what_it_dropped(rankings, tmp_path, capsys):
    out = tmp_path / "pairs.jsonl"
    assert main(["prefs", "pairs", str(rankings), "--strategy", "all_pairs", "--out", str(out)]) == 0
    # colours: 2 best x (Green, Purple) + Green x Purple = 5; greet: Hello! > Go away. once
    printed = capsys.readouterr().out
    assert "3 items -> 6 pairs (0 dropped: chosen == rejected)" in printed
    assert "1 repeated pairs" in printed and "1 items gave no pairs" in printed
    rows = _read(out)
    assert rows[0] == {"system": "Answer in one word.", "prompt": "Name a primary colour.", "chosen": "Red",
                       "rejected": "Green"}
    assert [(r["chosen"], r["rejected"]) for r in rows[-1:]] == [("Hello!", "Go away.")]


@pytest.mark.parametrize("strategy, count", [("all_pairs", 6), ("best_vs_rest", 5), ("adjacent", 4)])
def test_each_strategy_gives_its_own_number_of_pairs(rankings, tmp_path, capsys, strategy, count):
    out = tmp_path / f"{strategy}.jsonl"
    assert main(["prefs", "pairs", str(rankings), "--strategy", strategy, "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pairs"] == count == len(_read(out)) and summary["items"] == 3
    assert summary["items_without_rows"] == 1


def test_conversational_and_kto_formats(rankings, tmp_path, capsys):
    out = tmp_path / "conv.jsonl"
    assert main(["prefs", "pairs", str(rankings), "--conversational", "--out", str(out)]) == 0
    first = _read(out)[0]
    assert first["prompt"] == [{"role": "system", "content": "Answer in one word."},
                               {"role": "user", "content": "Name a primary colour."}]
    assert first["chosen"] == [{"role": "assistant", "content": "Red"}]
    kto = tmp_path / "kto.jsonl"
    assert main(["prefs", "pairs", str(rankings), "--format", "kto", "--out", str(kto)]) == 0
    assert "3 items -> 5 rows" in capsys.readouterr().out
    assert [(r["completion"], r["label"]) for r in _read(kto)] == [
        ("Red", True), ("Blue", True), ("Purple", False), ("Hello!", True), ("Go away.", False)]


def test_parquet_output_reads_back(rankings, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "pairs.parquet"
    assert main(["prefs", "pairs", str(rankings), "--strategy", "best_vs_rest", "--out", str(out)]) == 0
    table = pq.read_table(out)
    assert table.num_rows == 5 and table.column_names == ["system", "prompt", "chosen", "rejected"]


def test_bad_input_prints_one_sentence_and_exits_1(rankings, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(RANKINGS[0]) + "\n" + json.dumps({"prompt": "Q", "candidates": ["A", "B"],
                                                                "ranking": [["A"], ["C"]]}) + "\n", encoding="utf-8")
    assert main(["prefs", "pairs", str(bad), "--out", str(tmp_path / "p.jsonl")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: Line 2 of 'bad.jsonl'") and "'C'" in err
    tied = tmp_path / "tied.jsonl"
    tied.write_text(json.dumps(RANKINGS[1]) + "\n", encoding="utf-8")
    assert main(["prefs", "pairs", str(tied), "--out", str(tmp_path / "p.jsonl")]) == 1
    assert "ties all its candidates" in capsys.readouterr().err
    assert not (tmp_path / "p.jsonl").exists()
    assert main(["prefs", "pairs", str(rankings), "--out", str(tmp_path / "p.csv")]) == 1
    assert ".jsonl or .parquet" in capsys.readouterr().err
