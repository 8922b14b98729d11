"""What dataset pickers offer, and the one-click upload path of the Train tab.

`dataset_names` lists built-in samples first, then the studio datasets that have an intact version.
`import_file` turns an uploaded file into a studio dataset with the builder's defaults (format and
mapping guessed, default cleaning, no split) and returns its name; the Data tab and
`studio data import` expose every option of `studio.data.builder.import_dataset`.
"""
from __future__ import annotations

import re
from pathlib import Path

from studio.data.loaders import SAMPLES


def _safe_name(stem: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-").lower()[:48]
    return name or "dataset"


def dataset_names(ws) -> list[str]:
    from studio.data.builder import list_datasets

    return list(SAMPLES) + [d["name"] for d in list_datasets(ws) if d["name"] not in SAMPLES]


def import_file(ws, path: Path, name: str | None = None) -> str:
    """Import an uploaded file as a studio dataset with guessed format and default settings."""
    from studio.data.builder import ImportRequest, import_dataset
    from studio.data.cleaning import SplitConfig

    name = _safe_name(name or Path(path).stem)
    if name in SAMPLES:
        name = f"{name}-upload"
    # No split here: the Train tab's validation share holds examples out at training time.
    request = ImportRequest(source=str(path), name=name, split=SplitConfig(validation=0.0))
    return import_dataset(ws, request).name
