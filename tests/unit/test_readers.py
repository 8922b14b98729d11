"""Readers turn messy user files into lazy tables with findable row numbers, or refuse them in one sentence.

Every fixture is written here into tmp_path (no binary fixtures in the repository).
"""
from __future__ import annotations

import datetime as dt
import json
import tracemalloc
import zipfile

import pytest

from studio.data import readers
from studio.data.readers import open_table, preview, read_all
from studio.errors import StudioError


def write(tmp_path, name, data, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    return path


def numbered(path, **kwargs):
    table = open_table(path, **kwargs)
    return table, list(table.rows)


def test_utf8_bom_csv_reads_clean_header(tmp_path):
    path = write(tmp_path, "bom.csv", "\ufeffname,city\nAna,Lyon\n")
    table, rows = numbered(path)
    assert table.columns == ["name", "city"]
    assert table.info["encoding"] == "utf-8-sig" and table.info["kind"] == "csv"
    assert rows == [(2, {"name": "Ana", "city": "Lyon"})]


def test_semicolon_csv_with_decimal_commas_keeps_values_whole(tmp_path):
    path = write(tmp_path, "prices.csv", "item;price;qty\nbread;1,50;2\nmilk;0,99;1\ncheese;12,25;3\n")
    table, rows = numbered(path)
    assert table.info["delimiter"] == ";"
    assert table.columns == ["item", "price", "qty"]
    assert [r["price"] for _, r in rows] == ["1,50", "0,99", "12,25"]


def test_quoted_field_with_newline_and_delimiter_keeps_line_numbers(tmp_path):
    text = 'id,text\n1,"hello, world\nsecond line"\n2,plain\n\n3,"a ""quoted"" word"\n'
    table, rows = numbered(write(tmp_path, "quoted.csv", text))
    assert [n for n, _ in rows] == [2, 4, 6]  # the record after the 2-line record starts on line 4
    assert rows[0][1]["text"] == "hello, world\nsecond line"
    assert rows[2][1]["text"] == 'a "quoted" word'


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1"])
def test_western_single_byte_csv_decodes_accents(tmp_path, encoding):
    euro = "€" if encoding == "cp1252" else "EUR"
    text = f"name,city,price\nJosé,Málaga,3 {euro}\nNuño,Cádiz,2 {euro}\nRenée,Besançon,1 {euro}\n"
    table, rows = numbered(write(tmp_path, "accents.csv", text, encoding))
    assert table.info["encoding"] == "cp1252"
    assert [r["name"] for _, r in rows] == ["José", "Nuño", "Renée"]
    assert rows[0][1]["price"] == f"3 {euro}"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le"])
def test_utf16_csv_with_or_without_bom(tmp_path, encoding):
    table, rows = numbered(write(tmp_path, "wide.csv", "name;note\nZoë;naïve\nÅsa;ok\n", encoding))
    assert table.columns == ["name", "note"]
    assert [r["name"] for _, r in rows] == ["Zoë", "Åsa"]


def test_tsv_and_pipe_delimiters(tmp_path):
    tsv, tsv_rows = numbered(write(tmp_path, "a.tsv", "q\ta\nWhy, then?\tBecause; see\n"))
    assert tsv.info["kind"] == "tsv" and tsv_rows[0][1] == {"q": "Why, then?", "a": "Because; see"}
    pipe, pipe_rows = numbered(write(tmp_path, "b.csv", "q|a|n\nx, y|z; w|1\nu|v|2\n"))
    assert pipe.info["delimiter"] == "|" and pipe_rows[1][1] == {"q": "u", "a": "v", "n": "2"}


def test_blank_and_duplicate_header_cells_get_names(tmp_path):
    table = open_table(write(tmp_path, "h.csv", "text,,text,label\na,b,c,d\n"))
    assert table.columns == ["text", "column_2", "text_2", "label"]


def test_row_with_too_many_fields_is_a_problem_not_a_crash(tmp_path):
    table, rows = numbered(write(tmp_path, "wide.csv", "a,b\n1,2\n3,4,5\n6\n"))
    assert rows == [(2, {"a": "1", "b": "2"}), (4, {"a": "6", "b": ""})]
    assert table.problems == [(3, "has 3 fields but the header has 2")]


def test_jsonl_malformed_line_is_listed_with_its_line_number(tmp_path):
    lines = ['{"instruction": "a", "output": "b"}', '{"instruction": "c", "output": ', "",
             '["not", "an", "object"]', '{"instruction": "e", "output": "f", "system": "s"}']
    table, rows = numbered(write(tmp_path, "d.jsonl", "\n".join(lines) + "\n"))
    assert table.columns == ["instruction", "output", "system"]
    assert [n for n, _ in rows] == [1, 5]
    assert [n for n, _ in table.problems] == [2, 4]
    assert "not valid JSON" in table.problems[0][1] and "list" in table.problems[1][1]


@pytest.mark.parametrize("payload", [
    [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}],
    {"text": ["a", "b"], "label": ["x", "y"]},
    {"data": [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]},
], ids=["array", "object-of-arrays", "data-key"])
def test_json_layouts_give_the_same_rows(tmp_path, payload):
    table, rows = numbered(write(tmp_path, "d.json", json.dumps(payload)))
    assert table.columns == ["text", "label"]
    assert rows == [(1, {"text": "a", "label": "x"}), (2, {"text": "b", "label": "y"})]


