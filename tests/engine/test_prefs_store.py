"""The preference store on a real SQLite file in a temp workspace: task-set validation, assignment (never the same
item twice, overlap, spreading, claims), stable blind display order, submissions that are all-or-nothing and
never overwritten, skip/flag, progress, imports, passwords, and 20 annotators submitting at once from threads
and from 4 spawned processes."""
from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from studio.errors import StudioError
from studio.prefs.store import MIGRATIONS, PrefStore, to_candidate_ranking


def make_items(n: int, k: int = 3) -> list[dict]:
    return [{"prompt": f"Question {i}?", "system": "Be brief." if i % 2 else "",
             "candidates": [{"text": f"answer {j} to question {i}", "model": f"model-{j % 2}",
                             "settings": {"temperature": 0.2 * (j + 1)}} for j in range(k)]} for i in range(n)]


def answer_everything(store: PrefStore, task_set: str, annotator: str) -> list[int]:
    """Rank every item handed out until none is left (best = the lowest candidate index); the item ids seen."""
    seen = []
    while (item := store.next_item(task_set, annotator)) is not None:
        seen.append(item["item_id"])
        store.submit(item["item_id"], annotator, [[i] for i in range(item["k"])], seconds=1.5)
    return seen


@pytest.fixture
def store(workspace) -> PrefStore:
    return PrefStore(workspace)


def ranked_per_item(store: PrefStore, task_set: str) -> list[int]:
    return [len(item["rankings"]) for item in store.rankings(task_set)]


def test_the_store_is_its_own_versioned_wal_file(store, workspace):
    assert store.path == workspace.home / "prefs.db" and store.schema_version() == len(MIGRATIONS) == 2
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert PrefStore(workspace).schema_version() == 2  # reopening migrates nothing twice
    with sqlite3.connect(workspace.db_path) as conn:  # studio.db is untouched
        assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'task_sets'").fetchone()


def test_a_task_set_with_one_candidate_per_prompt_is_refused(store):
    with pytest.raises(StudioError, match=r"at least 2 candidates per prompt \(K is 1\)") as info:
        store.create_task_set("solo", [{"prompt": "Hi?", "candidates": ["only one"]}])
    assert info.value.key == "prefs.store.k_too_small" and info.value.field == "prefs.k"
    with pytest.raises(StudioError, match="K is 1"):
        store.create_task_set("solo", [], k=1)
    assert store.task_sets() == []


def test_an_item_with_the_wrong_number_of_candidates_stores_nothing(store):
    items = make_items(3)
    items[2]["candidates"].pop()
    with pytest.raises(StudioError, match="Item 3 has 2 candidates but the task set ranks 3") as info:
        store.create_task_set("reviews", items)
    assert info.value.key == "prefs.store.wrong_count"
    assert store.task_sets() == []
    store.create_task_set("reviews", make_items(2))
    with pytest.raises(StudioError, match="Item 1 has 4 candidates"):
        store.add_items("reviews", make_items(1, k=4))
    with pytest.raises(StudioError, match="already exists") as info:
        store.create_task_set("reviews", make_items(1))
    assert info.value.key == "prefs.store.set_exists"
    with pytest.raises(StudioError, match="no prompt"):
        store.add_items("reviews", [{"prompt": " ", "candidates": ["a", "b", "c"]}])
    with pytest.raises(StudioError, match="overlap"):
        store.create_task_set("other", make_items(1), overlap=0)
    assert store.task_set("reviews")["items"] == 2


def test_task_sets_describe_k_overlap_guidelines_and_counts(store):
    created = store.create_task_set("reviews", make_items(4), overlap=2, guidelines="# Rank\nprefer **short**",
                                    created_by="ana", source="dataset support-questions")
    assert created["k"] == 3 and created["overlap"] == 2 and created["items"] == 4
    store.set_guidelines("reviews", "New rules")
    assert store.add_items("reviews", make_items(1)) and store.task_set("reviews")["items"] == 5
    [row] = store.task_sets()
    assert row["name"] == "reviews" and row["guidelines"] == "New rules" and row["created_by"] == "ana"
    assert row["items"] == 5 and row["complete"] == 0 and row["source"] == "dataset support-questions"
    with pytest.raises(StudioError, match="no task set 'nope'") as info:
        store.task_set("nope")
    assert info.value.key == "prefs.store.no_set"


