"""The preferences service on a real prefs.db and a tiny random Llama (real SmolLM2 tokenizer): prompts from every
source, the candidate-generation job, consensus export to DPO/KTO datasets, agreement with the AI judge, the
arena's blind duels, votes, leaderboard and pairs, and the judge job's suggestions."""
from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from studio.data.store import dataset_names
from studio.errors import StudioError
from studio.generation import GenerationSettings, ModelPool
from studio.jobs.records import JobRecords
from studio.prefs.judge import judge_prompt, ranking_from_scores
from studio.prefs.service import PrefService
from studio.prefs.slots import candidate_settings, default_settings
from studio.prefs.sources import read_prompts_file

SHORT = [GenerationSettings(max_new_tokens=5, temperature=t, seed=j) for j, t in enumerate((0.7, 1.0, 0.7))]


@pytest.fixture
def models(tmp_path, tiny_llama_dir, other_llama_dir) -> list[str]:
    """Two model folders with readable names, for candidates and arena sides."""
    out = []
    for name, target in (("model-a", tiny_llama_dir), ("model-b", other_llama_dir)):
        (tmp_path / name).symlink_to(target, target_is_directory=True)
        out.append(str(tmp_path / name))
    return out


@pytest.fixture
def service(workspace, tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loads = []

    def load(spec, ws):
        loads.append(spec)
        return AutoModelForCausalLM.from_pretrained(spec), AutoTokenizer.from_pretrained(spec)

    svc = PrefService(workspace, pool=ModelPool(workspace, loader=load))
    svc.loads = loads
    return svc


def ranked_set(svc: PrefService, name: str = "colours") -> list[int]:
    """A task set of 3 items x 3 candidates; ana and ben rank the first two items, only ana the third."""
    svc.store.create_task_set(name, [
        {"prompt": "Name a primary colour.", "system": "One word.", "candidates": ["Red", "Green", "Purple"]},
        {"prompt": "2+2?", "candidates": ["4", "5", "four"]},
        {"prompt": "Greet me.", "candidates": ["Hello!", "Go away.", "Hi."]},
    ], overlap=2)
    ids = [item["item_id"] for item in svc.store.rankings(name)]
    svc.store.submit(ids[0], "ana", [[0], [1], [2]])
    svc.store.submit(ids[0], "ben", [[0], [2], [1]])   # agrees on the best only: consensus [[0], [1, 2]]
    svc.store.submit(ids[1], "ana", [[0, 2], [1]])
    svc.store.submit(ids[1], "ben", [[0, 2], [1]])     # the same ranking: W = 1
    svc.store.submit(ids[2], "ana", [[2], [0], [1]])
    return ids


def test_prompts_come_from_typed_text_datasets_and_saved_exchanges(service, workspace, tmp_path):
    assert service.load_prompts("typed", "What is DPO?\n\n  Why rank answers?  \n") == [
        {"prompt": "What is DPO?", "system": ""}, {"prompt": "Why rank answers?", "system": ""}]
    sample = service.load_prompts("dataset", "sample-format-tutor", limit=2)
    assert len(sample) == 2 and sample[0]["prompt"] == "¿Qué fue el Renacimiento?"
    rows = tmp_path / "questions.jsonl"
    rows.write_text(json.dumps({"question": "Capital of France?", "answer": "Paris", "topic": "geo"}) + "\n"
                    + json.dumps({"question": "Capital of Spain?", "answer": "Madrid", "topic": "geo"}) + "\n")
    from studio.data.store import import_file

    name = import_file(workspace, rows, "capitals")
    assert sorted(p["prompt"] for p in service.load_prompts("dataset", name)) == ["Capital of France?",
                                                                                  "Capital of Spain?"]
    # a column named by its original name or by its canonical field
    assert sorted(p["prompt"] for p in service.load_prompts("dataset", name, column="answer")) == ["Madrid", "Paris"]
    assert sorted(p["prompt"] for p in service.load_prompts("dataset", name, column="output")) == ["Madrid", "Paris"]
    folder = Path(workspace.home) / "exchanges"
    folder.mkdir()
    (folder / "playground.jsonl").write_text(json.dumps({"messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
        {"role": "assistant", "content": "Hello."}]}) + "\n")
    assert service.load_prompts("exchanges", "playground") == [{"prompt": "Hi?", "system": "Be brief."}]
    assert service.prompt_sources() == {"datasets": dataset_names(workspace), "exchanges": ["playground"]}
    for args, key in [(("typed", " \n "), "prefs.prompts.none_typed"),
                      (("dataset", "nope"), "prefs.prompts.unknown_dataset"),
                      (("exchanges", "nope"), "prefs.prompts.no_exchanges"),
                      (("spreadsheet", "x"), "prefs.prompts.bad_source")]:
        with pytest.raises(StudioError) as info:
            service.load_prompts(*args)
        assert info.value.key == key
    with pytest.raises(StudioError, match="no column 'colour'; its columns are") as info:
        service.load_prompts("dataset", name, column="colour")
    assert info.value.key == "prefs.prompts.unknown_column"


