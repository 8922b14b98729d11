"""Writing an export so that a half-written one never replaces a good one, and no export replaces a user's files.

`staged(out, overwrite)` yields a fresh temporary folder beside `out` (same file system, so the final rename is
atomic). When the block ends without an error the previous `out` (if any) is moved aside, the new folder takes its
name and the old one is deleted; on any error the temporary folder is removed and `out` is left exactly as it was.
A full disk (ENOSPC, EDQUOT) becomes a one-sentence `StudioError` that says the previous export is untouched.

What may be replaced is decided by `check_out`: a missing or empty folder always; a previous studio export (its
`export.json` manifest, with nothing in the folder beyond the files that manifest lists) only with `overwrite`;
anything else never. `studio.export.pipeline.check_request` asks before any weights load, and `staged` asks again
at the moment of replacing, so files that appeared meanwhile are never deleted. Choosing `out` is the pipeline's.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from studio.errors import StudioError

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
MANIFEST = "export.json"
# Files a desktop drops into every folder it shows: nobody's work, so they do not make a folder "the user's".
CLUTTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
MANIFEST_MAX_BYTES = 16 * 2**20


def partial_dirs(out: Path) -> list[Path]:
    """Leftovers of interrupted exports to `out` (a killed process cannot clean up after itself)."""
    return sorted(out.parent.glob(f".{out.name}.partial-*"))


def export_files(folder: Path) -> list[str]:
    """Every file (and link) under `folder` as sorted relative POSIX paths: what a manifest lists as written."""
    return sorted(_walk(Path(folder)))


def _walk(folder: Path) -> Iterator[str]:
    for root, dirs, files in os.walk(folder):
        # A link to a folder is not followed (nor would rmtree follow it), but it is still something the user put there.
        links = [d for d in dirs if os.path.islink(os.path.join(root, d))]
        for name in files + links:
            yield Path(root, name).relative_to(folder).as_posix()


def export_manifest(folder: Path) -> dict | None:
    """The manifest of the studio export in `folder`, or None when `folder/export.json` is not one: it must be a JSON
    object with the fields the pipeline writes (a format matching its request's, a source, path and time)."""
    path = Path(folder) / MANIFEST
    try:
        if not path.is_file() or path.stat().st_size > MANIFEST_MAX_BYTES:
            return None
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("request"), dict):
        return None
    fmt, files = manifest.get("format"), manifest.get("files")
    if not (isinstance(fmt, str) and fmt and manifest["request"].get("format") == fmt
            and isinstance(manifest.get("source"), str) and "path" in manifest and "created" in manifest):
        return None
    if files is not None and not (isinstance(files, list) and all(isinstance(f, str) for f in files)):
        return None
    return manifest


def foreign_files(folder: Path, limit: int = 3) -> list[str]:
    """Up to `limit` files in `folder` that no studio export there wrote: all of them when it holds no export, those
    its manifest does not list otherwise. Manifests written before they listed their files vouch for the folder."""
    manifest = export_manifest(folder)
    if manifest is not None and manifest.get("files") is None:
        return []
    listed = set(manifest["files"]) | {MANIFEST} if manifest is not None else set()
    found = []
    for name in _walk(Path(folder)):
        if name not in listed and Path(name).name not in CLUTTER:
            found.append(name)
            if len(found) >= limit:  # a wrong folder may be a whole home directory: a few names are enough
                break
    return found


def folder_state(folder: Path) -> str:
    """'free' (missing, or empty), 'export' (a previous studio export and nothing else) or 'other'."""
    folder = Path(folder)
    if not folder.exists() and not folder.is_symlink():
        return "free"
    if not folder.is_dir() or foreign_files(folder, limit=1):
        return "other"
    return "export" if export_manifest(folder) is not None else "free"


def check_out(out: Path, overwrite: bool, shown: Path | None = None) -> None:
    """StudioError (field 'out') unless an export may be written to `out`: it is missing or empty, or it holds a
    previous studio export and `overwrite` is set. `shown` is the name the user knows the folder by."""
    out = Path(out)
    name = str(shown or out)
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir():
        raise StudioError(f"The output folder {name} exists and is not a folder; choose an empty or new folder.",
                          field="out", key="export.staging.not_folder", out=name)
    foreign = foreign_files(out)
    if foreign:
        files = ", ".join(foreign)
        raise StudioError(f"The output folder {name} holds files that are not a studio export ({files}); choose an "
                          "empty or new folder.", field="out", key="export.staging.not_export", out=name, files=files)
    if export_manifest(out) is not None and not overwrite:
        raise StudioError(f"The output folder {name} holds a previous export; pass --overwrite to replace it, or "
                          "choose another folder.", field="out", key="export.staging.previous_export", out=name)


def _disk_full(out: Path, error: OSError) -> StudioError:
    free = shutil.disk_usage(out.parent).free / 2**20 if out.parent.exists() else 0.0
    kept = "the previous export there is untouched" if out.exists() else "nothing was left behind"
    return StudioError(f"The disk filled up while writing the export to {out} ({free:.0f} MB free); {kept}; "
                       "free some space or choose another folder, then export again.", field="out",
                       key="export.staging.disk_full", out=str(out), free_mb=f"{free:.0f}", kept=kept)


@contextmanager
def staged(out: Path, overwrite: bool = False) -> Iterator[Path]:
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    for leftover in partial_dirs(out):
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        yield tmp
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if error.errno in DISK_FULL:
            raise _disk_full(out, error) from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out.parent / f".{out.name}.old-{os.getpid()}-{time.time_ns()}"
    try:
        if out.exists() or out.is_symlink():
            check_out(out, overwrite)
            out.rename(old)
            # Files written into `out` between the check and the rename are in `old` now: look once more, with
            # nobody able to reach it by its name.
            check_out(old, overwrite, shown=out)
    except BaseException:
        if old.exists() and not out.exists():
            old.rename(out)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        tmp.rename(out)
    except OSError:
        if old.exists():
            old.rename(out)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