def test_next_item_never_repeats_an_item_for_an_annotator_and_respects_overlap(store):
    store.create_task_set("reviews", make_items(5), overlap=2)
    seen = {who: answer_everything(store, "reviews", who) for who in ("ana", "ben", "eva")}
    for who, items in seen.items():
        assert len(items) == len(set(items)), who
    assert sum(len(items) for items in seen.values()) == 10
    assert ranked_per_item(store, "reviews") == [2] * 5
    assert all(store.next_item("reviews", who) is None for who in ("ana", "ben", "eva", "new"))


def test_annotators_working_at_once_spread_over_items_and_a_refresh_returns_the_same_item(store):
    store.create_task_set("reviews", make_items(3), overlap=2)
    first = store.next_item("reviews", "ana")
    assert store.next_item("reviews", "ana")["item_id"] == first["item_id"]  # refresh: same claimed item
    assert store.next_item("reviews", "ben")["item_id"] != first["item_id"]  # least-annotated first
    store.submit(first["item_id"], "ana", [[0], [1, 2]])
    assert store.next_item("reviews", "ana")["item_id"] != first["item_id"]


def test_an_abandoned_claim_expires_and_frees_the_item(workspace):
    store = PrefStore(workspace, claim_seconds=0.2)
    store.create_task_set("reviews", make_items(1), overlap=1)
    held = store.next_item("reviews", "ana")
    assert store.next_item("reviews", "ben") is None
    time.sleep(0.3)
    assert store.next_item("reviews", "ben")["item_id"] == held["item_id"]


def test_display_order_is_random_stable_per_annotator_and_hides_the_model(store):
    store.create_task_set("reviews", make_items(12, k=4), overlap=2)
    ana = [store.next_item("reviews", "ana") for _ in range(2)]
    assert ana[0] == ana[1]
    orders = {}
    for who in ("ana", "ben"):
        for _ in range(12):
            item = store.next_item("reviews", who)
            again = store.next_item("reviews", who)
            assert item["order"] == again["order"] and item["candidates"] == again["candidates"]
            assert sorted(item["order"]) == [0, 1, 2, 3]
            assert item["candidates"] == [f"answer {idx} to question {item['position']}" for idx in item["order"]]
            assert "model" not in str(item) and "temperature" not in str(item)
            orders[who, item["item_id"]] = item["order"]
            store.skip(item["item_id"], who)
    assert any(orders["ana", i] != orders["ben", i] for i in {i for _, i in orders})
    assert len({tuple(o) for o in orders.values()}) > 3  # not one fixed shuffle


def test_a_display_ranking_maps_back_to_candidate_indices(store):
    store.create_task_set("reviews", make_items(1, k=4))
    item = store.next_item("reviews", "ana")
    best_slot = item["candidates"].index("answer 2 to question 0")
    others = [s for s in range(4) if s != best_slot]
    stored = store.submit(item["item_id"], "ana", to_candidate_ranking(item["order"], [[best_slot], others]))
    assert stored["ranking"] == [[2], [0, 1, 3]]


def test_an_incomplete_ranking_is_refused_and_nothing_is_stored(store):
    store.create_task_set("reviews", make_items(1), overlap=1)
    item = store.next_item("reviews", "ana")
    with pytest.raises(StudioError, match="leaves out candidate 3"):
        store.submit(item["item_id"], "ana", [[1], [0]])
    with pytest.raises(StudioError, match="twice"):
        store.submit(item["item_id"], "ana", [[1], [0, 1], [2]])
    assert ranked_per_item(store, "reviews") == [0] and store.progress("reviews")["annotators"] == []
    assert store.next_item("reviews", "ana")["item_id"] == item["item_id"]  # still theirs to rank
    store.submit(item["item_id"], "ana", [[1], [0, 2]], rationale="1 is exact")
    [row] = store.rankings("reviews")
    assert row["rankings"][0]["ranking"] == [[1], [0, 2]] and row["rankings"][0]["rationale"] == "1 is exact"


def test_a_second_submission_is_refused_and_the_first_is_kept(store):
    store.create_task_set("reviews", make_items(1), overlap=2)
    item = store.next_item("reviews", "ana")
    store.submit(item["item_id"], "ana", [[0], [1], [2]])
    with pytest.raises(StudioError, match="already answered .* the first answer is kept") as info:
        store.submit(item["item_id"], "ana", [[2], [1], [0]])
    assert info.value.key == "prefs.store.already_answered"
    with pytest.raises(StudioError, match="already answered"):
        store.skip(item["item_id"], "ana")
    [row] = store.rankings("reviews")
    assert row["rankings"] == [{"annotator": "ana", "ranking": [[0], [1], [2]], "rationale": "", "seconds": None}]
    with pytest.raises(StudioError, match="no item 999"):
        store.submit(999, "ana", [[0], [1], [2]])
    with pytest.raises(StudioError, match="annotator name is empty"):
        store.submit(item["item_id"], "  ", [[0], [1], [2]])


