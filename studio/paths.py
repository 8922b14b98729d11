"""Which files and folders a user may name, when the studio serves a team.

Locally the person at the keyboard may name any path the operating system lets them open. In server
mode (`studio ui --auth ...`) paths typed into the page or a recipe are confined: they must lie, after
symbolic links are followed, under the workspace, under a folder the admin allowed with `--allow-dir`,
or under the folder the server keeps uploads in. A path outside those and a path that does not exist
get the same sentence, so the answer says nothing about what exists elsewhere on the server.

`SERVED` is this process's policy (`launch` confines it); the engine calls `user_path` wherever a
user-supplied path is about to be opened or written, and `confined()` to know whether to be strict.
"""
from __future__ import annotations

import os
from pathlib import Path

from studio.errors import StudioError


class PathPolicy:
    def __init__(self) -> None:
        self.roots: list[Path] | None = None

    def confine(self, roots: list[Path | str]) -> None:
        """Server mode: from now on user paths must lie under one of `roots`."""
        self.roots = [Path(os.path.realpath(Path(r).expanduser())) for r in roots]

    def release(self) -> None:
        self.roots = None

    def inside(self, path: Path) -> bool:
        if self.roots is None:
            return True
        real = Path(os.path.realpath(path))
        return any(real == root or root in real.parents for root in self.roots)


SERVED = PathPolicy()


def confined() -> bool:
    return SERVED.roots is not None


def refusal(value: str, field: str) -> StudioError:
    return StudioError(f"'{field}' names {value}, which is not a file or folder this studio can use; on a shared "
                       "studio, use the workspace or a folder the admin allowed with --allow-dir.", field=field,
                       key="paths.not_usable", name=field, value=str(value))


def user_path(value: str | Path, field: str, must_exist: bool = True) -> Path:
    """`value` as a Path the caller may open (or create, with must_exist=False).

    Locally this only expands `~`. In server mode a path outside the allowed roots, or (with must_exist) one
    that does not exist, raises the same `StudioError`; for a path to be created, its nearest existing parent
    must be inside."""
    path = Path(str(value)).expanduser()
    if not confined():
        return path
    if must_exist:
        if not path.exists() or not SERVED.inside(path):
            raise refusal(str(value), field)
        return path
    probe = path.absolute()
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not SERVED.inside(probe) or not SERVED.inside(path.absolute().parent if not path.exists() else path):
        raise refusal(str(value), field)
    return path
