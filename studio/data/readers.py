"""Read a user's file (CSV, TSV, JSON, JSONL, Parquet, Excel .xlsx, plain text) as a lazy table of rows.

`open_table` picks the reader from the extension and checks it against the first bytes (a zip or
binary bytes named .csv is refused with one sentence), sniffs the text encoding (UTF-8 with or
without BOM, UTF-16/32 with BOM, otherwise charset_normalizer, preferring cp1252 for Western text)
and the CSV delimiter, and returns a `Table`: column names, `info` about the file and a row
iterator that opens the file only when iterated and streams it (CSV, TSV, JSONL, Parquet, Excel,
text paragraphs), so a 1 GB JSONL never sits in memory. Each row comes with the number a person can
find in the file: the line of a CSV record's first line, the JSONL line, the JSON element index + 1,
the Parquet row + 1, the Excel sheet row. Rows that cannot be read (a malformed JSONL line) go to
`Table.problems` as (row, reason) while iterating; valid rows keep coming. A JSON file is parsed
whole with `json.load`, so very large data should be JSONL. Mapping columns to task formats, cleaning
and saving are left to the format and store modules.
"""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import json
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Callable, Iterator

from studio.data.sniff import KINDS, _check_magic, _detect_encoding, _empty, _guess_kind, _sniff_delimiter
from studio.errors import StudioError

FIELD = "data.file"
SNIFF_BYTES = 1 << 20   # the head checked for binary data and a valid encoding
SAMPLE_BYTES = 1 << 16  # the part of it decoded to sniff the delimiter, the header and the columns
PROGRESS_EVERY = 256    # rows between progress checks; a call is made when 1 MB more was read
Progress = Callable[[int, int], None]
csv.field_size_limit(1 << 30)  # the default 128 KiB cap would refuse long documents in a text column


@dataclass
class Table:
    """What a reader yields. `rows` is lazy and can be iterated once; `problems` fills as it is read."""

    columns: list[str]
    rows: Iterator[tuple[int, dict]]
    info: dict
    problems: list[tuple[int, str]] = field(default_factory=list)

    def __iter__(self) -> Iterator[tuple[int, dict]]:
        return iter(self.rows)


TEXT_MODES = ("auto", "document", "paragraphs")
TEXT_SUFFIXES = (".txt", ".md")


def open_table(path: Path, *, progress: Progress | None = None, text_mode: str = "auto",
               sheet: str | None = None) -> Table:
    """Sniff `path` and return its `Table`; `progress(bytes_read, total_bytes)` is called while streaming. A plain
    text file gives one row per paragraph (`text_mode` 'auto' or 'paragraphs') or one row ('document'); a folder of
    .txt/.md files one row per file ('auto', 'document') or per paragraph."""
    path = Path(path)
    if text_mode not in TEXT_MODES:
        raise StudioError(f"'data.text_mode' is '{text_mode}'; use 'auto', 'document' or 'paragraphs'.",
                          field="data.text_mode", key="data.readers.text_mode", value=text_mode)
    if path.is_dir():
        return _folder(path, "document" if text_mode == "auto" else text_mode, progress)
    if not path.is_file():
        raise StudioError(f"'{FIELD}' is '{path}', which is missing; choose an existing data file.", field=FIELD,
                          key="data.readers.not_a_file", path=str(path))
    size = path.stat().st_size
    info = {"name": path.name, "size_bytes": size}
    if size == 0:
        raise _empty(path, "0 bytes")
    with path.open("rb") as f:
        head = f.read(SNIFF_BYTES)
    whole = len(head) == size
    suffix = path.suffix.lower()
    if suffix == ".xls":
        raise StudioError(f"'{path.name}' is in the old Excel format (.xls); save it as .xlsx or CSV in Excel "
                          f"and import that.", field=FIELD, key="data.readers.old_excel", file=path.name)
    kind = KINDS.get(suffix) or _guess_kind(head)
    _check_magic(path, kind, head)
    info["kind"] = kind
    problems: list[tuple[int, str]] = []
    if kind == "parquet":
        return _parquet(path, info, problems, progress)
    if kind == "xlsx":
        return _xlsx(path, info, problems, progress, sheet)
    encoding = _detect_encoding(path, head, whole)
    head = head[:SAMPLE_BYTES]
    whole = len(head) == size
    info["encoding"] = encoding
    try:
        text = codecs.getincrementaldecoder(encoding)().decode(head, final=whole)
    except UnicodeDecodeError:
        raise _decode_error(path, info) from None
    if whole and not text.strip():
        raise _empty(path, "only blank lines")
    if kind in ("csv", "tsv"):
        return _csv(path, info, problems, progress, text, whole)
    if kind == "jsonl":
        return _jsonl(path, info, problems, progress, text, whole)
    if kind == "json":
        return _json(path, info, problems, progress)
    info["text_mode"] = "paragraphs" if text_mode == "auto" else text_mode
    return Table(["text"], _text_rows(path, info, progress, info["text_mode"]), info, problems)


