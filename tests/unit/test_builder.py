"""The dataset builder end to end: messy file in, versioned Parquet dataset with a card out."""
from __future__ import annotations

import json

import pytest

from studio.data.builder import (ImportRequest, dataset_card, export_dataset, import_dataset, inspect_source,
                                 list_datasets, load_split)
from studio.data.cleaning import CleaningConfig, SplitConfig
from studio.errors import StudioError

CSV = ('pregunta;respuesta;tema\n'
       '"¿Qué es el IVA?";"Un impuesto; se paga al comprar.";dinero\n'
       '"Dos líneas";"primera\nsegunda";texto\n'
       '"Vacía";"";x\n'
       '"¿Qué es el IVA?";"Un impuesto; se paga al comprar.";dinero\n')


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_inspect_guesses_format_and_mapping_before_saving(tmp_path):
    path = write(tmp_path, "faq.csv", "question,answer\nA?,B\nC?,D\n")
    preview = inspect_source(str(path))
    assert preview.guess.format == "instruction"
    assert preview.guess.mapping == {"instruction": "question", "output": "answer"}
    assert len(preview.rows) == 2


def test_import_maps_cleans_reports_problems_and_versions(workspace, tmp_path):
    path = write(tmp_path, "faq.csv", CSV, "cp1252")
    req = ImportRequest(source=str(path), name="faq", format="instruction",
                        mapping={"instruction": "pregunta", "output": "respuesta"},
                        split=SplitConfig(validation=0.0))
    result = import_dataset(workspace, req)
    assert result.imported == 2 and result.skipped == 1
    assert result.problems == [(5, "'output' is empty")]  # the record starts on line 5 (line 3 spans two lines)
    assert result.cleaning["dropped_duplicates"] == 1
    # The counts add up to the rows read, and the summary names the duplicate it dropped.
    assert result.read == 4 == result.imported + result.skipped + sum(result.removed().values())
    assert result.summary() == ("4 rows read: 2 imported, 1 skipped (see list), 1 removed by cleaning "
                                "(1 exact duplicates) -> faq v1")
    train = load_split(workspace, "faq")
    assert {r["output"] for r in train} == {"Un impuesto; se paga al comprar.", "primera\nsegunda"}
    assert import_dataset(workspace, req).version == 2
    assert [d["version"] for d in list_datasets(workspace)] == [2]
    card = dataset_card(workspace, "faq", 1)
    assert card["mapping"]["output"] == "respuesta" and card["source_info"]["encoding"]


def test_a_text_file_becomes_a_row_per_paragraph_and_says_so(workspace, tmp_path):
    text = "\n\n".join(f"Paragraph {i} line one.\nline two of {i}." for i in range(12))
    path = write(tmp_path, "notes.txt", text)
    result = import_dataset(workspace, ImportRequest(source=str(path), name="corpus"))
    assert result.format == "text" and result.read == 12 and result.imported == 12
    assert result.summary().endswith("-> corpus v1; text: one row per paragraph")
    assert sum(result.splits.values()) == 12 and result.splits["validation"] >= 1


def test_saved_dataset_loads_with_the_datasets_library(workspace, tmp_path):
    from datasets import load_dataset

    rows = "".join(json.dumps({"text": f"review {i}", "label": "pos" if i % 2 else "neg"}) + "\n" for i in range(40))
    path = write(tmp_path, "reviews.jsonl", rows)
    result = import_dataset(workspace, ImportRequest(source=str(path), name="reviews",
                                                     split=SplitConfig(validation=0.25)))
    assert result.format == "classification" and result.splits["validation"] == 10
    ds = load_dataset("parquet", data_files={"train": f"{result.path}/train.parquet"})["train"]
    assert ds.num_rows == 30 and set(ds["label"]) == {"pos", "neg"}


def test_missing_column_names_the_columns_that_exist(workspace, tmp_path):
    path = write(tmp_path, "x.csv", "q,a\n1,2\n")
    with pytest.raises(StudioError, match="the file has columns q, a"):
        import_dataset(workspace, ImportRequest(source=str(path), name="x", format="instruction"))
    assert list_datasets(workspace) == []


