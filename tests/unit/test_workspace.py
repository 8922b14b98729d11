"""The SQLite store: WAL mode, versioned schema, upgrades of older stores."""
import sqlite3

from studio.workspace import MIGRATIONS, Workspace


def test_new_workspace_is_at_the_latest_schema_in_wal_mode(tmp_path):
    ws = Workspace.open(tmp_path / "home")
    assert ws.schema_version() == len(MIGRATIONS)
    with ws.db() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for sub in ("runs", "datasets", "models"):
        assert (ws.home / sub).is_dir()


def test_reopening_keeps_data_and_does_not_rerun_migrations(tmp_path):
    ws = Workspace.open(tmp_path / "home")
    ws.insert_run({"id": "r1", "name": "n", "model": "m", "stage": "sft", "method": "lora", "dataset": "d",
                   "status": "completed", "run_dir": "/x", "created_at": 1.0})
    again = Workspace.open(tmp_path / "home")
    assert again.get_run("r1")["name"] == "n"
    assert again.schema_version() == len(MIGRATIONS)


def test_an_older_store_is_upgraded_step_by_step(tmp_path, monkeypatch):
    home = tmp_path / "home"
    Workspace.open(home)
    # Pretend a later release adds a column: the old store must gain it and keep its rows.
    monkeypatch.setattr("studio.workspace.MIGRATIONS", MIGRATIONS + ["ALTER TABLE runs ADD COLUMN notes TEXT"])
    ws = Workspace.open(home)
    assert ws.schema_version() == len(MIGRATIONS) + 1
    with sqlite3.connect(ws.db_path) as conn:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(runs)")]
    assert "notes" in cols
