"""Hugging Face hub datasets as builder sources, for machines that are online.

`looks_like_hub_id` tells a hub id ("owner/name", optionally "owner/name:config") from a file
path; `open_hub_table` streams the chosen split with `datasets.load_dataset(..., streaming=True)`
into the same `Table` shape the file readers give, so the builder treats both alike. Offline,
it refuses with one sentence instead of hanging on the network.
"""
from __future__ import annotations

import re
from itertools import chain

from studio.data.readers import Table
from studio.errors import StudioError

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+(:[\w.-]+)?")


def looks_like_hub_id(source: str) -> bool:
    return bool(_HUB_ID.fullmatch(source.strip())) and not source.startswith((".", "/", "~"))


def open_hub_table(source: str, split: str = "train") -> Table:
    from studio.models.catalogue import is_offline

    repo, _, config = source.strip().partition(":")
    if is_offline():
        raise StudioError(f"This machine is offline, so hub dataset '{repo}' cannot be downloaded; export it to a "
                          "file on a connected machine and import that file.", field="data.file",
                          key="data.hub.offline", repo=repo)
    from datasets import load_dataset

    try:
        stream = load_dataset(repo, config or None, split=split, streaming=True)
        first = next(iter(stream))
    except StopIteration:
        raise StudioError(f"Hub dataset '{source}' split '{split}' has no rows.", field="data.file",
                          key="data.hub.empty_split", source=source, split=split) from None
    except Exception as exc:  # the hub's own errors: unknown repo, gated, unknown config/split
        raise StudioError(f"Hub dataset '{source}' could not be opened ({type(exc).__name__}: {exc}); check the "
                          "id, config and split.", field="data.file", key="data.hub.open_failed",
                          source=source, kind=type(exc).__name__, error=str(exc)) from None
    rows = ((i + 1, dict(row)) for i, row in enumerate(chain([first], stream)))
    return Table(columns=list(first), rows=rows, info={"kind": "hub", "name": repo, "config": config,
                                                        "split": split})
