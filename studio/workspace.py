"""The workspace: where a studio keeps its runs, datasets, model cache and SQLite store.

`STUDIO_HOME` (default `./workspace`) holds `studio.db` (SQLite in WAL mode, schema versioned by
the `schema_version` table and upgraded by the ordered `MIGRATIONS` list), `runs/<run_id>/`
(the run-directory contract: recipe.yaml, metrics.jsonl, train.log, checkpoints/, adapter/ or
model/), `datasets/` and `models/` (converted embedded weights). Each call opens its own short
connection, so threads and processes (the app, its workers, a CLI) can share one store; run ids and dataset
versions are claimed in SQLite before anything is written, so concurrent writers never pick the same one.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from studio.sqlite_schema import apply_migrations

# Each entry upgrades the schema by one version; never edit a released entry, append a new one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        model TEXT NOT NULL,
        stage TEXT NOT NULL,
        method TEXT NOT NULL,
        dataset TEXT NOT NULL,
        status TEXT NOT NULL,
        run_dir TEXT NOT NULL,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        pid INTEGER,
        step INTEGER DEFAULT 0,
        total_steps INTEGER,
        final_loss REAL,
        error TEXT,
        result_dir TEXT
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        resume_from TEXT,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        pid INTEGER,
        error TEXT
    );
    CREATE TABLE datasets (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        path TEXT NOT NULL,
        format TEXT NOT NULL,
        rows INTEGER NOT NULL,
        card TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        PRIMARY KEY (name, version)
    );
    """,
    # Writers claim a dataset version / run id here first, so concurrent writers never pick the same one
    # (`studio.data.versions`, `Workspace.new_run_id`).
    """
    CREATE TABLE dataset_reservations (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        tmp TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE run_id_reservations (
        id TEXT PRIMARY KEY,
        created_at REAL NOT NULL
    );
    """,
    # Every kind of background work is a job (`studio.jobs.records`): run_id only for training; what a person
    # sees (title, phase, progress), who asked (owner), which app process watches it (app_pid), and its
    # request and result as JSON.
    """
    CREATE TABLE jobs_v3 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT REFERENCES runs(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        resume_from TEXT,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        pid INTEGER,
        error TEXT,
        title TEXT,
        phase TEXT,
        progress REAL,
        owner TEXT,
        app_pid INTEGER,
        params TEXT,
        result TEXT
    );
    INSERT INTO jobs_v3 (id, run_id, kind, status, resume_from, created_at, started_at, finished_at, pid, error)
        SELECT id, run_id, kind, status, resume_from, created_at, started_at, finished_at, pid, error FROM jobs;
    DROP TABLE jobs;
    ALTER TABLE jobs_v3 RENAME TO jobs;
    CREATE INDEX jobs_by_kind_status ON jobs (kind, status);
    """,
    # An ended job's error as a key and its values too, so each page words it in its own language.
    """
    ALTER TABLE jobs ADD COLUMN error_key TEXT;
    ALTER TABLE jobs ADD COLUMN error_params TEXT;
    """,
    # A job's phase as a key and its values too (studio.phase), for the same reason.
    """
    ALTER TABLE jobs ADD COLUMN phase_key TEXT;
    ALTER TABLE jobs ADD COLUMN phase_params TEXT;
    """,
    # The devices a running training job holds ("0,1", or "cpu"): the queue runs jobs side by side on free ones.
    """
    ALTER TABLE jobs ADD COLUMN devices TEXT;
    """,
]

RUN_STATES = ("queued", "running", "cancelling", "completed", "failed", "cancelled", "interrupted")
ACTIVE_STATES = ("queued", "running", "cancelling")


def default_home() -> Path:
    return Path(os.environ.get("STUDIO_HOME", "workspace")).resolve()


@dataclass
class Workspace:
    home: Path

    @classmethod
    def open(cls, home: str | Path | None = None) -> "Workspace":
        ws = cls(Path(home).resolve() if home else default_home())
        for sub in ("runs", "datasets", "models", "logs"):
            (ws.home / sub).mkdir(parents=True, exist_ok=True)
        ws.migrate()
        return ws

    @property
    def db_path(self) -> Path:
        return self.home / "studio.db"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        try:
            yield conn
        finally:
            conn.close()

    def schema_version(self) -> int:
        with self.db() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            return row["version"] if row else 0

    def migrate(self) -> None:
        """Bring an older (or new, empty) store up to the latest schema, one version at a time."""
        with self.db() as conn:
            conn.execute("BEGIN IMMEDIATE")
            apply_migrations(conn, MIGRATIONS)
            conn.execute("COMMIT")

    # --- runs -------------------------------------------------------------------------------
    def new_run_id(self, name: str) -> str:
        """A run id no other caller (thread or process) gets: `<time>-<slug>-<4 hex>`, claimed in SQLite.

        Ids carry the second they were made, so only claims younger than a day need keeping to stay unique.
        """
        slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in name.lower()).strip("-")[:40] or "run"
        now = time.time()
        with self.db() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM run_id_reservations WHERE created_at < ?", (now - 86400,))
                while True:
                    run_id = f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}-{slug}-{uuid.uuid4().hex[:4]}"
                    taken = conn.execute("SELECT 1 FROM run_id_reservations WHERE id = ? UNION ALL "
                                         "SELECT 1 FROM runs WHERE id = ?", (run_id, run_id)).fetchone()
                    if not taken and not (self.runs_dir / run_id).exists() \
                            and not (self.runs_dir / f".{run_id}.tmp").exists():
                        break
                conn.execute("INSERT INTO run_id_reservations (id, created_at) VALUES (?, ?)", (run_id, now))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return run_id

    def insert_run(self, run: dict[str, Any]) -> None:
        cols = ", ".join(run)
        marks = ", ".join("?" for _ in run)
        with self.db() as conn:
            conn.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", tuple(run.values()))

    def update_run(self, run_id: str, **values: Any) -> None:
        if not values:
            return
        sets = ", ".join(f"{k} = ?" for k in values)
        with self.db() as conn:
            conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*values.values(), run_id))

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        with self.db() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return dict(row) if row else None

    def list_runs(self) -> list[dict[str, Any]]:
        with self.db() as conn:
            rows = conn.execute("SELECT * FROM runs ORDER BY created_at DESC").fetchall()
        return [dict(r) for r in rows]

    def delete_run_row(self, run_id: str) -> None:
        with self.db() as conn:
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    # --- jobs -------------------------------------------------------------------------------
    def insert_job(self, run_id: str, kind: str, resume_from: str | None = None) -> int:
        with self.db() as conn:
            cur = conn.execute(
                "INSERT INTO jobs (run_id, kind, status, resume_from, created_at) VALUES (?, ?, 'queued', ?, ?)",
                (run_id, kind, resume_from, time.time()),
            )
            return int(cur.lastrowid)

    def update_job(self, job_id: int, **values: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in values)
        with self.db() as conn:
            conn.execute(f"UPDATE jobs SET {sets} WHERE id = ?", (*values.values(), job_id))

    def jobs(self, status: tuple[str, ...] | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        where, args = [], []
        if status:
            where.append(f"status IN ({', '.join('?' for _ in status)})")
            args += list(status)
        if kind:
            where.append("kind = ?")
            args.append(kind)
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        with self.db() as conn:
            return [dict(r) for r in conn.execute(sql, args).fetchall()]


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """All events of a run's metrics.jsonl (a torn last line from a crash is skipped)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events
