"""The dataset builder: any file (or hub dataset) into a clean, split, versioned studio dataset.

`inspect_source` reads the first rows of a source and guesses its task format and column
mapping, so the UI and `studio data import` can show the guess before anything is saved.
`import_dataset` streams the whole source through the mapping (bad rows become numbered
problems, valid rows still import), cleans, splits, and saves a new version under
`datasets/<name>/v<k>/` as Parquet files (`train.parquet`, `validation.parquet`, `test.parquet`,
readable with `load_dataset("parquet", ...)`) plus `card.json` (source, format, mapping, template,
cleaning report, split, stats). Older versions stay. Reading files is `readers`' job, formats and
mapping `formats`', cleaning and splitting `cleaning`'s; which version number a writer gets, how it is made
visible, and which versions readers see is `versions`' (re-exported here: `dataset_dir`, `dataset_card`,
`load_split`, `list_datasets`); this module only chains them and stores.
"""
from __future__ import annotations

import json
import random
import re
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

from studio.data.cleaning import CleaningConfig, SplitConfig, clean_stream, new_report, split
from studio.data.formats import FORMATS, Guess, check_mapping, guess_format, iter_records
from studio.data.versions import (VersionSlot, dataset_card, dataset_dir, list_datasets,  # noqa: F401 (re-exported)
                                  load_split, new_version, publish)
from studio.errors import StudioError

SPLITS = ("train", "validation", "test")
MAX_PROBLEMS_KEPT = 1000
SPOOL_BATCH = 5000  # records per Parquet batch while importing
IN_MEMORY_ROWS = 200_000  # up to this many cleaned rows, shuffle and split exactly in memory


@dataclass
class SourcePreview:
    columns: list[str]
    rows: list[dict]
    info: dict
    guess: Guess
    problems: list[tuple[int, str]]