def test_json_with_unequal_columns_names_the_lengths(tmp_path):
    with pytest.raises(StudioError, match=r"different lengths \(a: 2, b: 1\)"):
        open_table(write(tmp_path, "d.json", '{"a": [1, 2], "b": [3]}'))


def test_json_lines_saved_as_json_still_read(tmp_path):
    table, rows = numbered(write(tmp_path, "d.json", '{"a": 1}\n{"a": 2}\n'))
    assert table.info["kind"] == "jsonl" and [r for _, r in rows] == [{"a": 1}, {"a": 2}]


def test_parquet_streams_record_batches(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"prompt": [f"p{i}" for i in range(5000)], "n": list(range(5000))}), path,
                   row_group_size=1000)
    calls = []
    table, rows = numbered(path, progress=lambda done, total: calls.append((done, total)))
    assert table.columns == ["prompt", "n"] and table.info["num_rows"] == 5000
    assert rows[0] == (1, {"prompt": "p0", "n": 0}) and rows[-1][0] == 5000
    assert calls and calls[-1][0] == calls[-1][1]


def test_xlsx_header_in_first_non_empty_row_and_dates_as_iso(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Data"
    sheet.append([])
    sheet.append(["question", "answer", "when", None])
    sheet.append(["2+2?", 4, dt.datetime(2024, 5, 1)])
    sheet.append([None, None, None])
    sheet.append(["time?", 1.5, dt.datetime(2024, 5, 1, 13, 30)])
    book.create_sheet("Other").append(["x"])
    book.save(tmp_path / "d.xlsx")
    table, rows = numbered(tmp_path / "d.xlsx")
    assert table.columns == ["question", "answer", "when"] and table.info["sheet"] == "Data"
    assert rows == [(3, {"question": "2+2?", "answer": 4, "when": "2024-05-01"}),
                    (5, {"question": "time?", "answer": 1.5, "when": "2024-05-01 13:30:00"})]
    with pytest.raises(StudioError, match="choose one of Data, Other"):
        open_table(tmp_path / "d.xlsx", sheet="Missing")


def test_text_document_and_paragraphs(tmp_path):
    path = write(tmp_path, "book.txt", "First para\nstill first.\n\n\nSecond.\r\n\r\nThird\n")
    doc, doc_rows = numbered(path, text_mode="document")
    assert doc.columns == ["text"] and doc_rows == [(1, {"text": "First para\nstill first.\n\n\nSecond.\n\nThird\n"})]
    _, paragraphs = numbered(path, text_mode="paragraphs")
    assert paragraphs == [(1, {"text": "First para\nstill first."}), (5, {"text": "Second."}), (7, {"text": "Third"})]
    table, default = numbered(path)  # a text file: one row per paragraph unless asked otherwise
    assert default == paragraphs and table.info["text_mode"] == "paragraphs"


def test_a_folder_of_texts_is_one_row_per_file_or_per_paragraph(tmp_path):
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.md").write_text("Bee one.\n\nBee two.\n", encoding="utf-8")
    (folder / "sub" / "a.txt").write_text("Alpha.\n", encoding="utf-8")
    (folder / "skip.csv").write_text("x,y\n1,2\n", encoding="utf-8")
    table, rows = numbered(folder)
    assert table.info["text_mode"] == "document" and table.info["files"] == 2
    assert rows == [(1, {"text": "Bee one.\n\nBee two.\n"}), (2, {"text": "Alpha.\n"})]
    _, paragraphs = numbered(folder, text_mode="paragraphs")
    assert [row["text"] for _, row in paragraphs] == ["Bee one.", "Bee two.", "Alpha."]
    (tmp_path / "empty").mkdir()
    with pytest.raises(StudioError, match="holds no .txt or .md file"):
        open_table(tmp_path / "empty")
    with pytest.raises(StudioError, match="use 'auto', 'document' or 'paragraphs'"):
        open_table(folder, text_mode="pages")


@pytest.mark.parametrize("name,data,why", [
    ("zero.csv", b"", "0 bytes"),
    ("blank.csv", b"  \n\n \t\n", "only blank lines"),
    ("header.csv", b"instruction,output\n\n", "header row"),
    ("blank.txt", b"\n\n", "only blank lines"),
    ("empty.json", b"[]", "no rows"),
])
def test_empty_files_are_refused_in_one_sentence(tmp_path, name, data, why):
    with pytest.raises(StudioError, match=f"'{name}' is empty .*{why}") as err:
        open_table(write(tmp_path, name, data))
    assert err.value.field == "data.file"


def test_binary_bytes_named_csv_are_refused(tmp_path):
    path = write(tmp_path, "x.csv", bytes(range(256)) * 64)
    with pytest.raises(StudioError, match=r"'x.csv' does not look like a CSV file \(it contains binary data"):
        open_table(path)


def test_zip_named_csv_suggests_xlsx(tmp_path):
    with zipfile.ZipFile(tmp_path / "book.csv", "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(StudioError, match="zip archive, perhaps an Excel workbook"):
        open_table(tmp_path / "book.csv")


def test_csv_named_xlsx_and_missing_file_are_refused(tmp_path):
    with pytest.raises(StudioError, match="does not look like a Excel"):
        open_table(write(tmp_path, "fake.xlsx", "a,b\n1,2\n"))
    with pytest.raises(StudioError, match="missing"):
        open_table(tmp_path / "nope.csv")


def test_bad_bytes_after_the_sniffed_head_give_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "SNIFF_BYTES", 64)
    path = write(tmp_path, "late.csv", b"a,b\n" + b"x,y\n" * 40 + b"caf\x81\x8d,z\n")
    table = open_table(path)
    with pytest.raises(StudioError, match="not valid utf-8 text at line 42"):
        read_all(table)


def test_preview_returns_first_rows_and_problems(tmp_path):
    path = write(tmp_path, "p.jsonl", "".join(json.dumps({"i": i}) + "\n" for i in range(50)) + "{bad\n")
    columns, rows, info = preview(path, n=3)
    assert columns == ["i"] and rows == [{"i": 0}, {"i": 1}, {"i": 2}] and info["kind"] == "jsonl"


def test_large_jsonl_streams_with_progress_and_bounded_memory(tmp_path):
    path = tmp_path / "big.jsonl"
    line = json.dumps({"instruction": "x" * 1000, "output": "y" * 1000}) + "\n"
    with path.open("w") as f:
        for i in range(10_000):
            f.write(line)
    size = path.stat().st_size
    assert size > 19_000_000
    calls = []
    tracemalloc.start()
    try:
        table = open_table(path, progress=lambda done, total: calls.append((done, total)))
        count = sum(1 for _ in table.rows)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10_000
    assert len(calls) >= 5 and calls[-1] == (size, size)
    assert all(a[0] <= b[0] for a, b in zip(calls, calls[1:]))
    assert peak < size / 5, f"peak {peak} bytes for a {size}-byte file"


def test_file_without_extension_is_sniffed(tmp_path):
    table, rows = numbered(write(tmp_path, "export", '{"a": 1}\n{"a": 2}\n'))
    assert table.info["kind"] == "jsonl" and len(rows) == 2
    assert open_table(write(tmp_path, "export2", "a;b\n1;2\n")).info["delimiter"] == ";"


@pytest.mark.parametrize("text,match", [
    ('{"a": 1, "b": 2}', "not a list of rows"),
    ('[{"a": 1},', "not valid JSON"),
])
def test_json_that_is_not_a_table_is_refused(tmp_path, text, match):
    with pytest.raises(StudioError, match=match):
        open_table(write(tmp_path, "d.json", text))


def test_csv_field_longer_than_the_csv_module_default_is_read(tmp_path):
    long_text = "word " * 60_000  # 300 kB, above the csv module's 128 KiB default
    _, rows = numbered(write(tmp_path, "long.csv", f'text,label\n"{long_text}",ok\n'))
    assert rows == [(2, {"text": long_text, "label": "ok"})]