def test_generation_job_creates_a_task_set_with_k_candidates_per_prompt_and_records_models(service, models):
    prompts = [{"prompt": "What is a reward model?", "system": "Be brief."}, "Name a colour."]
    job_id = service.start_generation("round-1", prompts, models, 3, SHORT, overlap=2, guidelines="Prefer short.",
                                      created_by="ana")
    job = service.wait(job_id, timeout=120)
    assert job["state"] == "completed", job["error"]
    assert job["done"] == job["total"] == 6 and job["kind"] == "generate" and job["task_set"] == "round-1"
    made = service.store.task_set("round-1")
    assert made["k"] == 3 and made["items"] == 2 and made["overlap"] == 2 and made["guidelines"] == "Prefer short."
    assert made["source"] == f"generated by {models[0]}, {models[1]}" and made["created_by"] == "ana"
    items = service.store.rankings("round-1")
    assert [i["prompt"] for i in items] == ["What is a reward model?", "Name a colour."]
    assert items[0]["system"] == "Be brief." and all(len(i["candidates"]) == 3 for i in items)
    assert all(i["models"] == [models[0], models[1], models[0]] for i in items)  # candidate j: model j mod 2
    with service.store._db() as conn:
        recorded = [json.loads(r[0]) for r in conn.execute("SELECT settings_json FROM candidates ORDER BY id")]
    assert [(s["temperature"], s["seed"], s["max_new_tokens"]) for s in recorded[:3]] == [
        (0.7, 0, 5), (1.0, 1, 5), (0.7, 2, 5)]
    assert sorted(service.loads) == sorted(models)  # each model loaded once
    # two settings for three candidates: the third reuses the first with another seed, so it is not a copy
    one_model = service.wait(service.start_generation("round-3", prompts[:1], models[:1], 3, SHORT[:2]))
    assert one_model["state"] == "completed"
    [item] = service.store.rankings("round-3")
    with service.store._db() as conn:
        seeds = [json.loads(r[0])["seed"] for r in conn.execute(
            "SELECT settings_json FROM candidates WHERE item_id = ? ORDER BY idx", (item["item_id"],))]
    assert seeds == [0, 1, 2] and item["candidates"][2] != item["candidates"][0]
    # the same seeds give the same candidates again
    again = service.wait(service.start_generation("round-2", prompts, models, 3, SHORT), timeout=120)
    assert again["state"] == "completed"
    assert [i["candidates"] for i in service.store.rankings("round-2")] == [i["candidates"] for i in items]


def test_default_settings_alternate_temperatures_with_a_seed_per_candidate():
    assert [(s.temperature, s.seed, s.do_sample) for s in default_settings(4)] == [
        (0.7, 0, True), (1.0, 1, True), (0.7, 2, True), (1.0, 3, True)]
    assert [(s.temperature, s.seed, s.max_new_tokens) for s in candidate_settings(3, "0.2", 16)] == [
        (0.2, 0, 16), (0.2, 1, 16), (0.2, 2, 16)]
    for bad in ("hot", "", "0.7,3"):
        with pytest.raises(StudioError) as info:
            candidate_settings(2, bad)
        assert info.value.key == "prefs.service.bad_temperatures"


