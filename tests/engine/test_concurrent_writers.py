"""Writers under concurrency: dataset imports, run ids and saved templates started together in real processes.

Writers are lined up on a `multiprocessing` barrier (spawned processes, like separate `studio` commands) so they
race for the same version number or id; nothing here sleeps or measures time. Readers must then see every
intact version, and a failed or killed writer must leave nothing behind.
"""
from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import shutil
import threading
from pathlib import Path

import pytest

from studio.cli import main
from studio.errors import StudioError

WRITERS = 8
ROWS = 10
START_LINE_TIMEOUT = 600  # only so a broken writer cannot hang the suite; never expected to be reached


def _rows_file(folder: Path, writer: int) -> Path:
    path = folder / f"file{writer}.jsonl"
    path.write_text("".join(json.dumps({"instruction": f"w{writer}-q{i}", "output": f"w{writer}-a{i}"}) + "\n"
                            for i in range(ROWS)), encoding="utf-8")
    return path


def _import_in_a_process(home: str, source: str, name: str, out: str, barrier) -> None:
    """`studio data import SOURCE --name NAME --json` in this process, once every writer is at the barrier."""
    os.environ["STUDIO_HOME"] = home
    import studio.data.builder  # noqa: F401  (imports are paid for before the start line)
    from studio.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    barrier.wait(START_LINE_TIMEOUT)
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = main(["data", "import", source, "--name", name, "--split", "0.8,0.2", "--json"])
    Path(out).write_text(json.dumps({"rc": rc, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}))


def _run_processes(target, args_per_process: list[tuple]) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(args_per_process))
    procs = [ctx.Process(target=target, args=(*args, barrier)) for args in args_per_process]
    for p in procs:
        p.start()
    for p in procs:
        p.join(START_LINE_TIMEOUT)
    assert [p.exitcode for p in procs] == [0] * len(procs)


def _all_rows(ws, name: str, version: int) -> list[dict]:
    from studio.data.builder import SPLITS, load_split

    return [r for split in SPLITS for r in load_split(ws, name, split, version)]


def _reservations(ws) -> list:
    with ws.db() as conn:
        return conn.execute("SELECT * FROM dataset_reservations").fetchall()


def test_concurrent_imports_into_one_name_give_one_intact_version_each(workspace, tmp_path):
    from studio.data.builder import list_datasets

    sources = [_rows_file(tmp_path, i) for i in range(WRITERS)]
    outs = [tmp_path / f"out{i}.json" for i in range(WRITERS)]
    _run_processes(_import_in_a_process,
                   [(str(workspace.home), str(src), "shared", str(out)) for src, out in zip(sources, outs)])

    results = [json.loads(out.read_text()) for out in outs]
    assert [r["rc"] for r in results] == [0] * WRITERS, [r["stderr"] for r in results]
    version_of = {json.loads(r["stdout"])["version"]: writer for writer, r in enumerate(results)}
    assert sorted(version_of) == list(range(1, WRITERS + 1))
    for version, writer in version_of.items():
        rows = _all_rows(workspace, "shared", version)
        assert sorted(r["instruction"] for r in rows) == sorted(f"w{writer}-q{i}" for i in range(ROWS))
    [listed] = list_datasets(workspace)
    assert (listed["name"], listed["version"], listed["versions"]) == ("shared", WRITERS, WRITERS)
    assert sorted(p.name for p in (workspace.datasets_dir / "shared").iterdir()) == sorted(
        f"v{k}" for k in range(1, WRITERS + 1))
    assert _reservations(workspace) == []