def _folder(path: Path, text_mode: str, progress: Progress | None) -> Table:
    """The .txt/.md files under `path` (sorted, subfolders too): one row each, or one per paragraph."""
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not files:
        raise StudioError(f"The folder '{path}' holds no .txt or .md file; put the documents there or choose a data "
                          "file.", field=FIELD, key="data.readers.empty_folder", path=str(path))
    info = {"name": path.name, "kind": "folder", "files": len(files), "text_mode": text_mode,
            "size_bytes": sum(p.stat().st_size for p in files)}

    def rows() -> Iterator[tuple[int, dict]]:
        number, done = 0, 0
        for file in files:
            table = open_table(file, text_mode=text_mode)
            for _, row in table.rows:
                number += 1
                yield number, row
            done += file.stat().st_size
            if progress:
                progress(done, info["size_bytes"])

    return Table(["text"], rows(), info, [])


def read_all(table: Table, limit: int | None = None) -> list[dict]:
    """The rows of `table` as dicts (the first `limit` of them); the file is closed afterwards."""
    try:
        return [row for _, row in islice(table.rows, limit)]
    finally:
        close = getattr(table.rows, "close", None)
        if close:
            close()


def preview(path: Path, n: int = 20, **kwargs) -> tuple[list[str], list[dict], dict]:
    """Columns, the first `n` rows and `info` of a file (with the problems met so far under 'problems')."""
    table = open_table(path, **kwargs)
    rows = read_all(table, n)
    return table.columns, rows, {**table.info, "problems": list(table.problems)}


# -- sniffing ---------------------------------------------------------------------------------------

class _Meter:
    """Calls `progress(bytes_read, total)` when at least 1 MB more has been read since the last call."""

    def __init__(self, progress: Progress | None, total: int):
        self.progress, self.total, self.last, self.count = progress, total, 0, 0

    def tick(self, position: Callable[[], int]) -> None:
        self.count += 1
        if self.progress and self.count % PROGRESS_EVERY == 0:
            now = position()
            if now - self.last >= 1 << 20:
                self.last = now
                self.progress(now, self.total)

    def done(self) -> None:
        if self.progress:
            self.progress(self.total, self.total)


def _open_text(path: Path, info: dict, newline: str | None = "") -> io.TextIOWrapper:
    return io.TextIOWrapper(open(path, "rb"), encoding=info["encoding"], newline=newline)


def _decode_error(path: Path, info: dict) -> StudioError:
    """Find the line of the first byte that does not decode (rare, so re-reading the file is fine)."""
    decoder, line = codecs.getincrementaldecoder(info["encoding"])(), 1
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                line += chunk[:exc.start].count(b"\n")
                break
            line += chunk.count(b"\n")
    return StudioError(f"'{path.name}' is not valid {info['encoding']} text at line {line}, although its start "
                       f"was; save the whole file as UTF-8 and import it again.", field=FIELD,
                       key="data.readers.bad_encoding_later", file=path.name, encoding=info["encoding"], line=line)


def _complete_lines(text: str, whole: bool) -> list[str]:
    lines = list(io.StringIO(text, newline=""))  # split like the streaming readers: on \r, \n, \r\n only
    return lines if whole or len(lines) < 2 else lines[:-1]  # the last line of a cut sample may be partial


def _unique_names(header: list) -> list[str]:
    names: list[str] = []
    for i, cell in enumerate(header, 1):
        base = str(cell).strip() if cell is not None and str(cell).strip() else f"column_{i}"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}_{n}"
        names.append(name)
    return names


# -- readers ------------------------------------------------------------------------------------------