def test_a_prompts_file_is_plain_lines_or_jsonl(tmp_path):
    txt, jsonl = tmp_path / "p.txt", tmp_path / "p.jsonl"
    txt.write_text("One?\n\nTwo?\n", encoding="utf-8")
    jsonl.write_text('"One?"\n{"prompt": "Two?", "system": "Be brief."}\n\n', encoding="utf-8")
    assert [p["prompt"] for p in read_prompts_file(txt)] == ["One?", "Two?"]
    assert read_prompts_file(jsonl, limit=5) == [{"prompt": "One?", "system": ""},
                                                {"prompt": "Two?", "system": "Be brief."}]
    jsonl.write_text('{"text": "no prompt"}\n', encoding="utf-8")
    with pytest.raises(StudioError, match="Line 1 of 'p.jsonl' is not a prompt") as info:
        read_prompts_file(jsonl)
    assert info.value.key == "prefs.prompts.bad_line"
    with pytest.raises(StudioError) as info:
        read_prompts_file(tmp_path / "missing.txt")
    assert info.value.key == "prefs.prompts.no_file"


def test_bad_generation_requests_are_refused_before_any_job(service, models):
    service.store.create_task_set("taken", [{"prompt": "Q", "candidates": ["a", "b"]}])
    cases = [(("new", ["Q?"], models, 1), "prefs.service.bad_k"),
             (("new", ["Q?"], models, 7), "prefs.service.bad_k"),
             (("new", [], models, 2), "prefs.service.no_prompts"),
             (("new", ["  ", {"prompt": ""}], models, 2), "prefs.service.no_prompts"),
             (("new", ["Q?"], [], 2), "prefs.service.no_models"),
             (("taken", ["Q?"], models, 2), "prefs.service.set_exists"),
             (("new", ["Q?"], ["run:nope"], 2), "prefs.models.no_run")]
    for args, key in cases:
        with pytest.raises(StudioError) as info:
            service.start_generation(*args)
        assert info.value.key == key, args
    with pytest.raises(StudioError, match="K \\(candidates per prompt\\) is 1; use 2 to 6"):
        service.start_generation("new", ["Q?"], models, 1)
    assert service.jobs.jobs == {} and service.loads == []
    assert JobRecords(service.ws).list() == []  # no job row either


def test_export_turns_the_consensus_into_dpo_and_kto_datasets(service, workspace):
    ranked_set(service)
    dpo = service.export("colours", "all_pairs", "dpo")
    # item 1: consensus [[0], [1, 2]] -> Red>Green, Red>Purple; item 2: [[0, 2], [1]] -> 4>5, four>5;
    # item 3 (one annotator): Hi.>Hello!, Hi.>Go away., Hello!>Go away.
    assert dpo["dataset"] == "colours-dpo" and dpo["rows"] == 7 and dpo["items"] == 3 and dpo["dropped"] == 0
    assert "colours-dpo" in dataset_names(workspace)
    rows = [json.loads(line) for line in Path(dpo["jsonl"]).read_text().splitlines()]
    assert rows[0] == {"system": "One word.", "prompt": "Name a primary colour.", "chosen": "Red",
                       "rejected": "Green"}
    assert [(r["chosen"], r["rejected"]) for r in rows[2:4]] == [("4", "5"), ("four", "5")]
    import pyarrow.parquet as pq

    assert pq.read_table(dpo["parquet"]).num_rows == 7
    from studio.data.builder import dataset_card

    assert dataset_card(workspace, "colours-dpo")["format"] == "preference"
    # only items with two annotators; best vs rest
    strict = service.export("colours", "best_vs_rest", "dpo", name="colours-strict", min_annotators=2)
    assert strict["items"] == 2 and strict["skipped_items"] == 1 and strict["rows"] == 4
    kto = service.export("colours", fmt="kto")
    assert kto["dataset"] == "colours-kto" and dataset_card(workspace, "colours-kto")["format"] == "feedback"
    labels = [(r["completion"], r["label"]) for r in map(json.loads, Path(kto["jsonl"]).read_text().splitlines())]
    assert labels[:5] == [("Red", True), ("Green", False), ("Purple", False), ("4", True), ("four", True)]
    conv = service.export("colours", fmt="dpo", conversational=True, name="colours-chat")
    first = json.loads(Path(conv["jsonl"]).read_text().splitlines()[0])
    assert first["prompt"][-1] == {"role": "user", "content": "Name a primary colour."}
    assert first["chosen"] == [{"role": "assistant", "content": "Red"}]
    assert dataset_card(workspace, "colours-chat")["format"] == "preference"  # the dataset holds plain strings


