"""Per-candidate generation settings reach generation: `studio prefs generate --slot ...` on tiny random Llamas
gives each candidate slot its own model, temperature, top-p, max new tokens and seed, as stored and as written."""
from __future__ import annotations

import json

from studio.cli import main
from studio.prefs.store import PrefStore


def _candidates(ws, task_set: str) -> list[list[dict]]:
    """Per item, its candidates in slot order as {text, model, settings}."""
    store = PrefStore(ws)
    out = []
    for item in store.rankings(task_set):
        with store._db() as conn:
            rows = conn.execute("SELECT text, model, settings_json FROM candidates WHERE item_id = ? ORDER BY idx",
                                (item["item_id"],)).fetchall()
        out.append([{"text": r["text"], "model": r["model"], "settings": json.loads(r["settings_json"])}
                    for r in rows])
    return out


def test_each_slot_generates_with_its_own_model_and_settings(workspace, tmp_path, tiny_llama_dir, other_llama_dir,
                                                             capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Name a colour.\nWhat is a reward model?\n", encoding="utf-8")
    assert main(["prefs", "generate", "slots", "--prompts", str(prompts), "--models", str(tiny_llama_dir),
                 "--k", "3", "--json",
                 # the same sampling with the same seed, short and long
                 "--slot", "temperature=1.0,top_p=1.0,max_new_tokens=2,seed=5",
                 "--slot", "temperature=1.0,top_p=1.0,max_new_tokens=12,seed=5",
                 "--slot", f"model={other_llama_dir},temperature=1.3,top_p=0.8,max_new_tokens=4,seed=9"]) == 0
    job = json.loads(capsys.readouterr().out)
    assert job["state"] == "completed" and job["total"] == 6
    for short, long, other in _candidates(workspace, "slots"):
        assert [c["model"] for c in (short, long, other)] == [str(tiny_llama_dir)] * 2 + [str(other_llama_dir)]
        assert [(c["settings"]["max_new_tokens"], c["settings"]["top_p"], c["settings"]["seed"])
                for c in (short, long)] == [(2, 1.0, 5), (12, 1.0, 5)]
        assert (other["settings"]["temperature"], other["settings"]["top_p"], other["settings"]["max_new_tokens"],
                other["settings"]["seed"]) == (1.3, 0.8, 4, 9)
        # one model drawing with one seed: the 12-token answer goes on from where the 2-token answer stopped
        assert long["text"].startswith(short["text"]) and len(long["text"]) > len(short["text"]) > 0


def test_a_bad_slot_is_refused_before_anything_is_generated(workspace, tmp_path, tiny_llama_dir, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Q?\n", encoding="utf-8")
    assert main(["prefs", "generate", "bad", "--prompts", str(prompts), "--models", str(tiny_llama_dir), "--k", "2",
                 "--slot", "top_p=0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: 'slot 1.top_p' must be greater than 0") and "Traceback" not in err
    assert PrefStore(workspace).task_sets() == []
