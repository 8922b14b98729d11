"""Writing an export so that a half-written one never replaces a good one.

`staged(out)` yields a fresh temporary folder beside `out` (same file system, so the final rename is atomic).
When the block ends without an error the previous `out` (if any) is moved aside, the new folder takes its name
and the old one is deleted; on any error the temporary folder is removed and `out` is left exactly as it was.
A full disk (ENOSPC, EDQUOT) becomes a one-sentence `StudioError` that says the previous export is untouched.
"""
from __future__ import annotations

import errno
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from studio.errors import StudioError

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def partial_dirs(out: Path) -> list[Path]:
    """Leftovers of interrupted exports to `out` (a killed process cannot clean up after itself)."""
    return sorted(out.parent.glob(f".{out.name}.partial-*"))


def _disk_full(out: Path, error: OSError) -> StudioError:
    free = shutil.disk_usage(out.parent).free / 2**20 if out.parent.exists() else 0.0
    kept = "the previous export there is untouched" if out.exists() else "nothing was left behind"
    return StudioError(f"The disk filled up while writing the export to {out} ({free:.0f} MB free); {kept}; "
                       "free some space or choose another folder, then export again.", field="out",
                       key="export.staging.disk_full", out=str(out), free_mb=f"{free:.0f}", kept=kept)


@contextmanager
def staged(out: Path) -> Iterator[Path]:
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
    if out.exists():
        out.rename(old)
    try:
        tmp.rename(out)
    except OSError:
        if old.exists():
            old.rename(out)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