def test_a_pair_with_an_empty_answer_is_left_out_and_counted(service):
    service.store.create_task_set("blanks", [{"prompt": "Q?", "candidates": ["Fine.", "", "Poor."]}])
    [item] = service.store.rankings("blanks")
    service.store.submit(item["item_id"], "ana", [[0], [2], [1]])
    result = service.export("blanks")
    assert result["rows"] == 1 and result["empty"] == 2
    assert json.loads(Path(result["jsonl"]).read_text()) == {"prompt": "Q?", "chosen": "Fine.", "rejected": "Poor."}


def test_a_cancelled_generation_creates_no_task_set(service, models):
    gate = threading.Event()
    service.jobs._pool.submit(gate.wait, 60)  # keep the worker busy until the cancel
    job_id = service.start_generation("never", ["Q?"] * 20, models, 2, SHORT)
    assert JobRecords(service.ws).get(job_id)["status"] == "queued"
    service.cancel(job_id)
    gate.set()
    assert service.wait(job_id, timeout=60)["state"] == "cancelled"
    assert service.store.task_sets() == [] and service.loads == []
    row = JobRecords(service.ws).get(job_id)
    assert row["kind"] == "generate" and row["status"] == "cancelled" and row["params"]["task_set"] == "never"


def test_exporting_a_task_set_with_no_ranked_items_is_refused(service):
    service.store.create_task_set("empty", [{"prompt": "Q?", "candidates": ["a", "b"]}])
    with pytest.raises(StudioError, match="Task set 'empty' has no ranked items yet") as info:
        service.export("empty")
    assert info.value.key == "prefs.service.nothing_ranked"
    ranked_set(service)
    with pytest.raises(StudioError) as info:
        service.export("colours", min_annotators=3)
    assert info.value.key == "prefs.service.nothing_ranked"
    with pytest.raises(StudioError) as info:
        service.export("colours", fmt="csv")
    assert info.value.key == "prefs.service.bad_format"


def test_agreement_reports_alpha_w_per_item_each_annotator_contested_items_and_the_judge(service):
    ids = ranked_set(service)
    assert "judge" not in service.agreement("colours")
    service.store.add_suggestion(ids[0], "judge-x", [[0], [1], [2]])   # tau-b with [[0], [1, 2]]: 0.816
    service.store.add_suggestion(ids[1], "judge-x", [[1], [0, 2]])     # reversed: -1
    result = service.agreement("colours")
    assert result["consensus"] == "borda" and -1 <= result["alpha"] <= 1
    w = {row["item_id"]: row["w"] for row in result["items"]}
    assert w[ids[1]] == pytest.approx(1.0) and w[ids[0]] < 1 and w[ids[2]] is None
    assert [row["annotators"] for row in result["items"]] == [2, 2, 1]
    assert set(result["annotators"]) == {"ana", "ben"} and result["annotators"]["ana"]["items"] == 2
    assert result["contested"][0]["item_id"] == ids[0] and result["contested"][0]["prompt"] == "Name a primary colour."
    judge = result["judge"]
    taus = {row["item_id"]: row["tau"] for row in judge["items"]}
    assert taus[ids[0]] == pytest.approx(2 / 6 ** 0.5) and taus[ids[1]] == pytest.approx(-1.0)
    assert judge["compared"] == 2 and judge["mean"] == pytest.approx((2 / 6 ** 0.5 - 1) / 2)
    assert judge["judges"] == {"judge-x": {"mean": judge["mean"], "compared": 2}}
    assert result["contested"][0]["annotators"] == 2