@dataclass
class ImportRequest:
    source: str
    name: str
    format: str = "auto"
    mapping: dict[str, str] = field(default_factory=dict)
    template: str = "chat"
    system_prompt: str = ""
    cleaning: CleaningConfig = field(default_factory=CleaningConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    text_mode: str = "auto"  # text files: one row per paragraph; a folder: one per file (readers.open_table)
    labels: list[str] | None = None
    hub_split: str = "train"  # for hub sources: which split of the hub dataset to import
    # Separate files that become the validation / test split whole (same columns as `source`); the split's share
    # is then not carved out of `source`, and training rows that repeat one of their rows are dropped.
    heldout: dict[str, str] = field(default_factory=dict)


@dataclass
class ImportResult:
    name: str
    version: int
    path: str
    format: str
    mapping: dict[str, str]
    imported: int
    skipped: int
    problems: list[tuple[int, str]]
    cleaning: dict[str, int]
    splits: dict[str, int]
    read: int | None = None  # data rows read from the source: imported + skipped + removed by cleaning
    text_mode: str | None = None  # plain text: 'paragraphs' (a row each) or 'document' (a row per file)
    heldout: dict[str, dict] = field(default_factory=dict)  # split -> {file, read, rows, skipped, removed, overlap}

    def removed(self) -> dict[str, int]:
        """Rows the cleaning removed, by reason ('duplicates': 2, ...)."""
        return {k.removeprefix("dropped_"): v for k, v in self.cleaning.items() if k.startswith("dropped_") and v}

    def summary(self) -> str:
        """'50 rows read: 45 imported, 3 skipped (see list), 2 removed by cleaning (2 duplicates) -> name v1'."""
        removed = self.removed()
        parts = [f"{self.imported} imported", f"{self.skipped} skipped" + (" (see list)" if self.skipped else "")]
        if removed:
            reasons = ", ".join(f"{n} {REMOVED_WORDS.get(k, k)}" for k, n in removed.items())
            parts.append(f"{sum(removed.values())} removed by cleaning ({reasons})")
        head = f"{self.read} rows read: " if self.read is not None else ""
        text = {"paragraphs": "; text: one row per paragraph", "document": "; text: one row per file"}
        def notes(h: dict) -> str:
            said = [f"{h['skipped']} skipped"] * bool(h["skipped"]) + [f"{h['removed']} removed by cleaning"] * bool(
                h["removed"])
            return f" ({', '.join(said)})" if said else ""

        held = "".join(f"; {split} from {h['file']}: {h['rows']} rows{notes(h)}" for split, h in self.heldout.items())
        return (head + ", ".join(parts) + f" -> {self.name} v{self.version}" + text.get(self.text_mode or "", "")
                + held)


REMOVED_WORDS = {"empty": "empty", "duplicates": "exact duplicates", "too_short": "too short", "too_long": "too long",
                 "language": "in another language", "in_heldout": "repeated in a held-out file"}


def valid_name(name: str) -> str:
    name = (name or "").strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise StudioError(f"Dataset name '{name}' is not valid; use letters, digits, '-', '_' or '.' "
                          "(up to 64 characters).", field="name", key="data.builder.bad_name", name=name)
    return name


def _table(source: str, text_mode: str, progress: Callable | None = None, hub_split: str = "train", ws=None):
    from studio.data.hub import looks_like_hub_id, open_hub_table
    from studio.data.loaders import SAMPLES
    from studio.data.readers import Table, open_table

    if source in SAMPLES:
        return open_table(SAMPLES[source], progress=progress, text_mode=text_mode)
    path = Path(source).expanduser()
    if not path.exists() and ws is not None and _exists(ws, source):
        # An existing studio dataset as a source (to re-clean, re-split or re-template it): all its splits.
        records = [r for part in SPLITS for r in load_split(ws, source, part)]
        columns = list(dict.fromkeys(k for r in records[:50] for k in r))
        return Table(columns, iter(enumerate(records, start=1)), {"kind": "studio", "name": source})
    if not path.exists() and looks_like_hub_id(source):
        return open_hub_table(source, hub_split)
    if not path.exists():
        raise StudioError(f"'{source}' does not exist; check the path of the file to import.", field="data.file",
                          key="data.builder.missing_source", source=source)
    return open_table(path, progress=progress, text_mode=text_mode)


def _exists(ws, name: str) -> bool:
    with ws.db() as conn:
        return conn.execute("SELECT 1 FROM datasets WHERE name = ? LIMIT 1", (name,)).fetchone() is not None


def inspect_source(source: str, format: str = "auto", mapping: dict | None = None, n: int = 20,
                   text_mode: str = "auto", ws=None) -> SourcePreview:
    """The first `n` rows of a source, with the guessed (or given) format and mapping."""
    table = _table(source, text_mode, ws=ws)
    rows = []
    for _, row in table.rows:
        rows.append(row)
        if len(rows) >= n:
            break
    guess = guess_format(table.columns, rows)
    if format != "auto":
        FORMATS.get(format, field="format")
        if format != guess.format:
            guess = Guess(format, {}, 0.0, "chosen by the user")
    if mapping:
        guess.mapping = {**guess.mapping, **mapping}
    return SourcePreview(table.columns, rows, dict(table.info), guess, list(table.problems))


def _write_parquet(records: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(records), path)


def _chosen_format(req: ImportRequest, guess: Guess) -> str:
    """The user's format; with 'auto', the guess unless the user's mapping only fits another format."""
    if req.format != "auto":
        return FORMATS.get(req.format, field="format").name
    mapped = set(req.mapping)
    if not mapped or mapped <= set(FORMATS.get(guess.format).fields):
        return guess.format
    for name, spec in FORMATS.items():
        if mapped <= set(spec.fields) and set(spec.required) <= mapped:
            return name
    return guess.format


def import_dataset(ws, req: ImportRequest, progress: Callable[[int, int], None] | None = None) -> ImportResult:
    """Read, map, clean, split and save `req.source` as a new version of dataset `req.name`."""
    name = valid_name(req.name)
    for split_name in req.heldout:
        if split_name not in ("validation", "test"):
            raise StudioError(f"A held-out file can be the validation or the test split, not '{split_name}'.",
                              field="heldout", key="data.builder.heldout_split", split=split_name)
    table = _table(req.source, req.text_mode, progress, req.hub_split, ws)
    head: list[tuple[int, dict]] = []
    rows_iter = iter(table.rows)
    for item in rows_iter:
        head.append(item)
        if len(head) >= 50:
            break
    if not head:
        raise StudioError(f"'{Path(req.source).name}' has no data rows; add rows below the header.", field="data.file",
                          key="data.builder.no_rows", file=Path(req.source).name)
    guess = guess_format(table.columns, [r for _, r in head])
    fmt = _chosen_format(req, guess)
    mapping = dict(guess.mapping if fmt == guess.format else {})
    mapping.update(req.mapping)
    check_mapping(fmt, mapping, table.columns)

    read = [0]

    def all_rows():
        for item in head:
            read[0] += 1
            yield item
        for item in rows_iter:
            read[0] += 1
            yield item

    problems: list[tuple[int, str]] = []
    n_problems = [0]

    def mapped():
        labels = set(req.labels) if req.labels else None
        for row_no, record, reason in iter_records(all_rows(), fmt, mapping, labels=labels):
            if record is None:
                n_problems[0] += 1
                if len(problems) < MAX_PROBLEMS_KEPT:  # a broken huge file must not fill memory with reasons
                    problems.append((row_no, reason))
            else:
                yield record

    report = new_report()
    with new_version(ws, name) as slot:
        spool = slot.tmp / ".spool.parquet"
        n = _spool(clean_stream(mapped(), fmt, req.cleaning, report), spool)
        problems = sorted(list(table.problems) + problems)
        if n == 0:
            source = Path(req.source).name
            if not any(report[k] for k in report if k.startswith("dropped")):
                first = f" (row {problems[0][0]}: {problems[0][1]})" if problems else ""
                raise StudioError(f"No row of '{source}' could be used as {fmt} data{first}; check the format and "
                                  "the column mapping.", field="data.file", key="data.builder.no_usable_row",
                                  file=source, format_name=fmt)
            raise StudioError(f"Cleaning removed every row of '{source}' ({report}); loosen the filters.",
                              field="cleaning", key="data.builder.all_cleaned", file=source, report=report)
        carved = replace(req, split=replace(req.split, **{k: 0 for k in req.heldout}))
        parts = _split_spool(spool, n, fmt, carved)
        spool.unlink()
        held = {k: _heldout_part(ws, req, k, path, fmt, mapping, parts) for k, path in req.heldout.items()}
        skipped = n_problems[0] + len(table.problems)
        result = _save(ws, slot, req, fmt, mapping, parts, problems, skipped, report, table.info,
                       read=read[0] + len(table.problems), extra={"heldout": held} if held else None)
        result.imported -= sum(h["rows"] for h in held.values())
        if any(h["overlap"] for h in held.values()):  # the main file's rows still add up: read = imported + ...
            result.cleaning = {**result.cleaning, "dropped_in_heldout": sum(h["overlap"] for h in held.values())}
        result.heldout = held
        return result


def _heldout_part(ws, req: ImportRequest, split_name: str, path: str, fmt: str, mapping: dict,
                  parts: dict) -> dict:
    """Read a held-out file with the main file's format and mapping into `parts[split_name]`; training rows that
    repeat one of its rows are dropped from `parts['train']` (counted as 'overlap')."""
    table = _table(path, req.text_mode, None, "train", ws)
    name = Path(path).name
    try:
        check_mapping(fmt, mapping, table.columns)
    except StudioError as exc:
        raise StudioError(f"The {split_name} file '{name}' does not have the columns of the main file: {exc}",
                          field=f"--{split_name}", key="data.builder.heldout_columns", split=split_name, file=name,
                          reason=str(exc)) from None
    labels = set(req.labels) if req.labels else None
    rows = list(iter_records(iter(table.rows), fmt, mapping, labels=labels))
    report = new_report()
    records = list(clean_stream((r for _, r, _ in rows if r is not None), fmt, req.cleaning, report))
    if not records:
        raise StudioError(f"No row of the {split_name} file '{name}' could be used as {fmt} data; check its columns.",
                          field=f"--{split_name}", key="data.builder.heldout_empty", split=split_name, file=name)
    parts[split_name] = records
    overlap = 0
    train = parts.get("train")
    if isinstance(train, list):
        seen = {json.dumps(r, sort_keys=True, ensure_ascii=False) for r in records}
        kept = [r for r in train if json.dumps(r, sort_keys=True, ensure_ascii=False) not in seen]
        overlap, parts["train"] = len(train) - len(kept), kept
    skipped = sum(1 for _, r, _ in rows if r is None) + len(table.problems)
    removed = sum(v for k, v in report.items() if k.startswith("dropped_"))
    return {"file": name, "read": len(rows) + len(table.problems), "rows": len(records), "skipped": skipped,
            "removed": removed, "overlap": overlap}


def _spool(records: Iterable[dict], path: Path) -> int:
    """Write records to a Parquet file in batches (bounded memory); returns how many."""
    writer, schema, batch, n = None, None, [], 0
    try:
        for record in records:
            batch.append(record)
            if len(batch) >= SPOOL_BATCH:
                writer, schema = _write_batch(batch, path, writer, schema)
                n += len(batch)
                batch = []
        if batch:
            writer, schema = _write_batch(batch, path, writer, schema)
            n += len(batch)
    finally:
        if writer is not None:
            writer.close()
    return n


def _write_batch(batch, path, writer, schema):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(batch, schema=schema)
    if writer is None:
        schema = table.schema
        writer = pq.ParquetWriter(path, schema)
    writer.write_table(table)
    return writer, schema


def _split_spool(spool: Path, n: int, fmt: str, req: ImportRequest) -> dict[str, list[dict]] | dict[str, Path]:
    """Small imports: shuffle and split in memory. Large ones: pick held-out rows by index, keep file order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if n <= IN_MEMORY_ROWS:
        records = pq.read_table(spool).to_pylist()
        if req.cleaning.shuffle:
            random.Random(req.cleaning.seed).shuffle(records)
        return split(records, fmt, req.split)
    # Only the label column is read to decide who goes where; rows stream from the spool to the split files.
    labels = pq.read_table(spool, columns=["label"]).column("label").to_pylist() if fmt == "classification" else None
    codes = _assign_splits(n, labels, fmt, req.split)
    out = {}
    writers, row = {}, 0
    try:
        for batch in pq.ParquetFile(spool).iter_batches(batch_size=SPOOL_BATCH):
            batch_codes = codes[row:row + batch.num_rows]
            for code, split_name in enumerate(SPLITS):
                mask = batch_codes == code
                if mask.any():
                    part = batch.filter(pa.array(mask))
                    if split_name not in writers:
                        out[split_name] = spool.with_name(f"{spool.stem}.{split_name}.parquet")
                        writers[split_name] = pq.ParquetWriter(out[split_name], batch.schema)
                    writers[split_name].write_batch(part)
            row += batch.num_rows
    finally:
        for w in writers.values():
            w.close()
    return out


def _assign_splits(n: int, labels: list | None, fmt: str, cfg: SplitConfig):
    """Split code per row (0 train, 1 validation, 2 test) in one byte each: big imports stay small in memory.

    Same sizes and the same errors as `cleaning.split`; stratified per label when asked (default for
    classification), so every held-out split keeps each label's share.
    """
    import numpy as np

    from studio.data.cleaning import _size

    sizes = [_size(cfg.validation, n), _size(cfg.test, n)]
    if sizes[0] + sizes[1] >= n:
        raise StudioError(f"The validation and test splits ({sizes[0]} + {sizes[1]} rows) take all {n} rows and "
                          "leave train empty; use smaller shares or counts.", field="validation",
                          key="data.builder.no_train_rows", validation=sizes[0], test=sizes[1], n=n)
    rng = np.random.default_rng(cfg.seed)
    codes = np.zeros(n, dtype=np.int8)
    stratify = cfg.stratify if cfg.stratify is not None else fmt == "classification"
    if labels is not None and len(set(labels)) < 2:
        raise StudioError(f"'label' has only one class ({labels[0]!r}); a classifier needs at least two.",
                          field="label", key="data.builder.one_class", value=labels[0])
    groups = [np.arange(n)]
    if stratify and labels is not None:
        array = np.asarray(labels, dtype=object)
        groups = [np.flatnonzero(array == value) for value in sorted(set(labels), key=str)]
    for members in groups:
        members = rng.permutation(members)
        n_val = round(len(members) * sizes[0] / n)
        n_test = round(len(members) * sizes[1] / n)
        codes[members[:n_val]] = 1
        codes[members[n_val:n_val + n_test]] = 2
    return codes


def mix_datasets(ws, name: str, sources: list[tuple[str, float | int]], split_cfg: SplitConfig | None = None,
                 seed: int = 42, template: str = "chat") -> ImportResult:
    """One new dataset from several studio datasets, by share or count each (FLAN-style multi-task mixing).

    Sources of one format keep it; a mix of instruction, chat, seq2seq and classification data becomes
    chat conversations. The card records what each source was asked for and gave.
    """
    from studio.data.cleaning import mix
    from studio.data.formats import record_to_messages

    name = valid_name(name)
    loaded = []
    for source, amount in sources:
        card = dataset_card(ws, source)
        loaded.append((source, card["format"], load_split(ws, source, "train"), amount))
    formats = {fmt for _, fmt, _, _ in loaded}
    fmt = formats.pop() if len(formats) == 1 else "chat"
    if fmt == "chat":
        loaded = [(src, "chat", [r if f == "chat" else {"messages": record_to_messages(r, f), "system": ""}
                                 for r in recs], amount) for src, f, recs, amount in loaded]
    records, mix_card = mix([(src, recs, amount) for src, _, recs, amount in loaded], seed=seed)
    parts = split(records, fmt, split_cfg or SplitConfig())
    req = ImportRequest(source="mix: " + ", ".join(f"{s}={a}" for s, a in sources), name=name, format=fmt,
                        template=template, split=split_cfg or SplitConfig())
    with new_version(ws, name) as slot:
        return _save(ws, slot, req, fmt, {}, parts, [], 0, {"kept": len(records)}, {"kind": "mix"},
                     extra={"mix": mix_card})


def _save(ws, slot: VersionSlot, req, fmt, mapping, parts, problems, skipped, report, info,
          extra=None, read: int | None = None) -> ImportResult:
    """Write the splits and card into the reserved slot and publish it (`new_version` cleans up on failure)."""
    counts = {k: _count(v) for k, v in parts.items()}
    for split_name in SPLITS:
        part = parts.get(split_name)
        if isinstance(part, Path):
            shutil.move(str(part), slot.tmp / f"{split_name}.parquet")
        elif part:
            _write_parquet(part, slot.tmp / f"{split_name}.parquet")
    card = {
        "name": slot.name, "version": slot.version, "created_at": time.time(),
        "source": str(req.source), "source_info": {k: v for k, v in info.items() if isinstance(v, (str, int, float))},
        "format": fmt, "mapping": mapping, "template": req.template, "system_prompt": req.system_prompt,
        "cleaning": {"config": asdict(req.cleaning), "report": report},
        "split": {"config": asdict(req.split), "rows": counts},
        "read": read, "skipped": skipped, "problems": problems[:MAX_PROBLEMS_KEPT], **(extra or {}),
    }
    (slot.tmp / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False), encoding="utf-8")
    publish(ws, slot, fmt, sum(counts.values()), {k: card[k] for k in ("source", "template", "skipped")},
            card["created_at"])
    return ImportResult(slot.name, slot.version, str(slot.final), fmt, mapping, sum(counts.values()),
                        skipped, problems[:MAX_PROBLEMS_KEPT], report, counts, read, info.get("text_mode"))


def _count(part) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(part).metadata.num_rows if isinstance(part, Path) else len(part)


def export_dataset(ws, name: str, out_path: Path, fmt: str | None = None, split_name: str = "train",
                   version: int | None = None) -> Path:
    """Write one split as JSONL, CSV or Parquet (chosen by `fmt` or the file extension)."""
    import csv

    out_path = Path(out_path)
    fmt = (fmt or out_path.suffix.lstrip(".")).lower()
    if fmt not in ("jsonl", "csv", "parquet"):
        raise StudioError(f"Export format '{fmt}' is not supported; use jsonl, csv or parquet.", field="format",
                          key="data.builder.export_format", value=fmt)
    records = load_split(ws, name, split_name, version)
    if not records:
        card = dataset_card(ws, name, version)
        raise StudioError(f"The {split_name} split of dataset '{name}' version {card['version']} has no rows, so there "
                          "is nothing to export; choose another split.", field="split",
                          key="data.builder.empty_split", name=name, split=split_name, version=card["version"])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        _write_parquet(records, out_path)
    elif fmt == "jsonl":
        with open(out_path, "w", encoding="utf-8") as out:
            for rec in records:
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
    else:
        columns = list(records[0]) if records else []
        with open(out_path, "w", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=columns)
            writer.writeheader()
            for rec in records:
                writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v
                                 for k, v in rec.items()})
    return out_path
