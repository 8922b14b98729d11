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


# --- `studio prefs arena duel / vote`: blind A/B from a terminal, stored through PrefService.arena_vote ---------

def _arena_votes(ws) -> list[dict]:
    from studio.prefs.store import PrefStore

    with PrefStore(ws)._db() as conn:
        return [dict(r) for r in conn.execute("SELECT * FROM arena_votes ORDER BY id")]


def _duel_argv(model_a, model_b, *extra) -> list[str]:
    return ["prefs", "arena", "duel", "--model-a", str(model_a), "--model-b", str(model_b), "--max-new-tokens", "3",
            *extra]


def test_duel_hides_the_models_until_the_vote_read_from_stdin(workspace, tiny_llama_dir, other_llama_dir, capsys,
                                                              monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("maybe\na\n"))  # a word that is no vote is asked again
    assert main(_duel_argv(tiny_llama_dir, other_llama_dir, "--prompt", "Name a colour.", "--voter", "ana")) == 0
    out = capsys.readouterr()
    shown, revealed = out.out.split("Voted a: ")
    assert "Prompt: Name a colour." in shown and "--- A ---" in shown and "--- B ---" in shown
    assert str(tiny_llama_dir) not in shown and str(other_llama_dir) not in shown
    assert "'maybe' is not a vote." in out.err
    [vote] = _arena_votes(workspace)
    assert vote["outcome"] == "a" and vote["voter"] == "ana" and vote["prompt"] == "Name a colour."
    assert revealed.strip() == f"A was {vote['model_a']}, B was {vote['model_b']}"
    assert {vote["model_a"], vote["model_b"]} == {str(tiny_llama_dir), str(other_llama_dir)}


def test_duel_json_leaves_the_duel_open_for_a_later_vote(workspace, tiny_llama_dir, other_llama_dir, capsys):
    assert main(_duel_argv(tiny_llama_dir, other_llama_dir, "--prompt", "Say hi.", "--json")) == 0
    duel = json.loads(capsys.readouterr().out)
    assert duel["vote"] is None and set(duel) == {"duel_id", "prompt", "system", "answer_a", "answer_b", "vote"}
    assert _arena_votes(workspace) == []
    assert main(["prefs", "arena", "vote", duel["duel_id"], "b", "--voter", "bot", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    [vote] = _arena_votes(workspace)
    assert vote["outcome"] == "b" and vote["answer_b"] == duel["answer_b"] and vote["model_b"] == result["model_b"]
    # a duel takes one vote
    assert main(["prefs", "arena", "vote", duel["duel_id"], "a"]) == 1
    assert f"There is no open duel '{duel['duel_id']}'" in capsys.readouterr().err


def test_duel_draws_its_prompt_from_a_file_and_votes_at_once(workspace, tmp_path, tiny_llama_dir, other_llama_dir,
                                                             capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Name a fruit.\nName a tree.\n", encoding="utf-8")
    assert main(_duel_argv(tiny_llama_dir, other_llama_dir, "--prompts", str(prompts), "--vote", "bad",
                           "--json")) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["prompt"] in ("Name a fruit.", "Name a tree.") and result["vote"] == "bad"
    assert [v["outcome"] for v in _arena_votes(workspace)] == ["both_bad"]
    assert main(["prefs", "arena", "leaderboard", "--rounds", "0", "--json"]) == 0
    assert {r["both_bad"] for r in json.loads(capsys.readouterr().out)} == {1}


def test_duel_refuses_one_model_on_both_sides_and_an_empty_stdin_keeps_it_open(workspace, tiny_llama_dir,
                                                                               other_llama_dir, capsys, monkeypatch):
    import io

    assert main(_duel_argv(tiny_llama_dir, tiny_llama_dir, "--prompt", "Hi")) == 1
    assert "Both sides are" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(_duel_argv(tiny_llama_dir, other_llama_dir, "--prompt", "Hi")) == 0
    assert "left open; vote later with `studio prefs arena vote" in capsys.readouterr().out
    assert _arena_votes(workspace) == []