def test_arena_duels_are_blind_until_the_vote_and_votes_rank_models_and_become_pairs(service, models, workspace,
                                                                                     monkeypatch):
    seeded = GenerationSettings(max_new_tokens=4, seed=3)
    coin = iter([0.9, 0.1, 0.9, 0.9, 0.1])  # < 0.5 swaps the sides
    monkeypatch.setattr("studio.prefs.service.random", SimpleNamespace(random=lambda: next(coin)))
    sides = []
    for outcome in ("1", "2", "tie", "both_bad", "1"):
        duel = service.arena_duel("Say hi.", models[0], models[1], seeded, system="Be brief.")
        assert set(duel) == {"duel_id", "answer_1", "answer_2"} and "model" not in json.dumps(duel)
        revealed = service.arena_vote(duel["duel_id"], outcome, voter="ana")
        assert {revealed["model_1"], revealed["model_2"]} == set(models)
        sides.append(revealed["model_1"])
    assert sides == [models[0], models[1], models[0], models[0], models[1]]
    with pytest.raises(StudioError) as info:
        service.arena_vote(duel["duel_id"], "1")  # voted already
    assert info.value.key == "prefs.service.arena_no_duel"
    votes = service.arena_votes()
    assert len(votes) == 5 and votes[0]["outcome"] == "a" and votes[1]["outcome"] == "b"
    assert votes[0]["voter"] == "ana" and votes[0]["system"] == "Be brief."
    board = service.leaderboard(rounds=50)
    assert {row["model"] for row in board} == set(models) and all(row["count"] == 5 for row in board)
    assert sum(row["wins"] for row in board) == 3 and board[0]["low"] is not None
    exported = service.arena_export()
    assert exported["dataset"] == "arena-pairs" and exported["votes"] == 5
    assert exported["rows"] == 3 and exported["empty"] == 0  # ties and "both bad" give no pair
    assert "arena-pairs" in dataset_names(workspace)
    rows = [json.loads(line) for line in Path(exported["jsonl"]).read_text().splitlines()]
    first = votes[0]
    assert rows[0] == {"system": "Be brief.", "prompt": "Say hi.", "chosen": first["answer_a"],
                       "rejected": first["answer_b"]}
    with pytest.raises(StudioError) as info:
        service.arena_duel("Say hi.", models[0], models[0])
    assert info.value.key == "prefs.service.arena_same_model"
    with pytest.raises(StudioError) as info:
        service.arena_vote("x", "left")
    assert info.value.key == "prefs.service.arena_bad_vote"


def test_the_judge_job_stores_a_suggested_ranking_per_item(service, models):
    ids = ranked_set(service)
    job = service.wait(service.judge("colours", models[0], "Answers in one word."), timeout=120)
    assert job["state"] == "completed", job["error"]
    assert job["done"] == job["total"] == 9 and job["result"] == {"judge": models[0], "items": 3}
    with service.store._db() as conn:
        rows = {r["item_id"]: r for r in conn.execute("SELECT * FROM suggestions")}
    assert set(rows) == set(ids)
    scores = json.loads(rows[ids[0]]["rationale"])["p_yes"]
    assert len(scores) == 3 and all(0 < s < 1 for s in scores)
    assert json.loads(rows[ids[0]]["ranking_json"]) == ranking_from_scores(scores)
    assert "judge" in service.agreement("colours")
    item = service.store.next_item("colours", "eva")
    assert item["suggestions"][0]["judge"] == models[0]
    with pytest.raises(StudioError) as info:
        service.judge("colours", models[0], "  ")
    assert info.value.key == "prefs.service.no_rubric"


def test_the_judge_reads_the_rubric_in_its_chat_template_and_equal_scores_tie(smollm2_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    text = judge_prompt(tok, "Be polite.", "Greet me.", "Hello!", system="Short answers.")
    assert text.startswith("<|im_start|>") and text.endswith("<|im_start|>assistant\nAnswer:")
    assert "Rubric:\nBe polite." in text and "Candidate answer:\nHello!" in text and "Short answers." in text
    assert ranking_from_scores([0.2, 0.9, 0.2, 0.5]) == [[1], [3], [0, 2]]
    plain = judge_prompt(SimpleNamespace(chat_template=None), "Be polite.", "Greet me.", "Hello!")
    assert plain.endswith("Candidate answer:\nHello!\n\nDoes this answer follow the rubric? Answer Yes or No.\nAnswer:")