def test_skipped_and_flagged_items_are_not_shown_again_and_a_flag_needs_a_reason(store):
    store.create_task_set("reviews", make_items(2), overlap=1)
    first = store.next_item("reviews", "ana")
    store.skip(first["item_id"], "ana")
    second = store.next_item("reviews", "ana")
    assert second["item_id"] != first["item_id"]
    with pytest.raises(StudioError, match="needs a reason") as info:
        store.flag(second["item_id"], "ana", "  ")
    assert info.value.key == "prefs.store.no_reason"
    store.flag(second["item_id"], "ana", "The prompt is ambiguous")
    assert store.next_item("reviews", "ana") is None
    assert store.next_item("reviews", "ben")["item_id"] == first["item_id"]  # others still get them
    rows = store.rankings("reviews")
    assert rows[0]["skipped"] == 1 and rows[1]["flags"] == [{"annotator": "ana", "reason": "The prompt is ambiguous"}]


def test_progress_counts_items_and_each_annotators_work(store):
    store.create_task_set("reviews", make_items(4), overlap=2)
    a = store.next_item("reviews", "ana")
    store.submit(a["item_id"], "ana", [[0], [1], [2]], seconds=3)
    b = store.next_item("reviews", "ben")
    store.submit(b["item_id"], "ben", [[0, 1, 2]], seconds=2)
    b2 = store.next_item("reviews", "ben")
    store.flag(b2["item_id"], "ben", "offensive")
    store.next_item("reviews", "eva")  # claimed, not answered yet
    p = store.progress("reviews")
    assert (p["items"], p["complete"], p["in_progress"], p["pending"], p["rankings"]) == (4, 0, 3, 1, 2)
    assert p["annotators"] == [
        {"annotator": "ana", "ranked": 1, "skipped": 0, "flagged": 0, "seconds": 3.0},
        {"annotator": "ben", "ranked": 1, "skipped": 0, "flagged": 1, "seconds": 2.0}]
    answer_everything(store, "reviews", "ana")
    answer_everything(store, "reviews", "ben")
    answer_everything(store, "reviews", "eva")
    p = store.progress("reviews")
    assert (p["complete"], p["in_progress"], p["pending"]) == (4, 0, 0)
    assert store.task_sets()[0]["complete"] == 4
    assert [r["status"] for r in store.rankings("reviews")] == ["complete"] * 4


def test_rankings_give_texts_models_and_every_annotators_ranking(store):
    store.create_task_set("reviews", make_items(1), overlap=2)
    item = store.next_item("reviews", "ana")
    store.submit(item["item_id"], "ana", [[2], [0, 1]])
    [row] = store.rankings("reviews")
    assert row["prompt"] == "Question 0?" and row["system"] == "" and row["status"] == "in_progress"
    assert row["candidates"] == [f"answer {j} to question 0" for j in range(3)]
    assert row["models"] == ["model-0", "model-1", "model-0"]
    assert [(r["annotator"], r["ranking"]) for r in row["rankings"]] == [("ana", [[2], [0, 1]])]


def test_ai_judge_suggestions_reach_the_annotator_in_display_slots(store):
    store.create_task_set("reviews", make_items(1, k=4))
    item_id = store.rankings("reviews")[0]["item_id"]
    store.add_suggestion(item_id, "judge-7b", [[3], [0, 1], [2]], rationale="3 cites the source")
    item = store.next_item("reviews", "ana")
    [hint] = item["suggestions"]
    assert hint["judge"] == "judge-7b" and to_candidate_ranking(item["order"], hint["ranking"]) == [[3], [0, 1], [2]]


