"""The workspace's dataset store, minimal for now: uploaded JSONL/JSON files kept as named datasets.

`import_file` validates an uploaded file with the same loader training uses (so a file the Train
tab accepts is a file training can read), copies it to `datasets/<name>/data.jsonl` and records
it in the `datasets` table with a version number. `dataset_names` lists what a picker offers:
built-in samples first, then stored datasets. The full dataset builder (formats, mapping,
templates, cleaning) is a later issue and will grow this module.
"""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

from studio.data.loaders import SAMPLES, load_examples
from studio.errors import StudioError


def _safe_name(stem: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-").lower()[:48]
    return name or "dataset"


def dataset_names(ws) -> list[str]:
    with ws.db() as conn:
        rows = conn.execute("SELECT DISTINCT name FROM datasets ORDER BY name").fetchall()
    return list(SAMPLES) + [r["name"] for r in rows if r["name"] not in SAMPLES]


def import_file(ws, path: Path, name: str | None = None) -> str:
    """Validate and store an uploaded examples file; returns the dataset name to put in a recipe."""
    path = Path(path)
    if path.suffix.lower() not in (".jsonl", ".json"):
        raise StudioError(f"'{path.name}' is not a .jsonl or .json file; upload JSON lines with "
                          "instruction/output or messages columns.", field="data.dataset")
    examples = load_examples(str(path))
    name = _safe_name(name or path.stem)
    if name in SAMPLES:
        name = f"{name}-upload"
    with ws.db() as conn:
        row = conn.execute("SELECT MAX(version) AS v FROM datasets WHERE name = ?", (name,)).fetchone()
    version = (row["v"] or 0) + 1
    target = Path(ws.datasets_dir) / name
    tmp = Path(ws.datasets_dir) / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with open(tmp / "data.jsonl", "w", encoding="utf-8") as out:
        for ex in examples:
            out.write(json.dumps(ex, ensure_ascii=False) + "\n")
    if target.exists():
        # Keep the previous version beside the new one; the name always points at the newest.
        target.rename(Path(ws.datasets_dir) / f".{name}.v{version - 1}")
    tmp.rename(target)
    card = {"source": path.name, "skipped": examples.skipped[:50], "format": "chat"}
    with ws.db() as conn:
        conn.execute("INSERT INTO datasets (name, version, path, format, rows, card, created_at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (name, version, str(target / "data.jsonl"), "chat", len(examples), json.dumps(card),
                      time.time()))
    return name
