"""Sniffing a data file before reading it: what kind it is, whether it is really text, which encoding and delimiter.

`studio.data.readers` calls these on the first bytes of a file so that a binary file named .csv, an
Excel workbook renamed, or a cp1252 spreadsheet export each get the right reader or one clear
sentence. Nothing here reads a whole file.
"""
from __future__ import annotations

import codecs
import csv
from pathlib import Path

from studio.errors import StudioError

FIELD = "data.file"
KINDS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
         ".parquet": "parquet", ".pq": "parquet", ".xlsx": "xlsx", ".txt": "text", ".md": "text", ".text": "text"}
LABELS = {"csv": "CSV", "tsv": "TSV", "jsonl": "JSON Lines", "json": "JSON", "parquet": "Parquet",
          "xlsx": "Excel (.xlsx)", "text": "text"}
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
DELIMITERS = ",;\t|"


def _empty(path: Path, why: str) -> StudioError:
    return StudioError(f"'{path.name}' is empty ({why}); choose the file that holds your data.", field=FIELD,
                       key="data.sniff.empty_file", file=path.name)


def _guess_kind(head: bytes) -> str:
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(b"PAR1"):
        return "parquet"
    start = head.lstrip(codecs.BOM_UTF8 + b" \t\r\n")[:1]
    return {b"[": "json", b"{": "jsonl"}.get(start, "csv")


def _check_magic(path: Path, kind: str, head: bytes) -> None:
    """Refuse a file whose first bytes say it is something other than its extension claims."""
    label = LABELS[kind]
    if kind in ("xlsx", "parquet"):
        magic = b"PK\x03\x04" if kind == "xlsx" else b"PAR1"
        if not head.startswith(magic):
            raise StudioError(f"'{path.name}' does not look like a {label} file (its first bytes are wrong); "
                              f"open it in the program that made it and save it again as {label}.", field=FIELD,
                              key="data.sniff.bad_magic", file=path.name, label=label)
        return
    reason = None
    if head.startswith(b"PK\x03\x04"):
        reason = "it is a zip archive, perhaps an Excel workbook; if so, rename it to .xlsx"
    elif head.startswith(b"PAR1"):
        reason = "it is a Parquet file; rename it to .parquet"
    elif not head.startswith(tuple(b for b, _ in BOMS)) and _utf16_without_bom(head) is None:
        controls = sum(head.count(bytes([c])) for c in range(32) if c not in (9, 10, 12, 13, 27))
        if b"\x00" in head or controls > len(head) // 20:
            reason = f"it contains binary data; check that you picked the right file or export it as {label}"
    if reason:
        raise StudioError(f"'{path.name}' does not look like a {label} file ({reason}).", field=FIELD,
                          key="data.sniff.wrong_kind", file=path.name, label=label)


def _utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 text without BOM shows NUL as every other byte (for Latin text); None when it does not."""
    sample = head[:4096 & ~1]
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    half = len(sample) // 2
    if half and odd > 0.3 * half and even < 0.02 * half:
        return "utf-16-le"
    if half and even > 0.3 * half and odd < 0.02 * half:
        return "utf-16-be"
    return None


def _detect_encoding(path: Path, head: bytes, whole: bool) -> str:
    for bom, encoding in BOMS:
        if head.startswith(bom):
            return encoding
    utf16 = _utf16_without_bom(head)
    if utf16:
        return utf16
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=whole)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    import charset_normalizer

    sample = head[:65536]
    guesses = [match.encoding for match in charset_normalizer.from_bytes(sample)]
    # On short Western text charset_normalizer often ranks cp1250 or mac_latin2 first: prefer cp1252 when it fits.
    if _decodes(sample, "cp1252") and ("cp1252" in guesses or not guesses):
        return "cp1252"
    if guesses:
        return guesses[0]
    raise StudioError(f"'{path.name}' uses a text encoding that could not be recognised; save it as UTF-8 "
                      f"(in Excel: 'CSV UTF-8') and import it again.", field=FIELD,
                      key="data.sniff.unknown_encoding", file=path.name)


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        codecs.getincrementaldecoder(encoding)().decode(data, final=False)
        return True
    except UnicodeDecodeError:
        return False


def _sniff_delimiter(lines: list[str]) -> str:
    """The delimiter that splits the header and most rows into the same number (> 1) of fields."""
    try:
        sniffed = csv.Sniffer().sniff("".join(lines), delimiters=DELIMITERS).delimiter
    except csv.Error:
        sniffed = None
    scores = {}
    for delimiter in DELIMITERS:
        records = [r for r in csv.reader(lines, delimiter=delimiter) if r]
        width = len(records[0]) if records else 0
        same = sum(len(r) == width for r in records[1:]) / max(len(records) - 1, 1)
        scores[delimiter] = (width > 1, same, delimiter == sniffed, width)
    best = max(DELIMITERS, key=scores.get)
    return best if scores[best][0] else ","


# -- streaming helpers --------------------------------------------------------------------------------