def test_a_failed_import_leaves_no_folder_and_no_row(workspace, tmp_path, monkeypatch, capsys):
    import studio.data.builder as builder

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "output": ""}\n{"instruction": "b", "output": " "}\n', encoding="utf-8")
    assert main(["data", "import", str(bad), "--name", "fresh"]) == 1
    assert "Cleaning removed every row of 'bad.jsonl'" in capsys.readouterr().err
    assert not (workspace.datasets_dir / "fresh").exists()

    good = _rows_file(tmp_path, 0)
    assert main(["data", "import", str(good), "--name", "kept"]) == 0

    def disk_full(records, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(builder, "_write_parquet", disk_full)
    for name in ("kept", "fresh"):
        with pytest.raises(OSError, match="No space left"):
            builder.import_dataset(workspace, builder.ImportRequest(source=str(good), name=name))
    assert not (workspace.datasets_dir / "fresh").exists()
    assert [p.name for p in (workspace.datasets_dir / "kept").iterdir()] == ["v1"]
    assert [p.name for p in workspace.datasets_dir.iterdir()] == ["kept"]
    with workspace.db() as conn:
        assert [tuple(r) for r in conn.execute("SELECT name, version FROM datasets")] == [("kept", 1)]
    assert _reservations(workspace) == []


def _die_after_renaming(home: str, source: str, barrier) -> None:
    """An import killed between renaming its folder to v<k> and storing its row."""
    os.environ["STUDIO_HOME"] = home
    import studio.data.builder as builder
    from studio.workspace import Workspace

    def rename_then_die(ws, slot, *args):
        os.rename(slot.tmp, slot.final)
        os._exit(0)

    builder.publish = rename_then_die
    barrier.wait(START_LINE_TIMEOUT)
    builder.import_dataset(Workspace.open(), builder.ImportRequest(source=source, name="orphan"))


def test_a_killed_import_is_invisible_and_cleared_by_the_next_writer(workspace, tmp_path):
    from studio.data.builder import ImportRequest, dataset_dir, import_dataset, list_datasets

    source = _rows_file(tmp_path, 0)
    _run_processes(_die_after_renaming, [(str(workspace.home), str(source))])
    assert (workspace.datasets_dir / "orphan" / "v1" / "card.json").exists()  # on disk, but never published
    assert list_datasets(workspace) == []
    with pytest.raises(StudioError, match="no studio dataset 'orphan'"):
        dataset_dir(workspace, "orphan")

    result = import_dataset(workspace, ImportRequest(source=str(_rows_file(tmp_path, 1)), name="orphan"))
    assert result.version == 1
    assert {r["instruction"][:2] for r in _all_rows(workspace, "orphan", 1)} == {"w1"}
    assert [p.name for p in workspace.datasets_dir.iterdir()] == ["orphan"]  # no trash left behind
    assert [p.name for p in (workspace.datasets_dir / "orphan").iterdir()] == ["v1"]
    assert _reservations(workspace) == []


def test_list_and_readers_skip_a_broken_newest_version(workspace, tmp_path, capsys):
    from studio.data.builder import dataset_card, dataset_dir, list_datasets, load_split

    for writer in range(3):
        assert main(["data", "import", str(_rows_file(tmp_path, writer)), "--name", "notes"]) == 0
    shutil.rmtree(workspace.datasets_dir / "notes" / "v3")
    (workspace.datasets_dir / "notes" / "v2" / "card.json").unlink()
    capsys.readouterr()

    assert main(["data", "list"]) == 0
    assert capsys.readouterr().out.split()[:2] == ["notes", "v1"]
    [listed] = list_datasets(workspace)
    assert (listed["version"], listed["versions"]) == (1, 1)
    assert dataset_card(workspace, "notes")["version"] == 1
    assert {r["instruction"][:2] for r in load_split(workspace, "notes")} == {"w0"}
    for version in (2, 3):
        with pytest.raises(StudioError) as info:
            dataset_dir(workspace, "notes", version)
        assert info.value.key == "data.versions.broken_version" and info.value.params["version"] == version
    shutil.rmtree(workspace.datasets_dir / "notes" / "v1")
    with pytest.raises(StudioError, match="Every version of dataset 'notes' is damaged"):
        load_split(workspace, "notes")


def test_export_of_an_empty_or_missing_split_fails_and_says_so(workspace, tmp_path, capsys):
    source = _rows_file(tmp_path, 0)
    assert main(["data", "import", str(source), "--name", "notes", "--split", "0.8,0.2"]) == 0
    capsys.readouterr()

    out = tmp_path / "out" / "test.jsonl"
    assert main(["data", "export", "notes", str(out), "--split", "test"]) == 1
    assert "test split of dataset 'notes' version 1 has no rows" in capsys.readouterr().err
    assert not out.exists()

    (workspace.datasets_dir / "notes" / "v1" / "validation.parquet").unlink()
    assert main(["data", "export", "notes", str(out), "--split", "validation"]) == 1
    assert "validation split of dataset 'notes' version 1 is missing" in capsys.readouterr().err
    assert not out.exists()


def _new_run_ids_in_a_process(home: str, out: str, barrier) -> None:
    """Three run ids for one recipe name, drawn in the same second from only 16 random suffixes."""
    import random
    import uuid

    import studio.workspace as workspace_module

    workspace_module.time.strftime = lambda fmt, *when: "20260101-120000"
    workspace_module.uuid.uuid4 = lambda: uuid.UUID(int=random.randrange(16) << 124)
    ws = workspace_module.Workspace.open(home)
    barrier.wait(START_LINE_TIMEOUT)
    Path(out).write_text(json.dumps([ws.new_run_id("same recipe") for _ in range(3)]))


def test_concurrent_run_ids_never_collide(workspace, tmp_path):
    outs = [tmp_path / f"ids{i}.json" for i in range(4)]
    _run_processes(_new_run_ids_in_a_process, [(str(workspace.home), str(out)) for out in outs])
    ids = [run_id for out in outs for run_id in json.loads(out.read_text())]
    assert len(ids) == 12 and len(set(ids)) == 12


def test_concurrent_saves_of_one_template_leave_it_whole(workspace):
    from studio.data.template_store import list_templates, load_template, save_template

    barrier, errors = threading.Barrier(WRITERS), []

    def save(writer: int) -> None:
        barrier.wait(START_LINE_TIMEOUT)
        try:
            for round_ in range(20):
                save_template(workspace, "shared", f"Writer {writer} round {round_}: {{{{ instruction }}}}")
        except Exception as exc:  # collected, so the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert load_template(workspace, "shared").prompt.startswith("Writer ")
    assert [t.name for t in list_templates(workspace)] == ["shared"]
    assert [p.name for p in (workspace.home / "templates").iterdir()] == ["shared.json"]


def test_a_workspace_from_before_reservations_upgrades_and_keeps_its_datasets(tmp_path, monkeypatch):
    import sqlite3

    from studio.data.builder import ImportRequest, import_dataset, list_datasets, load_split
    from studio.sqlite_schema import apply_migrations
    from studio.workspace import MIGRATIONS, Workspace

    home = tmp_path / "old-home"
    monkeypatch.setenv("STUDIO_HOME", str(home))
    import_dataset(Workspace.open(home), ImportRequest(source=str(_rows_file(tmp_path, 0)), name="notes"))
    # Rebuild the store as the first schema had it, holding the same row.
    with Workspace(home).db() as conn:
        row = dict(conn.execute("SELECT * FROM datasets").fetchone())
    (home / "studio.db").unlink()
    with contextlib.closing(sqlite3.connect(home / "studio.db", isolation_level=None)) as conn:
        apply_migrations(conn, MIGRATIONS[:1])
        conn.execute(f"INSERT INTO datasets ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                     tuple(row.values()))

    ws = Workspace.open(home)
    assert ws.schema_version() == len(MIGRATIONS)
    assert [(d["name"], d["version"]) for d in list_datasets(ws)] == [("notes", 1)]
    assert len(load_split(ws, "notes")) + len(load_split(ws, "notes", "validation")) == ROWS
    assert import_dataset(ws, ImportRequest(source=str(_rows_file(tmp_path, 1)), name="notes")).version == 2
    assert _reservations(ws) == []


def test_two_evaluations_saved_in_the_same_second_keep_both(workspace, monkeypatch):
    from studio import evaluation

    monkeypatch.setattr(evaluation.time, "strftime", lambda fmt, *a: "20261205-101010")
    first = evaluation._save(workspace, {"n": 1}, [])
    second = evaluation._save(workspace, {"n": 2}, [])
    assert first != second
    assert [json.loads(Path(p).read_text())["n"] for p in (first, second)] == [1, 2]


def test_concurrent_preference_exports_of_one_name_never_tear_a_file(workspace):
    from studio.prefs.export import save_rows

    errors, barrier = [], threading.Barrier(4)

    def export(n: int) -> None:
        rows = [{"prompt": f"p{n}-{i}", "chosen": "good " * 50, "rejected": "bad " * 50} for i in range(200)]
        barrier.wait()
        try:
            save_rows(workspace, "pairs", rows)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=export, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    lines = (workspace.home / "prefs" / "exports" / "pairs.jsonl").read_text().splitlines()
    assert len(lines) == 200 and len({json.loads(line)["prompt"].split("-")[0] for line in lines}) == 1
