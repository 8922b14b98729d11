"""The preference store: ranking task sets, their items and candidates, annotators and their submissions.

A `PrefStore` lives in its own SQLite file, `<workspace>/prefs.db` (WAL, foreign keys on, schema versioned
by its own `schema_version` table and the scripts in `studio.prefs.schema`), apart from `studio.db` so annotation
traffic never contends with the run table. Every call opens its own short connection and every write is one
`BEGIN IMMEDIATE` transaction, so threads and processes (the app's annotators, a CLI import) can share the
store and a submission is on disk the moment `submit` returns.

Assignment: `next_item` hands an annotator the least-annotated item they have not answered that still needs
annotators, and *claims* it for `claim_seconds`; a live claim holds one of the item's `overlap` places, so
annotators working at the same moment spread over items instead of all ranking the same one, and a refresh
returns the same item. An abandoned claim expires. A submission is never refused for being one too many
(an annotation is never thrown away); overlap is enforced when handing out items.

Candidates are shown in a random order that is stable per (item, annotator), without model names; `order`
maps display slots back to candidate indices. Rankings are stored in candidate indices as tie groups, best
first (`studio.prefs.ranking` validates them). Aggregation, pairs and export are left to the other
`studio.prefs` modules; this one only stores and hands out.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import re
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from studio.errors import StudioError
from studio.prefs.ranking import validate_ranking
from studio.prefs.schema import MIGRATIONS
from studio.access import ROLES
from studio.sqlite_schema import apply_migrations, transaction

NAME = re.compile(r"^\w[\w .-]{0,79}$")
SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}
# Per item: ranked submissions, and live claims of annotators who have not answered yet.
_COUNTS = """(SELECT COUNT(*) FROM submissions s WHERE s.item_id = i.id AND s.status = 'ranked') AS ranked,
             (SELECT COUNT(*) FROM claims c WHERE c.item_id = i.id AND c.claimed_at > :cutoff) AS claimed"""


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    _, n, r, p, salt, digest = stored.split("$")
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    return hmac.compare_digest(got.hex(), digest)


def display_order(item_id: int, annotator: str, k: int, seed: int = 0) -> list[int]:
    """Candidate index shown in each display slot; the same (item, annotator, seed) always gives the same order."""
    order = list(range(k))
    random.Random(f"{item_id}/{annotator}/{seed}").shuffle(order)  # str seeds hash with SHA-512: process-stable
    return order


def to_candidate_ranking(order: list[int], display_ranking: list[list[int]]) -> list[list[int]]:
    """A ranking of display slots (what the annotator saw) -> the same ranking in candidate indices."""
    return [sorted(order[slot] for slot in group) for group in display_ranking]


def to_display_ranking(order: list[int], ranking: list[list[int]]) -> list[list[int]]:
    slot = {idx: s for s, idx in enumerate(order)}
    return [sorted(slot[idx] for idx in group) for group in ranking]


def _check_set_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME.match(name):
        raise StudioError(f"Task set name '{name}' must be 1-80 letters, digits, spaces, '.', '_' or '-', starting "
                          "with a letter or digit.", field="prefs.task_set", key="prefs.store.bad_name", name=name)
    return name


def _check_k(k: int) -> None:
    if int(k) < 2:
        raise StudioError(f"A task set needs at least 2 candidates per prompt (K is {k}); generate or give 2 to "
                          "6 answers for each prompt so they can be ranked.", field="prefs.k",
                          key="prefs.store.k_too_small", k=k)


def _check_annotator(annotator: str) -> str:
    annotator = (annotator or "").strip()
    if not annotator:
        raise StudioError("The annotator name is empty; sign in or type your name before ranking.",
                          field="prefs.annotator", key="prefs.store.no_annotator")
    return annotator


def _candidates(item: dict[str, Any], number: int, k: int) -> list[dict[str, Any]]:
    """The item's candidates as {text, model, settings}, checked against K (`number` is 1-based, for messages)."""
    prompt = item.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise StudioError(f"Item {number} has no prompt; give every item a non-empty 'prompt'.",
                          field="prefs.items", key="prefs.store.no_prompt", item=number)
    cands = [c if isinstance(c, dict) else {"text": c} for c in item.get("candidates") or []]
    if len(cands) != k:
        raise StudioError(f"Item {number} has {len(cands)} candidates but the task set ranks {k} per prompt; give "
                          f"every item exactly {k} candidates.", field="prefs.items", key="prefs.store.wrong_count",
                          item=number, count=len(cands), k=k)
    for pos, cand in enumerate(cands, start=1):
        if not isinstance(cand.get("text"), str):
            raise StudioError(f"Candidate {pos} of item {number} has no text; every candidate needs a 'text'.",
                              field="prefs.items", key="prefs.store.no_text", item=number, index=pos)
    return cands


