"""The preference store's SQLite schema (`<workspace>/prefs.db`), one script per version, oldest first.

Append a script to change it; never edit one that has shipped (`studio.sqlite_schema.apply_migrations`).
"""
from __future__ import annotations

MIGRATIONS: list[str] = [
    """
    CREATE TABLE task_sets (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        guidelines TEXT NOT NULL DEFAULT '',
        k INTEGER NOT NULL CHECK (k >= 2),
        overlap INTEGER NOT NULL CHECK (overlap >= 1),
        created_by TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        source TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_set_id INTEGER NOT NULL REFERENCES task_sets(id) ON DELETE CASCADE,
        prompt TEXT NOT NULL,
        system TEXT NOT NULL DEFAULT '',
        position INTEGER NOT NULL,
        UNIQUE (task_set_id, position)
    );
    CREATE TABLE candidates (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        text TEXT NOT NULL,
        model TEXT NOT NULL DEFAULT '',
        settings_json TEXT NOT NULL DEFAULT '{}',
        UNIQUE (item_id, idx)
    );
    CREATE TABLE annotators (
        name TEXT PRIMARY KEY,
        password_hash TEXT,
        role TEXT NOT NULL CHECK (role IN ('admin', 'annotator')),
        created_at REAL NOT NULL
    );
    CREATE TABLE submissions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
        annotator TEXT NOT NULL,
        ranking_json TEXT,
        status TEXT NOT NULL CHECK (status IN ('ranked', 'skipped', 'flagged')),
        flag_reason TEXT,
        rationale TEXT NOT NULL DEFAULT '',
        seconds_spent REAL,
        created_at REAL NOT NULL,
        UNIQUE (item_id, annotator)
    );
    CREATE INDEX submissions_by_item ON submissions (item_id, status);
    CREATE TABLE suggestions (
        item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
        judge TEXT NOT NULL,
        ranking_json TEXT NOT NULL,
        rationale TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (item_id, judge)
    );
    CREATE TABLE claims (
        item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
        annotator TEXT NOT NULL,
        claimed_at REAL NOT NULL,
        PRIMARY KEY (item_id, annotator)
    );
    """,
    # 2: the arena (studio.prefs.service): duels shown but not voted yet, and the votes, answers included
    """
    CREATE TABLE arena_duels (
        id TEXT PRIMARY KEY,
        prompt TEXT NOT NULL,
        system TEXT NOT NULL DEFAULT '',
        model_1 TEXT NOT NULL,
        model_2 TEXT NOT NULL,
        answer_1 TEXT NOT NULL,
        answer_2 TEXT NOT NULL,
        settings_json TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL
    );
    CREATE TABLE arena_votes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        prompt TEXT NOT NULL,
        system TEXT NOT NULL DEFAULT '',
        model_a TEXT NOT NULL,
        model_b TEXT NOT NULL,
        answer_a TEXT NOT NULL,
        answer_b TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('a', 'b', 'tie', 'both_bad')),
        voter TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL
    );
    """,
]