def test_imported_rankings_join_a_task_set_once_as_their_files_annotator(store, tmp_path):
    parsed = [{"prompt": "Capital of France?", "candidates": ["Paris", "Lyon", "Nice"], "ranking": [[0], [1, 2]]},
              {"prompt": "2 + 2?", "candidates": ["4", "5"], "ranking": [[0], [1]]}]
    with pytest.raises(StudioError, match="Item 2 has 2 candidates"):
        store.import_rankings("imported", parsed, tmp_path / "team.jsonl")
    assert store.task_sets() == []  # all or nothing: not even the task set
    parsed[1]["candidates"].append("22")
    parsed[1]["ranking"] = [[0], [1, 2]]
    report = store.import_rankings("imported", parsed, tmp_path / "team.jsonl")
    assert report == {"task_set": "imported", "annotator": "import:team", "items_added": 2, "items_matched": 0,
                      "stored": 2, "already": 0}
    assert store.task_set("imported")["source"] == "imported from team.jsonl"
    again = store.import_rankings("imported", parsed, tmp_path / "team.jsonl")
    assert (again["stored"], again["already"], again["items_added"]) == (0, 2, 0)
    # A second file with the same item, candidates in another order: matched by text, ranking remapped.
    other = [{"prompt": "Capital of France?", "candidates": ["Nice", "Paris", "Lyon"], "ranking": [[1], [0], [2]]}]
    report = store.import_rankings("imported", other, "lab.jsonl")
    assert (report["items_matched"], report["stored"]) == (1, 1)
    first = store.rankings("imported")[0]
    assert [(r["annotator"], r["ranking"]) for r in first["rankings"]] == [("import:team", [[0], [1, 2]]),
                                                                         ("import:lab", [[0], [2], [1]])]
    assert store.progress("imported")["complete"] == 2
    with pytest.raises(StudioError, match="leaves out"):
        store.import_rankings("imported", [{"prompt": "x", "candidates": ["a", "b", "c"], "ranking": [[0]]}], "bad")


def test_passwords_are_salted_scrypt_and_only_the_right_one_logs_in(store):
    store.add_annotator("ana", "s3cret", role="admin")
    store.add_annotator("ben", "s3cret")
    store.add_annotator("eva")
    assert store.check_password("ana", "s3cret") and not store.check_password("ana", "S3cret")
    assert not store.check_password("eva", "") and not store.check_password("nobody", "s3cret")
    with sqlite3.connect(store.path) as conn:
        hashes = dict(conn.execute("SELECT name, password_hash FROM annotators").fetchall())
    assert hashes["ana"].startswith("scrypt$") and "s3cret" not in hashes["ana"] and hashes["ana"] != hashes["ben"]
    assert hashes["eva"] is None
    assert [(a["name"], a["role"], a["has_password"]) for a in store.annotators()] == [
        ("ana", "admin", 1), ("ben", "annotator", 1), ("eva", "annotator", 0)]
    with pytest.raises(StudioError, match="already exists"):
        store.add_annotator("ana")
    with pytest.raises(StudioError, match="Role 'boss'") as info:
        store.add_annotator("zoe", role="boss")
    assert info.value.key == "prefs.store.bad_role"


# --- concurrency ----------------------------------------------------------------------------------
ITEMS, OVERLAP, PEOPLE = 20, 3, 20


def check_concurrent_result(store: PrefStore, names: list[str]) -> None:
    """Every submission stored exactly once, none lost, and exactly `OVERLAP` rankings on every item."""
    with sqlite3.connect(store.path) as conn:
        rows = conn.execute("SELECT item_id, annotator FROM submissions").fetchall()
    assert len(rows) == len(set(rows)) == ITEMS * OVERLAP
    assert ranked_per_item(store, "busy") == [OVERLAP] * ITEMS
    assert set(Counter(who for _, who in rows)) <= set(names)
    assert store.progress("busy")["complete"] == ITEMS


def annotate_in_threads(home: str, names: list[str], start=None) -> None:
    """Run one thread per annotator, all released together; raise if any of them failed."""
    store = PrefStore(SimpleNamespace(home=Path(home)))
    gate, errors = threading.Barrier(len(names)), []

    def work(who: str) -> None:
        try:
            gate.wait()
            answer_everything(store, "busy", who)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent below
            errors.append(repr(exc))

    if start is not None:
        start.wait(30)
    threads = [threading.Thread(target=work, args=(who,)) for who in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(errors)


def test_twenty_annotators_in_threads_submit_at_once_and_every_submission_is_stored_once(store, workspace):
    store.create_task_set("busy", make_items(ITEMS), overlap=OVERLAP)
    names = [f"annotator-{n}" for n in range(PEOPLE)]
    annotate_in_threads(str(workspace.home), names)
    check_concurrent_result(store, names)


def test_four_processes_of_five_annotators_submit_at_once_and_every_submission_is_stored_once(store, workspace):
    store.create_task_set("busy", make_items(ITEMS), overlap=OVERLAP)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    groups = [[f"p{p}-annotator-{n}" for n in range(5)] for p in range(4)]
    procs = [ctx.Process(target=annotate_in_threads, args=(str(workspace.home), names, start)) for names in groups]
    for proc in procs:
        proc.start()
    time.sleep(0.5)  # let the children import before the gate opens
    start.set()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    check_concurrent_result(store, [who for names in groups for who in names])
