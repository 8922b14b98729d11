"""`studio prefs generate / import / export / agreement / arena / list` on a temp workspace, with tiny random
Llamas loaded the way the app loads models (from their folders)."""
from __future__ import annotations

import json
import time

import pytest

from studio.cli import main
from studio.prefs.store import PrefStore


RANKINGS = [
    {"prompt": "Name a primary colour.", "candidates": ["Red", "Green", "Purple"], "ranking": [["Red"], ["Green"],
                                                                                            ["Purple"]]},
    {"prompt": "2+2?", "candidates": ["4", "5", "four"], "ranking": [["4", "four"], ["5"]]},
]


@pytest.fixture
def rankings(tmp_path):
    path = tmp_path / "rankings.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RANKINGS), encoding="utf-8")
    return path


def test_generate_builds_a_task_set_from_a_prompts_file_and_list_shows_it(workspace, tmp_path, tiny_llama_dir,
                                                                          other_llama_dir, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("What is a reward model?\n\nName a colour.\n", encoding="utf-8")
    models = f"{tiny_llama_dir},{other_llama_dir}"
    assert main(["prefs", "generate", "round-1", "--prompts", str(prompts), "--models", models, "--k", "3",
                 "--temperatures", "0.5", "--max-new-tokens", "4", "--overlap", "2"]) == 0
    out = capsys.readouterr()
    assert "Task set 'round-1': 2 prompts x 3 candidates from" in out.out and "6/6 candidates" in out.err
    items = PrefStore(workspace).rankings("round-1")
    assert [i["models"] for i in items] == [[str(tiny_llama_dir), str(other_llama_dir), str(tiny_llama_dir)]] * 2
    assert main(["prefs", "generate", "round-2", "--dataset", "sample-format-tutor", "--limit", "2", "--models",
                 str(tiny_llama_dir), "--k", "2", "--max-new-tokens", "3", "--json"]) == 0
    job = json.loads(capsys.readouterr().out)
    assert job["state"] == "completed" and job["total"] == 4 and job["result"]["items"] == 2
    assert main(["prefs", "list"]) == 0
    listed = capsys.readouterr().out
    assert "round-1" in listed and "K=3 overlap 2  0/2 items complete" in listed and "round-2" in listed
    assert main(["prefs", "list", "--json"]) == 0
    assert [t["name"] for t in json.loads(capsys.readouterr().out)] == ["round-1", "round-2"]


def test_import_export_and_agreement(workspace, rankings, capsys):
    assert main(["prefs", "import", "imported", str(rankings)]) == 0
    assert "2 rankings stored in 'imported' as annotator 'import:rankings' (2 new items" in capsys.readouterr().out
    assert main(["prefs", "export", "imported", "--strategy", "best_vs_rest", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dataset"] == "imported-dpo" and result["rows"] == 4 and result["items"] == 2
    assert main(["prefs", "export", "imported", "--format", "kto", "--name", "imported-labels"]) == 0
    printed = capsys.readouterr().out
    assert "2 items -> 5 rows (0 dropped: labelled both ways) -> dataset 'imported-labels'" in printed
    assert printed.rstrip().endswith("imported-labels.parquet")
    assert main(["prefs", "agreement", "imported", "--json"]) == 0
    agreement = json.loads(capsys.readouterr().out)
    assert agreement["alpha"] is None and [i["annotators"] for i in agreement["items"]] == [1, 1]
    store = PrefStore(workspace)
    first = store.rankings("imported")[0]["item_id"]
    store.add_suggestion(first, "judge-x", [[2], [1], [0]])  # the reverse of the imported ranking
    assert main(["prefs", "agreement", "imported"]) == 0
    printed = capsys.readouterr().out
    assert "Task set 'imported': 2 ranked items, Krippendorff's alpha (ordinal) -" in printed
    assert "Judge 'judge-x': mean tau -1.000 with the consensus over 1 items" in printed


def test_arena_leaderboard_and_export(workspace, capsys):
    assert main(["prefs", "arena", "leaderboard"]) == 0
    assert "No arena votes yet." in capsys.readouterr().out
    store = PrefStore(workspace)
    with store._tx() as conn:
        for a_answer, b_answer, outcome in [("Hi!", "Go.", "a"), ("Hello.", "Bye.", "a"), ("Hey.", "Yo!", "b"),
                                            ("Hi.", "Hi.", "tie")]:
            conn.execute("INSERT INTO arena_votes (prompt, model_a, model_b, answer_a, answer_b, outcome, voter, "
                         "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         ("Greet me.", "big", "small", a_answer, b_answer, outcome, "ana", time.time()))
    assert main(["prefs", "arena", "leaderboard", "--rounds", "20", "--json"]) == 0
    board = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in board] == ["big", "small"] and board[0]["wins"] == 2 and board[0]["ties"] == 1
    assert board[0]["votes"] == board[0]["count"] == 4
    assert main(["prefs", "arena", "leaderboard", "--rounds", "0"]) == 0
    assert " 1. big" in capsys.readouterr().out
    assert main(["prefs", "arena", "export", "--name", "duels"]) == 0
    assert "4 votes -> 3 pairs -> dataset 'duels'" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["generate", "x", "--prompts", "PROMPTS", "--models", "MODEL", "--k", "1"], "K (candidates per prompt) is 1"),
    (["generate", "x", "--prompts", "PROMPTS", "--models", "MODEL", "--temperatures", "hot"], "Temperatures 'hot'"),
    (["generate", "x", "--prompts", "missing.txt", "--models", "MODEL"], "The prompts file"),
    (["export", "nope"], "There is no task set 'nope'"),
    (["arena", "export"], "The arena has no votes yet"),
])
def test_bad_input_prints_one_sentence_and_exits_1(workspace, tmp_path, tiny_llama_dir, capsys, argv, message):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Q?\n", encoding="utf-8")
    swap = {"PROMPTS": str(prompts), "MODEL": str(tiny_llama_dir), "missing.txt": str(tmp_path / "missing.txt")}
    assert main(["prefs"] + [swap.get(a, a) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and message in err and "Traceback" not in err