def _csv(path, info, problems, progress, text, whole) -> Table:
    lines = _complete_lines(text, whole)
    delimiter = "\t" if info["kind"] == "tsv" else _sniff_delimiter(lines[:50])
    info["delimiter"] = delimiter
    records = [r for r in csv.reader(lines[:2000], delimiter=delimiter) if any(c.strip() for c in r)]
    if not records:
        raise _empty(path, "only blank lines")
    columns = _unique_names(records[0])
    if whole and len(records) == 1:
        raise _empty(path, f"a header row ({', '.join(columns)}) but no data rows")

    def rows() -> Iterator[tuple[int, dict]]:
        meter = _Meter(progress, info["size_bytes"])
        with _open_text(path, info) as f:
            reader = csv.reader(f, delimiter=delimiter)
            first_line, header_seen = 1, False
            try:
                for record in reader:
                    line, first_line = first_line, reader.line_num + 1
                    if not any(c.strip() for c in record):
                        continue
                    if not header_seen:
                        header_seen = True
                        continue
                    extra = [c for c in record[len(columns):] if c.strip()]
                    if extra:
                        problems.append((line, f"has {len(record)} fields but the header has {len(columns)}"))
                        continue
                    record += [""] * (len(columns) - len(record))
                    yield line, dict(zip(columns, record))
                    meter.tick(f.buffer.tell)
            except UnicodeDecodeError:
                raise _decode_error(path, info) from None
            except csv.Error as exc:
                raise StudioError(f"'{path.name}' could not be read as CSV at line {first_line} ({exc}); fix that "
                                  f"line or export the file again.", field=FIELD, key="data.readers.bad_csv",
                                  file=path.name, line=first_line, error=str(exc)) from None
        meter.done()
    return Table(columns, rows(), info, problems)


def _json_row(line: str) -> tuple[dict | None, str | None]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, f"is not valid JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(value, dict):
        return None, f"is a JSON {type(value).__name__}, not an object with columns"
    return value, None


def _columns_of(values) -> list[str]:
    return list(dict.fromkeys(key for value in values for key in value))


def _jsonl(path, info, problems, progress, text, whole) -> Table:
    sample = [_json_row(line)[0] for line in _complete_lines(text, whole)[:1000] if line.strip()]
    columns = _columns_of(row for row in sample if row is not None)  # later rows may add keys

    def rows() -> Iterator[tuple[int, dict]]:
        meter = _Meter(progress, info["size_bytes"])
        with _open_text(path, info) as f:
            try:
                for lineno, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    row, problem = _json_row(line)
                    if problem:
                        problems.append((lineno, problem))
                    else:
                        yield lineno, row
                    meter.tick(f.buffer.tell)
            except UnicodeDecodeError:
                raise _decode_error(path, info) from None
        meter.done()
    return Table(columns, rows(), info, problems)


def _json(path, info, problems, progress) -> Table:
    with _open_text(path, info) as f:
        try:
            data = json.load(f)
        except UnicodeDecodeError:
            raise _decode_error(path, info) from None
        except json.JSONDecodeError as exc:
            if exc.msg == "Extra data":  # one object per line: JSON Lines saved as .json
                info["kind"] = "jsonl"
                with path.open("rb") as raw:
                    head = raw.read(SAMPLE_BYTES)
                text = codecs.getincrementaldecoder(info["encoding"])().decode(head)
                return _jsonl(path, info, problems, progress, text, len(head) == info["size_bytes"])
            raise StudioError(f"'{path.name}' is not valid JSON ({exc.msg} at line {exc.lineno}, column "
                              f"{exc.colno}); fix it there or export the data again.", field=FIELD,
                              key="data.readers.bad_json", file=path.name, error=exc.msg, line=exc.lineno,
                              column=exc.colno) from None
    if isinstance(data, dict):
        lists = {k: v for k, v in data.items() if isinstance(v, list)}
        if len(lists) == 1 and all(isinstance(x, dict) for x in next(iter(lists.values()))):
            key, data = next(iter(lists.items()))  # {"data": [{...}, ...]}
            info["json_key"] = key
        elif data and len(lists) == len(data):
            lengths = {k: len(v) for k, v in lists.items()}
            if len(set(lengths.values())) > 1:
                sizes = ", ".join(f"{k}: {n}" for k, n in lengths.items())
                raise StudioError(f"'{path.name}' holds columns of different lengths ({sizes}); give every "
                                  f"column the same number of values.", field=FIELD,
                                  key="data.readers.uneven_columns", file=path.name, sizes=sizes)
            info["json_layout"] = "columns"
            data = [dict(zip(lists, values)) for values in zip(*lists.values())]
    if not isinstance(data, list):
        raise StudioError(f"'{path.name}' holds a JSON {type(data).__name__}, not a list of rows; use an array "
                          f"of objects, an object of equal-length arrays, or JSON Lines.", field=FIELD,
                          key="data.readers.json_not_rows", file=path.name, kind=type(data).__name__)
    if not data:
        raise _empty(path, "a JSON file with no rows")
    info["num_rows"] = len(data)

    def rows() -> Iterator[tuple[int, dict]]:
        for index, value in enumerate(data, 1):
            if isinstance(value, dict):
                yield index, value
            else:
                problems.append((index, f"is a JSON {type(value).__name__}, not an object with columns"))
        if progress:
            progress(info["size_bytes"], info["size_bytes"])
    return Table(_columns_of(v for v in data if isinstance(v, dict)), rows(), info, problems)