class PrefStore:
    """The workspace's ranking task sets and annotations, in `<ws.home>/prefs.db`."""

    def __init__(self, ws, claim_seconds: float = 900.0):
        self.path = Path(ws.home) / "prefs.db"
        self.claim_seconds = claim_seconds
        self._migrate()

    # --- connections ---------------------------------------------------------------------------
    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA foreign_keys=ON")
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _tx(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """One transaction: IMMEDIATE for writes (takes the write lock up front, so no upgrade deadlock),
        DEFERRED for reads that need one consistent snapshot."""
        with self._db() as conn, transaction(conn, mode):
            yield conn

    def _migrate(self) -> None:
        with self._db() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
        with self._tx() as conn:
            apply_migrations(conn, MIGRATIONS)

    def schema_version(self) -> int:
        with self._db() as conn:
            return conn.execute("SELECT version FROM schema_version").fetchone()["version"]

    def _set_row(self, conn: sqlite3.Connection, name: str) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM task_sets WHERE name = ?", ((name or "").strip(),)).fetchone()
        if row is None:
            raise StudioError(f"There is no task set '{name}'; pick one from the list or create it.",
                              field="prefs.task_set", key="prefs.store.no_set", name=name)
        return row

    def _item_row(self, conn: sqlite3.Connection, item_id: int) -> sqlite3.Row:
        row = conn.execute("SELECT i.*, t.k, t.overlap, t.name AS task_set FROM items i "
                           "JOIN task_sets t ON t.id = i.task_set_id WHERE i.id = ?", (item_id,)).fetchone()
        if row is None:
            raise StudioError(f"There is no item {item_id}; reload the page to get the next item.",
                              field="prefs.item", key="prefs.store.no_item", item=item_id)
        return row

    # --- task sets ------------------------------------------------------------------------------
    def create_task_set(self, name: str, items: list[dict[str, Any]] | None = None, k: int | None = None,
                        overlap: int = 1, guidelines: str = "", created_by: str = "", source: str = "") -> dict:
        """A new task set. `items`: [{prompt, system?, candidates: [{text, model?, settings?} or text]}]; K is
        taken from the first item when not given, and every item must have exactly K candidates."""
        name = _check_set_name(name)
        items = list(items or [])
        if k is None:
            if not items:
                raise StudioError("A task set needs its number of candidates per prompt (K) or at least one item; "
                                  "give K or add items.", field="prefs.k", key="prefs.store.no_k")
            k = len(items[0].get("candidates") or [])
        _check_k(k)
        if int(overlap) < 1:
            raise StudioError(f"The overlap (annotators per item) is {overlap}; use 1 or more.",
                              field="prefs.overlap", key="prefs.store.bad_overlap", value=overlap)
        checked = [(item, _candidates(item, n, int(k))) for n, item in enumerate(items, start=1)]
        with self._tx() as conn:
            set_id = self._insert_set(conn, name, int(k), int(overlap), guidelines, created_by, source)
            self._insert_items(conn, set_id, checked)
        return self.task_set(name)

    @staticmethod
    def _insert_set(conn: sqlite3.Connection, name: str, k: int, overlap: int, guidelines: str = "",
                    created_by: str = "", source: str = "") -> int:
        if conn.execute("SELECT 1 FROM task_sets WHERE name = ?", (name,)).fetchone():
            raise StudioError(f"A task set named '{name}' already exists; pick another name or add items to it.",
                              field="prefs.task_set", key="prefs.store.set_exists", name=name)
        return conn.execute(
            "INSERT INTO task_sets (name, guidelines, k, overlap, created_by, created_at, source) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, guidelines or "", k, overlap, created_by or "", time.time(), source or ""),
        ).lastrowid

    def _insert_items(self, conn: sqlite3.Connection, set_id: int, checked: list[tuple[dict, list[dict]]]) -> list[int]:
        start = conn.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM items WHERE task_set_id = ?",
                             (set_id,)).fetchone()[0]
        ids = []
        for pos, (item, cands) in enumerate(checked, start=start):
            item_id = conn.execute("INSERT INTO items (task_set_id, prompt, system, position) VALUES (?, ?, ?, ?)",
                                   (set_id, item["prompt"], item.get("system") or "", pos)).lastrowid
            conn.executemany(
                "INSERT INTO candidates (item_id, idx, text, model, settings_json) VALUES (?, ?, ?, ?, ?)",
                [(item_id, idx, c["text"], c.get("model") or "", json.dumps(c.get("settings") or {}))
                 for idx, c in enumerate(cands)])
            ids.append(item_id)
        return ids

    def add_items(self, name: str, items: list[dict[str, Any]]) -> list[int]:
        """Append items (same shape as `create_task_set`); returns their ids."""
        with self._tx() as conn:
            row = self._set_row(conn, name)
            checked = [(item, _candidates(item, n, row["k"])) for n, item in enumerate(items, start=1)]
            return self._insert_items(conn, row["id"], checked)

    def task_sets(self) -> list[dict[str, Any]]:
        with self._tx("DEFERRED") as conn:
            rows = conn.execute(
                "SELECT t.*, COUNT(i.id) AS items, COALESCE(SUM((SELECT COUNT(*) FROM submissions s "
                "WHERE s.item_id = i.id AND s.status = 'ranked') >= t.overlap), 0) AS complete "
                "FROM task_sets t LEFT JOIN items i ON i.task_set_id = t.id GROUP BY t.id ORDER BY t.created_at"
            ).fetchall()
        return [dict(r) for r in rows]

    def task_set(self, name: str) -> dict[str, Any]:
        with self._tx("DEFERRED") as conn:
            row = dict(self._set_row(conn, name))
            row["items"] = conn.execute("SELECT COUNT(*) FROM items WHERE task_set_id = ?", (row["id"],)).fetchone()[0]
        return row

    def set_guidelines(self, name: str, markdown: str) -> None:
        with self._tx() as conn:
            set_id = self._set_row(conn, name)["id"]
            conn.execute("UPDATE task_sets SET guidelines = ? WHERE id = ?", (markdown or "", set_id))

    # --- annotators -----------------------------------------------------------------------------
    def add_annotator(self, name: str, password: str | None = None, role: str = "annotator") -> dict[str, Any]:
        """An account. Submissions do not require one (with auth off a typed name is enough)."""
        name = _check_annotator(name)
        if role not in ROLES:
            raise StudioError(f"Role '{role}' is not one of {', '.join(ROLES)}; pick admin or annotator.",
                              field="prefs.role", key="prefs.store.bad_role", role=role)
        hashed = hash_password(password) if password else None
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM annotators WHERE name = ?", (name,)).fetchone():
                raise StudioError(f"An annotator named '{name}' already exists; pick another name.",
                                  field="prefs.annotator", key="prefs.store.annotator_exists", name=name)
            conn.execute("INSERT INTO annotators (name, password_hash, role, created_at) VALUES (?, ?, ?, ?)",
                         (name, hashed, role, time.time()))
        return self.annotator(name)

    def annotator(self, name: str) -> dict[str, Any] | None:
        with self._db() as conn:
            row = conn.execute("SELECT name, role, created_at, password_hash IS NOT NULL AS has_password "
                               "FROM annotators WHERE name = ?", ((name or "").strip(),)).fetchone()
        return dict(row) if row else None

    def annotators(self) -> list[dict[str, Any]]:
        with self._db() as conn:
            rows = conn.execute("SELECT name, role, created_at, password_hash IS NOT NULL AS has_password "
                                "FROM annotators ORDER BY name").fetchall()
        return [dict(r) for r in rows]

    def check_password(self, name: str, password: str) -> bool:
        """True only for an account that has a password and this is it (an account without one never logs in)."""
        with self._db() as conn:
            row = conn.execute("SELECT password_hash FROM annotators WHERE name = ?",
                               ((name or "").strip(),)).fetchone()
        if row is None or not row["password_hash"] or not password:
            return False
        return verify_password(password, row["password_hash"])

    # --- annotating -----------------------------------------------------------------------------
    def next_item(self, task_set: str, annotator: str, seed: int = 0) -> dict[str, Any] | None:
        """The item this annotator should rank next (None when nothing is left for them), claimed for them.

        Returns {item_id, task_set, position, prompt, system, k, guidelines, order, candidates, suggestions}:
        `candidates` are the texts in display order, `order[slot]` the candidate index shown in that slot, and
        `suggestions` the AI-judge rankings in display slots. Model names are left out on purpose.
        """
        annotator = _check_annotator(annotator)
        now = time.time()
        cutoff = now - self.claim_seconds
        with self._tx() as conn:
            ts = self._set_row(conn, task_set)
            conn.execute("DELETE FROM claims WHERE claimed_at <= ?", (cutoff,))
            # A live claim of this annotator (a refresh, a second tab) gets the same item back.
            row = conn.execute(
                "SELECT c.item_id FROM claims c JOIN items i ON i.id = c.item_id WHERE i.task_set_id = ? "
                "AND c.annotator = ? ORDER BY c.claimed_at LIMIT 1", (ts["id"], annotator)).fetchone()
            if row is None:
                row = conn.execute(
                    f"SELECT * FROM (SELECT i.id AS item_id, i.position, {_COUNTS} FROM items i "
                    "WHERE i.task_set_id = :ts AND NOT EXISTS (SELECT 1 FROM submissions s "
                    "WHERE s.item_id = i.id AND s.annotator = :who)) WHERE ranked + claimed < :overlap "
                    "ORDER BY ranked + claimed, position LIMIT 1",
                    {"cutoff": cutoff, "ts": ts["id"], "who": annotator, "overlap": ts["overlap"]}).fetchone()
                if row is None:
                    return None
            conn.execute("INSERT OR REPLACE INTO claims (item_id, annotator, claimed_at) VALUES (?, ?, ?)",
                         (row["item_id"], annotator, now))
            item = self._item_row(conn, row["item_id"])
            texts = [r["text"] for r in conn.execute("SELECT text FROM candidates WHERE item_id = ? ORDER BY idx",
                                                     (item["id"],))]
            judged = conn.execute("SELECT judge, ranking_json, rationale FROM suggestions WHERE item_id = ? "
                                  "ORDER BY judge", (item["id"],)).fetchall()
        order = display_order(item["id"], annotator, len(texts), seed)
        return {"item_id": item["id"], "task_set": ts["name"], "position": item["position"],
                "prompt": item["prompt"], "system": item["system"], "k": ts["k"], "guidelines": ts["guidelines"],
                "order": order, "candidates": [texts[idx] for idx in order],
                "suggestions": [{"judge": j["judge"], "rationale": j["rationale"],
                                 "ranking": to_display_ranking(order, json.loads(j["ranking_json"]))} for j in judged]}

    def _answer(self, item_id: int, annotator: str, status: str, ranking: list[list[int]] | None = None,
                reason: str | None = None, rationale: str = "", seconds: float | None = None) -> dict[str, Any]:
        """Store one answer (ranked, skipped or flagged) and release the claim, in one transaction."""
        annotator = _check_annotator(annotator)
        with self._tx() as conn:
            item = self._item_row(conn, item_id)
            ranking_json = json.dumps(validate_ranking(ranking, item["k"])) if status == "ranked" else None
            first = conn.execute("SELECT status FROM submissions WHERE item_id = ? AND annotator = ?",
                                 (item_id, annotator)).fetchone()
            if first is not None:
                raise StudioError(f"'{annotator}' has already answered item {item_id} ({first['status']}); the first "
                                  "answer is kept. Go on to the next item.", field="prefs.item",
                                  key="prefs.store.already_answered", annotator=annotator, item=item_id,
                                  status=first["status"])
            sub_id = conn.execute(
                "INSERT INTO submissions (item_id, annotator, ranking_json, status, flag_reason, rationale, "
                "seconds_spent, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (item_id, annotator, ranking_json, status, reason, rationale or "",
                 None if seconds is None else float(seconds), time.time())).lastrowid
            conn.execute("DELETE FROM claims WHERE item_id = ? AND annotator = ?", (item_id, annotator))
        return {"id": sub_id, "item_id": item_id, "annotator": annotator, "status": status,
                "ranking": json.loads(ranking_json) if ranking_json else None}

    def submit(self, item_id: int, annotator: str, ranking: list[list[int]], rationale: str = "",
               seconds: float | None = None) -> dict[str, Any]:
        """Store a ranking (tie groups of candidate indices, best first); an incomplete one stores nothing."""
        return self._answer(item_id, annotator, "ranked", ranking=ranking, rationale=rationale, seconds=seconds)

    def skip(self, item_id: int, annotator: str, seconds: float | None = None) -> dict[str, Any]:
        return self._answer(item_id, annotator, "skipped", seconds=seconds)

    def flag(self, item_id: int, annotator: str, reason: str, seconds: float | None = None) -> dict[str, Any]:
        if not (reason or "").strip():
            raise StudioError("A flag needs a reason; say what is wrong with this item (e.g. the prompt is unclear).",
                              field="prefs.flag_reason", key="prefs.store.no_reason")
        return self._answer(item_id, annotator, "flagged", reason=reason.strip(), seconds=seconds)

    def add_suggestion(self, item_id: int, judge: str, ranking: list[list[int]], rationale: str = "") -> None:
        """An AI judge's pre-ranking of an item (replaces that judge's earlier one)."""
        with self._tx() as conn:
            item = self._item_row(conn, item_id)
            ranking_json = json.dumps(validate_ranking(ranking, item["k"]))
            conn.execute("INSERT OR REPLACE INTO suggestions (item_id, judge, ranking_json, rationale) "
                         "VALUES (?, ?, ?, ?)", (item_id, judge, ranking_json, rationale or ""))

    # --- reading back ---------------------------------------------------------------------------
    @staticmethod
    def _status(ranked: int, claimed: int, overlap: int) -> str:
        return "complete" if ranked >= overlap else "in_progress" if ranked or claimed else "pending"

    def progress(self, task_set: str) -> dict[str, Any]:
        """Items total / complete (>= overlap rankings) / in progress / pending, and per-annotator counts."""
        with self._tx("DEFERRED") as conn:
            ts = self._set_row(conn, task_set)
            counts = conn.execute(f"SELECT {_COUNTS} FROM items i WHERE i.task_set_id = :ts",
                                  {"ts": ts["id"], "cutoff": time.time() - self.claim_seconds}).fetchall()
            people = conn.execute(
                "SELECT s.annotator, SUM(s.status = 'ranked') AS ranked, SUM(s.status = 'skipped') AS skipped, "
                "SUM(s.status = 'flagged') AS flagged, SUM(s.seconds_spent) AS seconds FROM submissions s "
                "JOIN items i ON i.id = s.item_id WHERE i.task_set_id = ? GROUP BY s.annotator ORDER BY s.annotator",
                (ts["id"],)).fetchall()
        states = [self._status(c["ranked"], c["claimed"], ts["overlap"]) for c in counts]
        return {"task_set": ts["name"], "k": ts["k"], "overlap": ts["overlap"], "items": len(states),
                "complete": states.count("complete"), "in_progress": states.count("in_progress"),
                "pending": states.count("pending"), "rankings": sum(c["ranked"] for c in counts),
                "annotators": [dict(p) for p in people]}

    def rankings(self, task_set: str) -> list[dict[str, Any]]:
        """Per item: prompt, system, candidate texts and models, every (annotator, ranking), flags, status."""
        with self._tx("DEFERRED") as conn:
            ts = self._set_row(conn, task_set)
            items = conn.execute(f"SELECT i.*, {_COUNTS} FROM items i WHERE i.task_set_id = :ts ORDER BY i.position",
                                 {"ts": ts["id"], "cutoff": time.time() - self.claim_seconds}).fetchall()
            cands = conn.execute("SELECT c.* FROM candidates c JOIN items i ON i.id = c.item_id "
                                 "WHERE i.task_set_id = ? ORDER BY c.item_id, c.idx", (ts["id"],)).fetchall()
            subs = conn.execute("SELECT s.* FROM submissions s JOIN items i ON i.id = s.item_id "
                                "WHERE i.task_set_id = ? ORDER BY s.id", (ts["id"],)).fetchall()
        out = {i["id"]: {"item_id": i["id"], "position": i["position"], "prompt": i["prompt"], "system": i["system"],
                         "candidates": [], "models": [], "rankings": [], "flags": [], "skipped": 0,
                         "status": self._status(i["ranked"], i["claimed"], ts["overlap"])} for i in items}
        for c in cands:
            out[c["item_id"]]["candidates"].append(c["text"])
            out[c["item_id"]]["models"].append(c["model"])
        for s in subs:
            item = out[s["item_id"]]
            if s["status"] == "ranked":
                item["rankings"].append({"annotator": s["annotator"], "ranking": json.loads(s["ranking_json"]),
                                         "rationale": s["rationale"], "seconds": s["seconds_spent"]})
            elif s["status"] == "flagged":
                item["flags"].append({"annotator": s["annotator"], "reason": s["flag_reason"]})
            else:
                item["skipped"] += 1
        return list(out.values())

    # --- rankings collected elsewhere -----------------------------------------------------------
    def import_rankings(self, task_set: str, parsed_items: list[dict[str, Any]], source: str | Path = "import",
                        created_by: str = "") -> dict[str, Any]:
        """Store rankings made elsewhere ({prompt, system?, candidates: [texts], ranking: tie groups of indices})
        as submissions of annotator `import:<file stem>`, all or nothing. The task set is created (K from the
        first item, overlap 1) when missing; an item with the same prompt and candidate texts as one already in
        the set gets the ranking instead of a copy. Importing the same file again stores nothing new."""
        annotator = f"import:{Path(str(source)).stem}"
        if not parsed_items:
            raise StudioError(f"'{source}' has no rankings to import; write one JSON object per line.",
                              field="prefs.import", key="prefs.store.import_empty", file=str(source))
        report = {"task_set": task_set, "annotator": annotator, "items_added": 0, "items_matched": 0,
                  "stored": 0, "already": 0}
        with self._tx() as conn:
            ts = conn.execute("SELECT * FROM task_sets WHERE name = ?", ((task_set or "").strip(),)).fetchone()
            k = ts["k"] if ts else len(parsed_items[0].get("candidates") or [])
            _check_k(k)
            checked = []
            for n, item in enumerate(parsed_items, start=1):
                cands = _candidates(item, n, k)
                checked.append((item, cands, validate_ranking(item.get("ranking") or [], k)))
            if ts is None:
                set_id = self._insert_set(conn, _check_set_name(task_set), k, 1, created_by=created_by,
                                          source=f"imported from {Path(str(source)).name}")
            else:
                set_id = ts["id"]
            stored_texts: dict[int, list[str]] = {}
            for c in conn.execute("SELECT c.item_id, c.text FROM candidates c JOIN items i ON i.id = c.item_id "
                                  "WHERE i.task_set_id = ? ORDER BY c.item_id, c.idx", (set_id,)):
                stored_texts.setdefault(c["item_id"], []).append(c["text"])
            known: dict[tuple, int] = {}
            for row in conn.execute("SELECT id, prompt, system FROM items WHERE task_set_id = ? ORDER BY position",
                                    (set_id,)):
                known.setdefault(self._match_key(row["prompt"], row["system"], stored_texts[row["id"]]), row["id"])
            for item, cands, ranking in checked:
                texts = [c["text"] for c in cands]
                key = self._match_key(item["prompt"], item.get("system") or "", texts)
                item_id = known.get(key)
                if item_id is None:
                    item_id = known[key] = self._insert_items(conn, set_id, [(item, cands)])[0]
                    stored_texts[item_id] = texts
                    report["items_added"] += 1
                else:
                    if len(set(texts)) == len(texts):  # same texts, maybe another order: remap by text
                        where = {text: idx for idx, text in enumerate(stored_texts[item_id])}
                        ranking = [sorted(where[texts[i]] for i in group) for group in ranking]
                    report["items_matched"] += 1
                if conn.execute("SELECT 1 FROM submissions WHERE item_id = ? AND annotator = ?",
                                (item_id, annotator)).fetchone():
                    report["already"] += 1
                    continue
                conn.execute("INSERT INTO submissions (item_id, annotator, ranking_json, status, created_at) "
                             "VALUES (?, ?, ?, 'ranked', ?)", (item_id, annotator, json.dumps(ranking), time.time()))
                report["stored"] += 1
        return report

    @staticmethod
    def _match_key(prompt: str, system: str, texts: list[str]) -> tuple:
        # Distinct texts match in any order (remapped by text); repeated texts only in the same order.
        return (prompt, system or "", tuple(sorted(texts)) if len(set(texts)) == len(texts) else ("=", *texts))
