"""The processes below a process, read from /proc: what a test checks for orphans after the app under it is gone.
A studio's workers may be its grandchildren (forked by its fork server, `studio.jobs.processes`)."""
from __future__ import annotations

from pathlib import Path


def descendants(pid: int) -> list[int]:
    """The processes below `pid` now (its fork server, job workers and theirs)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found