def _parquet(path, info, problems, progress) -> Table:
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as pf:
            columns, info["num_rows"] = list(pf.schema_arrow.names), pf.metadata.num_rows
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for damaged files
        raise StudioError(f"'{path.name}' could not be read as Parquet ({exc}); export it again.",
                          field=FIELD, key="data.readers.bad_parquet", file=path.name, error=str(exc)) from None
    if not info["num_rows"]:
        raise _empty(path, f"columns {', '.join(columns)} but no rows")

    def rows() -> Iterator[tuple[int, dict]]:
        index, total = 0, info["num_rows"]
        with pq.ParquetFile(path) as pf:
            for batch in pf.iter_batches(batch_size=4096):
                for row in batch.to_pylist():
                    index += 1
                    yield index, row
                if progress:
                    progress(info["size_bytes"] * index // total, info["size_bytes"])
    return Table(columns, rows(), info, problems)


def _cell(value):
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return value


def _xlsx(path, info, problems, progress, sheet) -> Table:
    import openpyxl

    def open_sheet():
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        if sheet is not None and sheet not in book.sheetnames:
            book.close()
            raise StudioError(f"'data.sheet' is '{sheet}', which is not a sheet of '{path.name}'; choose one of "
                              f"{', '.join(book.sheetnames)}.", field="data.sheet",
                              key="data.readers.unknown_sheet", sheet=sheet, file=path.name,
                              sheets=", ".join(book.sheetnames))
        info["sheets"] = list(book.sheetnames)
        return book, book[sheet] if sheet is not None else book.worksheets[0]

    def data_rows(ws) -> Iterator[tuple[int, tuple]]:
        for number, values in enumerate(ws.iter_rows(values_only=True), 1):
            if any(v is not None and str(v).strip() for v in values):
                yield number, values

    try:
        book, ws = open_sheet()
    except StudioError:
        raise
    except Exception as exc:  # openpyxl: InvalidFileException, BadZipFile, KeyError on a damaged workbook
        raise StudioError(f"'{path.name}' could not be read as an Excel workbook ({exc}); save it again as "
                          f".xlsx.", field=FIELD, key="data.readers.bad_excel", file=path.name,
                          error=str(exc)) from None
    info["sheet"] = ws.title
    try:
        found = list(islice(data_rows(ws), 2))
    finally:
        book.close()
    if not found:
        raise _empty(path, f"sheet '{ws.title}' has no cells with values")
    header_row, header = found[0]
    while header and (header[-1] is None or not str(header[-1]).strip()):
        header = header[:-1]
    columns = _unique_names(list(header))
    if len(found) == 1:
        raise _empty(path, f"a header row ({', '.join(columns)}) but no data rows")

    def rows() -> Iterator[tuple[int, dict]]:
        book, ws = open_sheet()
        total = ws.max_row or 0
        try:
            for number, values in data_rows(ws):
                if number > header_row:
                    yield number, {c: _cell(v) for c, v in zip(columns, values)}
                    if progress and total and number % PROGRESS_EVERY == 0:
                        progress(info["size_bytes"] * min(number, total) // total, info["size_bytes"])
        finally:
            book.close()
        if progress:
            progress(info["size_bytes"], info["size_bytes"])
    return Table(columns, rows(), info, problems)


def _text_rows(path, info, progress, text_mode) -> Iterator[tuple[int, dict]]:
    meter = _Meter(progress, info["size_bytes"])
    with _open_text(path, info, newline=None) as f:
        try:
            if text_mode == "document":
                yield 1, {"text": f.read()}
            else:
                paragraph: list[str] = []
                start = 0
                for lineno, line in enumerate(f, 1):
                    if line.strip():
                        start = start or lineno
                        paragraph.append(line)
                    elif paragraph:
                        yield start, {"text": "".join(paragraph).rstrip()}
                        paragraph, start = [], 0
                    meter.tick(f.buffer.tell)
                if paragraph:
                    yield start, {"text": "".join(paragraph).rstrip()}
        except UnicodeDecodeError:
            raise _decode_error(path, info) from None
    meter.done()
