"""Dataset versions on disk and in SQLite: how a writer claims `datasets/<name>/v<k>/`, and which versions readers see.

A writer first reserves its version number: one `BEGIN IMMEDIATE` transaction takes the next number above every
stored version, every reserved one and every `v<k>` folder already on disk, and records it in
`dataset_reservations`, so two writers (threads or processes) never get the same number. It writes into a temp
folder only it uses (`.v<k>.tmp-<pid>-<token>`), renames that to `v<k>` (nobody else can write there) and then, in
one transaction, inserts the `datasets` row and drops its reservation. A writer that fails removes its folders,
its reservation and the name folder when nothing else is in it; one that was killed leaves a reservation whose
process is gone, which the next writer clears. Readers only look at `datasets` rows and skip versions whose folder
or card is gone (`dataset_dir`, `list_datasets`), so a broken newest version never hides the intact ones.
What a version contains (Parquet splits and `card.json`) is `builder`'s business.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Iterator

from studio.errors import StudioError
from studio.sqlite_schema import transaction

log = logging.getLogger(__name__)


@dataclass
class VersionSlot:
    """A reserved version number and the folders that go with it."""

    name: str
    version: int
    tmp: Path  # where the writer writes; only this writer uses it
    final: Path  # `datasets/<name>/v<version>`, reserved for this writer
    renamed: bool = False
    published: bool = False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return True


def _drop_name_dir_if_unused(conn, name_dir: Path, name: str) -> None:
    """Remove an empty `datasets/<name>/` that no stored or reserved version refers to (call inside the lock)."""
    used = conn.execute("SELECT 1 FROM datasets WHERE name = ? UNION ALL "
                        "SELECT 1 FROM dataset_reservations WHERE name = ? LIMIT 1", (name, name)).fetchone()
    if used is None:
        try:
            name_dir.rmdir()
        except OSError:
            pass  # not empty (files someone put there) or already gone


def _clear_dead_writers(conn, datasets_dir: Path) -> list[Path]:
    """Drop reservations of writers on this host whose process is gone; returns folders moved aside to delete."""
    host, trash = socket.gethostname(), []
    for r in conn.execute("SELECT * FROM dataset_reservations").fetchall():
        if r["host"] != host or _alive(r["pid"]):
            continue
        name_dir = datasets_dir / r["name"]
        # v<k> is the dead writer's too: no row was stored for it (storing the row drops the reservation).
        for folder in (Path(r["tmp"]), name_dir / f"v{r['version']}"):
            aside = datasets_dir / f".trash-{secrets.token_hex(6)}"
            try:
                folder.rename(aside)  # instant, so the lock is not held while a big folder is deleted
            except OSError:
                continue  # gone already; a v<k> left in place is skipped by the next reservation
            trash.append(aside)
        conn.execute("DELETE FROM dataset_reservations WHERE name = ? AND version = ?", (r["name"], r["version"]))
        _drop_name_dir_if_unused(conn, name_dir, r["name"])
    return trash


def _reserve(ws, name: str) -> VersionSlot:
    datasets_dir = Path(ws.datasets_dir)
    name_dir = datasets_dir / name
    with ws.db() as conn, transaction(conn):
        trash = _clear_dead_writers(conn, datasets_dir)
        row = conn.execute("SELECT MAX(v) AS v FROM (SELECT MAX(version) AS v FROM datasets WHERE name = ? "
                           "UNION ALL SELECT MAX(version) FROM dataset_reservations WHERE name = ?)",
                           (name, name)).fetchone()
        version = (row["v"] or 0) + 1
        while (name_dir / f"v{version}").exists():  # a folder no row knows of: never write over it
            version += 1
        tmp = name_dir / f".v{version}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        conn.execute("INSERT INTO dataset_reservations (name, version, pid, host, tmp, created_at) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (name, version, os.getpid(), socket.gethostname(), str(tmp),
                                                   time.time()))
        # Made under the lock, so a failing writer's cleanup cannot remove the name folder in between.
        tmp.mkdir(parents=True)
    for folder in trash:
        shutil.rmtree(folder, ignore_errors=True)
    return VersionSlot(name, version, tmp, name_dir / f"v{version}")


def _release(ws, slot: VersionSlot) -> None:
    """Undo a reservation that will not be published: its folders, its row, an unused name folder."""
    shutil.rmtree(slot.tmp, ignore_errors=True)
    if slot.renamed:
        shutil.rmtree(slot.final, ignore_errors=True)
    try:
        with ws.db() as conn, transaction(conn):
            conn.execute("DELETE FROM dataset_reservations WHERE name = ? AND version = ?", (slot.name, slot.version))
            _drop_name_dir_if_unused(conn, slot.final.parent, slot.name)
    except Exception:  # the writer's own error matters more; a dead reservation is cleared by the next writer
        log.exception("could not release the reservation of %s v%d", slot.name, slot.version)


@contextmanager
def new_version(ws, name: str) -> Iterator[VersionSlot]:
    """Reserve the next version of `name`; the body writes into `slot.tmp` and ends with `publish`.

    Leaving the body without publishing (an error, a cancel, Ctrl-C) leaves nothing behind.
    """
    slot = _reserve(ws, name)
    try:
        yield slot
    finally:
        if not slot.published:
            _release(ws, slot)


def publish(ws, slot: VersionSlot, fmt: str, rows: int, card: dict, created_at: float) -> None:
    """Rename the finished temp folder to `v<k>` and store its row; from here on readers see it."""
    os.rename(slot.tmp, slot.final)
    slot.renamed = True
    with ws.db() as conn, transaction(conn):
        conn.execute("INSERT INTO datasets (name, version, path, format, rows, card, created_at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (slot.name, slot.version, str(slot.final), fmt, rows, json.dumps(card), created_at))
        gone = conn.execute("DELETE FROM dataset_reservations WHERE name = ? AND version = ?",
                            (slot.name, slot.version)).rowcount == 0
        if gone:
            raise StudioError(f"The reservation of dataset '{slot.name}' version {slot.version} was cleared by "
                              "another studio process while this import ran; import it again.",
                              field="data.dataset", key="data.versions.reservation_lost", name=slot.name,
                              version=slot.version)
    slot.published = True


# --- readers --------------------------------------------------------------------------------------------------
def read_card(folder: Path) -> dict | None:
    """The card of a version folder, or None when the folder or its card is missing or unreadable."""
    try:
        card = json.loads((Path(folder) / "card.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def _versions(ws, name: str) -> list:
    with ws.db() as conn:
        return conn.execute("SELECT version, path FROM datasets WHERE name = ? ORDER BY version DESC",
                            (name,)).fetchall()


def dataset_dir(ws, name: str, version: int | None = None) -> Path:
    """The folder of `version` of `name`, or of its newest intact version; a broken one is a StudioError."""
    rows = _versions(ws, name)
    if version is not None:
        rows = [r for r in rows if r["version"] == version]
    if not rows:
        raise StudioError(f"There is no studio dataset '{name}'" + (f" version {version}" if version else "")
                          + "; see `studio data list`.", field="data.dataset", key="data.builder.unknown_dataset",
                          name=name, version=version)
    for r in rows:
        if read_card(Path(r["path"])) is not None:
            return Path(r["path"])
    if version is not None:
        raise StudioError(f"Version {version} of dataset '{name}' is damaged (its folder or card.json is missing); "
                          "use another version or import it again.", field="data.dataset",
                          key="data.versions.broken_version", name=name, version=version)
    raise StudioError(f"Every version of dataset '{name}' is damaged (folders or card.json missing); "
                      "import it again.", field="data.dataset", key="data.versions.broken_dataset", name=name)


def dataset_card(ws, name: str, version: int | None = None) -> dict:
    folder = dataset_dir(ws, name, version)
    card = read_card(folder)
    if card is None:  # removed between the two reads
        raise StudioError(f"Version {folder.name[1:]} of dataset '{name}' is damaged (its folder or card.json is "
                          "missing); use another version or import it again.", field="data.dataset",
                          key="data.versions.broken_version", name=name, version=folder.name[1:])
    return card


def load_split(ws, name: str, split_name: str = "train", version: int | None = None) -> list[dict]:
    """The rows of one split ([] for a split the version was built without); a lost split file is a StudioError."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = dataset_dir(ws, name, version)
    try:
        return pq.read_table(folder / f"{split_name}.parquet").to_pylist()
    except FileNotFoundError:
        card = read_card(folder) or {}
        if not (card.get("split", {}).get("rows", {}).get(split_name) or 0):
            return []  # built without this split (no validation or test share)
        raise StudioError(f"The {split_name} split of dataset '{name}' version {folder.name[1:]} is missing from "
                          f"{folder}; import the dataset again.", field="data.dataset",
                          key="data.versions.split_missing", name=name, split=split_name,
                          version=folder.name[1:], folder=str(folder)) from None
    except (OSError, pa.ArrowException) as exc:
        raise StudioError(f"The {split_name} split of dataset '{name}' version {folder.name[1:]} cannot be read "
                          f"({exc}); import the dataset again.", field="data.dataset",
                          key="data.versions.split_unreadable", name=name, split=split_name,
                          version=folder.name[1:], detail=str(exc)) from None


_LISTED = ("format", "split", "template", "skipped", "created_at")


def list_datasets(ws) -> list[dict]:
    """One entry per name, from its newest intact version (damaged and legacy card-less versions are skipped)."""
    with ws.db() as conn:
        rows = conn.execute("SELECT name, version, path FROM datasets ORDER BY name, version DESC").fetchall()
    out = []
    for name, group in groupby(rows, key=lambda r: r["name"]):
        group = list(group)
        newest = next(((r, card) for r in group if (card := read_card(Path(r["path"]))) is not None
                       and all(k in card for k in _LISTED)), None)
        if newest is None:
            continue
        r, card = newest
        intact = sum((Path(g["path"]) / "card.json").is_file() for g in group)
        out.append({"name": name, "version": r["version"], "versions": intact, "format": card["format"],
                    "rows": card["split"]["rows"], "template": card["template"], "skipped": card["skipped"],
                    "created_at": card["created_at"]})
    return out
