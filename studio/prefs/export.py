"""Exporting preferences: a task set's rankings (or the arena's votes) as a studio dataset, JSONL and Parquet.

Each item's rankings are merged into one consensus ranking (Borda, `consensus.borda`), which becomes DPO
pairs or KTO rows (`ranking.pairs_rows` / `kto_rows`). The rows are written to
`<workspace>/prefs/exports/<name>.jsonl` and `.parquet` and imported as the studio dataset `name`. The
dataset always holds the standard form (plain strings: the preference stages apply the chat template
themselves, and the data layer reads text columns); with `conversational=True` the JSONL and Parquet files
hold message lists and `<name>.standard.jsonl` is what the dataset was built from. A row with an empty
answer is left out and counted: the data layer refuses empty answers. Reading the rankings is the store's
job; the service calls this module.
"""
from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import Any, Callable

from studio.errors import StudioError
from studio.prefs.consensus import borda
from studio.prefs.ranking import STRATEGIES, PreferenceRows, kto_rows, pairs_rows

FORMATS = ("dpo", "kto")
TEXT_FIELDS = ("chosen", "rejected", "completion")


def consensus_items(rankings: list[dict], min_annotators: int = 1) -> tuple[list[dict], int]:
    """(items {id, prompt, system, candidates, ranking} with their Borda consensus, how many items had fewer than
    `min_annotators` rankings and were left out) from `PrefStore.rankings` rows."""
    items, skipped = [], 0
    for item in rankings:
        given = [r["ranking"] for r in item["rankings"]]
        if len(given) < max(1, min_annotators):
            skipped += 1
            continue
        items.append({"id": item["item_id"], "prompt": item["prompt"], "system": item["system"],
                      "candidates": item["candidates"], "ranking": borda(given, len(item["candidates"]))})
    return items, skipped


def usable_rows(build: Callable[[bool], PreferenceRows], conversational: bool
                ) -> tuple[PreferenceRows, list[dict], list[dict] | None, int]:
    """(standard result, rows to write, the standard rows for the dataset when the written rows are
    conversational, rows left out for an empty answer). `build(conversational)` makes the rows; both forms come
    in the same order, so one mask serves both."""
    standard = build(False)
    keep = [i for i, row in enumerate(standard.rows) if all(str(row[f]).strip() for f in TEXT_FIELDS if f in row)]
    rows = build(True).rows if conversational else standard.rows
    plain = [standard.rows[i] for i in keep] if conversational else None
    return standard, [rows[i] for i in keep], plain, len(standard.rows) - len(keep)


def save_rows(ws: Any, name: str, rows: list[dict], standard: list[dict] | None = None) -> dict:
    """Write `rows` as JSONL and Parquet under `<workspace>/prefs/exports` and import the standard form (`rows`
    itself unless `standard` is given) as the studio dataset `name`. Returns {dataset, jsonl, parquet}."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from studio.data.store import _safe_name, import_file

    folder = Path(ws.home) / "prefs" / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    stem = _safe_name(name)
    jsonl, parquet = folder / f"{stem}.jsonl", folder / f"{stem}.parquet"

    def write(path: Path, data: list[dict]) -> None:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in data), encoding="utf-8")

    # One export of a name at a time: a second one would rewrite these files while the first imports them.
    with open(folder / f".{stem}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        write(jsonl, rows)
        pq.write_table(pa.Table.from_pylist(rows), parquet)
        source = jsonl
        if standard is not None:
            source = folder / f"{stem}.standard.jsonl"
            write(source, standard)
        return {"dataset": import_file(ws, source, stem), "jsonl": str(jsonl), "parquet": str(parquet)}


def export_task_set(ws: Any, rankings: list[dict], task_set: str, strategy: str = "all_pairs", fmt: str = "dpo",
                    conversational: bool = False, name: str | None = None, min_annotators: int = 1) -> dict:
    """`rankings` (`PrefStore.rankings(task_set)`) as the dataset `name` (default `<task_set>-<fmt>`); see
    `PrefService.export` for what it returns."""
    if fmt not in FORMATS:
        raise StudioError(f"Export format '{fmt}' is not one of {', '.join(FORMATS)}.", field="prefs.format",
                          key="prefs.service.bad_format", format_name=str(fmt), choices=", ".join(FORMATS))
    if fmt == "dpo" and strategy not in STRATEGIES:
        raise StudioError(f"Unknown pairing strategy '{strategy}'; use one of {', '.join(STRATEGIES)}.",
                          field="prefs.strategy", key="prefs.service.bad_strategy", strategy=str(strategy),
                          choices=", ".join(STRATEGIES))
    items, skipped = consensus_items(rankings, min_annotators)
    if not items:
        raise StudioError(f"Task set '{task_set}' has no ranked items yet; rank some items (at least "
                          f"{max(1, min_annotators)} annotator(s) each) before exporting.",
                          field="prefs.task_set", key="prefs.service.nothing_ranked", name=task_set,
                          needed=max(1, min_annotators))

    def build(conv: bool) -> PreferenceRows:
        return kto_rows(items, conversational=conv) if fmt == "kto" else pairs_rows(items, strategy, conv)

    result, rows, plain, empty = usable_rows(build, conversational)
    if not rows:
        raise StudioError(f"None of the {len(items)} ranked items of '{task_set}' gives a {fmt.upper()} row: "
                          "each ties all its answers, ranks identical texts apart or has empty answers.",
                          field="prefs.task_set", key="prefs.service.no_rows", name=task_set, items=len(items),
                          format_name=fmt.upper())
    saved = save_rows(ws, name or f"{task_set}-{fmt}", rows, plain)
    return {**saved, "rows": len(rows), "items": len(items), "dropped": result.dropped, "empty": empty,
            "skipped_items": skipped, "duplicates": result.duplicates, "items_without_rows": result.empty_items,
            "format": fmt, "strategy": None if fmt == "kto" else strategy, "conversational": conversational}