def test_cleaning_that_removes_everything_saves_nothing(workspace, tmp_path):
    path = write(tmp_path, "x.jsonl", '{"instruction": "a", "output": "b"}\n')
    req = ImportRequest(source=str(path), name="x", cleaning=CleaningConfig(min_chars=1000),
                        split=SplitConfig(validation=0.0))
    with pytest.raises(StudioError, match="Cleaning removed every row"):
        import_dataset(workspace, req)
    assert list_datasets(workspace) == []


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_export_round_trips(workspace, tmp_path, fmt):
    path = write(tmp_path, "faq.jsonl", '{"instruction": "a", "output": "b, c"}\n{"instruction": "d", "output": "e"}\n')
    import_dataset(workspace, ImportRequest(source=str(path), name="faq", split=SplitConfig(validation=0.0)))
    out = export_dataset(workspace, "faq", tmp_path / f"out.{fmt}")
    preview = inspect_source(str(out))
    assert preview.guess.format == "instruction" and len(preview.rows) == 2


def test_bad_dataset_name_is_refused(workspace, tmp_path):
    path = write(tmp_path, "faq.jsonl", '{"instruction": "a", "output": "b"}\n')
    with pytest.raises(StudioError, match="not valid"):
        import_dataset(workspace, ImportRequest(source=str(path), name="../evil"))


def test_hub_id_offline_says_so(workspace, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(StudioError, match="offline, so hub dataset 'tatsu-lab/alpaca'"):
        import_dataset(workspace, ImportRequest(source="tatsu-lab/alpaca", name="alpaca"))


def test_large_imports_stream_and_split_like_small_ones(workspace, tmp_path, monkeypatch):
    import studio.data.builder as builder

    rows = "".join(json.dumps({"text": f"review number {i}", "label": ["pos", "neg", "mid"][i % 3]}) + "\n"
                   for i in range(300)) + "{broken\n" + json.dumps({"text": "review number 1", "label": "neg"}) + "\n"
    path = write(tmp_path, "reviews.jsonl", rows)
    monkeypatch.setattr(builder, "SPOOL_BATCH", 64)
    monkeypatch.setattr(builder, "IN_MEMORY_ROWS", 50)  # force the streaming split path
    result = import_dataset(workspace, ImportRequest(source=str(path), name="big", split=SplitConfig(validation=0.2)))
    assert result.skipped == 1 and result.problems == [(301, result.problems[0][1])]
    assert result.cleaning["dropped_duplicates"] == 1 and result.imported == 300  # the last row repeats row 2
    val = load_split(workspace, "big", "validation")
    assert result.splits == {"train": 240, "validation": 60} and len(val) == 60
    assert {lab: sum(r["label"] == lab for r in val) for lab in ("pos", "neg", "mid")} == {"pos": 20, "neg": 20,
                                                                                           "mid": 20}
    assert not list((workspace.datasets_dir / "big").glob(".spool*"))  # the spool files are gone


def test_mixing_two_datasets_records_the_mix_in_the_card(workspace, tmp_path):
    from studio.data.builder import mix_datasets

    faq = write(tmp_path, "faq.jsonl", "".join(json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) + "\n"
                                               for i in range(30)))
    chat = write(tmp_path, "chat.jsonl", "".join(json.dumps({"messages": [{"role": "user", "content": f"hi {i}"},
                                                                          {"role": "assistant", "content": "yo"}]})
                                                 + "\n" for i in range(30)))
    no_split = SplitConfig(validation=0.0)
    import_dataset(workspace, ImportRequest(source=str(faq), name="faq", split=no_split))
    import_dataset(workspace, ImportRequest(source=str(chat), name="chitchat", split=no_split))
    result = mix_datasets(workspace, "multi", [("faq", 20), ("chitchat", 0.2)], SplitConfig(validation=0.1))
    card = dataset_card(workspace, "multi")
    assert result.format == "chat" and result.imported == 25
    assert [(m["name"], m["taken"]) for m in card["mix"]] == [("faq", 20), ("chitchat", 5)]
    rows = load_split(workspace, "multi") + load_split(workspace, "multi", "validation")
    assert sum(r["messages"][0]["content"].startswith("q") for r in rows) == 20


def test_samples_and_studio_datasets_are_sources_too(workspace):
    result = import_dataset(workspace, ImportRequest(source="sample-format-tutor", name="tutor"))
    assert result.format == "instruction" and result.imported == 245
    again = import_dataset(workspace, ImportRequest(source="tutor", name="tutor-short", template="alpaca",
                                                    cleaning=CleaningConfig(max_chars=300)))
    assert again.format == "instruction" and 0 < again.imported < 245
