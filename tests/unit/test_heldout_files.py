"""`data import --test FILE / --validation FILE`: a separate file becomes a held-out split whole."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from studio.data.builder import ImportRequest, import_dataset, load_split
from studio.errors import StudioError

ROWS = [json.loads(line) for line in (Path(__file__).resolve().parents[2] / "assets" / "sample-sentiment.jsonl")
        .read_text(encoding="utf-8").splitlines()]


def write_csv(path: Path, rows: list[dict], fields=("text", "label")) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_test_file_becomes_the_test_split_whole_and_the_counts_add_up(workspace, tmp_path):
    train = write_csv(tmp_path / "train.csv", ROWS[:100])
    test = write_csv(tmp_path / "test.csv", ROWS[95:120] + [{"text": "", "label": "pos"}])  # 5 repeat training rows
    result = import_dataset(workspace, ImportRequest(source=str(train), name="senti", heldout={"test": str(test)}))
    assert result.splits["test"] == 25 and result.heldout["test"]["skipped"] == 1
    assert result.heldout["test"] == {"file": "test.csv", "read": 26, "rows": 25, "skipped": 1, "removed": 0,
                                      "overlap": 5}
    assert result.splits["train"] + result.splits["validation"] == 95 == result.imported
    assert result.read == result.imported + result.skipped + sum(result.removed().values())  # 100 = 95 + 0 + 5
    assert "5 repeated in a held-out file" in result.summary()
    assert result.summary().endswith("; test from test.csv: 25 rows (1 skipped)")
    texts = [r["text"] for r in load_split(workspace, "senti", "test")]
    assert texts == [r["text"] for r in ROWS[95:120]]  # in the file's order, nothing carved from train.csv
    held = {r["text"] for r in ROWS[95:120]}
    assert not held & {r["text"] for part in ("train", "validation") for r in load_split(workspace, "senti", part)}


def test_a_validation_file_replaces_the_validation_share(workspace, tmp_path):
    train = write_csv(tmp_path / "train.csv", ROWS[:80])
    valid = write_csv(tmp_path / "valid.csv", ROWS[80:100])
    result = import_dataset(workspace, ImportRequest(source=str(train), name="v", heldout={"validation": str(valid)}))
    assert result.splits["train"] == 80 and result.splits["validation"] == 20 and not result.splits.get("test")
    assert "validation from valid.csv: 20 rows" in result.summary()


def test_a_held_out_file_without_the_columns_is_named_in_one_sentence(workspace, tmp_path):
    train = write_csv(tmp_path / "train.csv", ROWS[:40])
    bad = write_csv(tmp_path / "bad.csv", [{"foo": 1, "bar": 2}], fields=("foo", "bar"))
    with pytest.raises(StudioError) as error:
        import_dataset(workspace, ImportRequest(source=str(train), name="x", heldout={"test": str(bad)}))
    assert error.value.field == "--test" and "'bad.csv' does not have the columns" in str(error.value)
    with pytest.raises(StudioError):
        import_dataset(workspace, ImportRequest(source=str(train), name="x", heldout={"train": str(train)}))


def test_studio_data_import_takes_test_and_validation_files(workspace, tmp_path, capsys):
    from studio.cli import main

    train = write_csv(tmp_path / "train.csv", ROWS[:60])
    test = write_csv(tmp_path / "other-phrasings.csv", ROWS[100:120])
    assert main(["data", "import", str(train), "--name", "cli", "--test", str(test), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["splits"]["test"] == 20 and out["heldout"]["test"]["file"] == "other-phrasings.csv"


def test_the_data_tab_sends_its_held_out_files_and_words_them_in_spanish(workspace, tmp_path):
    from studio.ui.data_forms import import_request
    from studio.ui.data_tab import saved_note
    from studio.ui.i18n import Texts

    train = write_csv(tmp_path / "train.csv", ROWS[:60])
    test = write_csv(tmp_path / "prueba.csv", ROWS[100:120])
    request = import_request(str(train), "tab", "auto", [], "chat", "", {}, {}, {"test": str(test)})
    assert request.heldout == {"test": str(test)}
    note = saved_note(import_dataset(workspace, request), Texts.load(), "es")
    assert "prueba desde prueba.csv: 20 filas" in note
