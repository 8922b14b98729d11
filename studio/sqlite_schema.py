"""Versioned SQLite schemas: one `schema_version` row and an ordered list of migration scripts.

Both of the studio's SQLite files (`studio.db` of the workspace, `prefs.db` of the preference store) grow by
appending a script to their `MIGRATIONS` list; `apply_migrations` runs, inside the caller's transaction, the
scripts the file has not seen yet and records how far it got. `transaction` is the one way both run a
block of statements atomically.
"""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def transaction(conn: sqlite3.Connection, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
    """BEGIN `mode` ... COMMIT, ROLLBACK on any error. IMMEDIATE takes the write lock up front (no upgrade
    deadlock between writers); DEFERRED suits reads that need one consistent snapshot."""
    conn.execute(f"BEGIN {mode}")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def apply_migrations(conn: sqlite3.Connection, migrations: list[str]) -> None:
    """Bring the database on `conn` up to `len(migrations)`, one script at a time (call it inside a transaction)."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    current = row[0] if row else 0
    if row is None:
        conn.execute("INSERT INTO schema_version (version) VALUES (0)")
    for version, script in enumerate(migrations[current:], start=current + 1):
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("UPDATE schema_version SET version = ?", (version,))
