"""Dataset statistics: exact column stats, training-identical token counts, truncation, epoch estimates."""
from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from studio.data.stats import (column_stats, dataset_report, estimate_epoch_seconds, histogram_figure,
                               length_report, measured_tokens_per_s, token_lengths)
from studio.errors import StudioError

CFG = SimpleNamespace(system_prompt="", train_on_prompt=False, multi_turn="all", max_length=512, seed=0)


@pytest.fixture(scope="module")
def tok(smollm2_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)


def test_column_stats_are_exact_on_handmade_records():
    records = [
        {"text": "good film", "label": "pos"},
        {"text": "bad", "label": "neg"},
        {"text": "  ", "label": "pos"},
        {"text": "fine enough", "label": "pos"},
        {"label": None},
    ]
    text, label = column_stats(records)
    assert text == {"name": "text", "kind": "text", "non_empty": 3, "empty": 2, "distinct": 3,
                    "distinct_capped": False, "min_chars": 3, "mean_chars": round(23 / 3, 1), "max_chars": 11,
                    "top": []}
    assert label["non_empty"] == 4 and label["empty"] == 1 and label["distinct"] == 2
    assert label["top"] == [["pos", 3], ["neg", 1]]
    assert (label["min_chars"], label["max_chars"]) == (3, 3)


def test_column_stats_count_conversations_by_turn_text_and_bools_as_labels():
    chats = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
              "ok": True},
             {"messages": [], "ok": False},
             {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "ok": True}]
    messages, ok = column_stats(chats)
    assert messages["kind"] == "conversation" and messages["empty"] == 1 and messages["top"] == []
    assert (messages["min_chars"], messages["max_chars"]) == (2, 7)
    assert ok["kind"] == "bool" and ok["top"] == [[True, 2], [False, 1]]


def test_distinct_count_is_capped(monkeypatch):
    import studio.data.stats as stats

    monkeypatch.setattr(stats, "DISTINCT_CAP", 3)
    (col,) = column_stats([{"x": str(i)} for i in range(10)])
    assert col["distinct"] == 3 and col["distinct_capped"] and col["top"] == []


@pytest.mark.parametrize("template", ["alpaca", "chat", "flan"])
def test_token_lengths_equal_the_training_tokenisation(tok, template):
    from studio.data.template_store import get_template
    from studio.data.templates import IGNORE_INDEX, render_example, tokenize_rendered

    records = [{"instruction": "Name a colour.", "input": "", "output": "Blue."},
               {"instruction": "Translate", "input": "gato " * 200, "output": "cat " * 150}]
    counts = token_lengths(records, tok, template, CFG, "instruction")
    for index, record in enumerate(records):
        rendered = render_example(get_template(template), record, seed=0, index=index)
        row = tokenize_rendered(tok, rendered, 10**6)
        assert counts.lengths[index] == len(row["input_ids"])
        assert counts.loss_tokens[index] == sum(label != IGNORE_INDEX for label in row["labels"])
    assert counts.lengths[1] > 512  # not cut at the config's max_length


def test_token_lengths_of_raw_text_and_preference_pairs(tok):
    text = token_lengths([{"text": "Once upon a time"}], tok, "chat", CFG, "text")
    n = len(tok("Once upon a time", add_special_tokens=False)["input_ids"]) + 1
    assert text.lengths == [n] and text.loss_tokens == [n]
    short = {"prompt": "Q?", "chosen": "Yes.", "rejected": "No, because " + "really " * 30, "system": ""}
    pair = token_lengths([short], tok, "chat", CFG, "preference")
    rejected = token_lengths([{"instruction": "Q?", "output": short["rejected"]}], tok, "chat", CFG, "instruction")
    assert pair == rejected  # the longer answer decides


def test_truncated_share_counts_examples_longer_than_max_length():
    report = length_report([10, 20, 100, 101, 300], [1, 2, 3, 4, 5], max_length=100)
    assert report["truncated"] == 2 and report["truncated_share"] == pytest.approx(0.4)
    assert report["total_tokens"] == 531 and report["trained_tokens"] == 330 and report["total_loss_tokens"] == 15
    assert (report["p50"], report["p90"], report["p99"], report["max"]) == (100, 300, 300, 300)


def test_histogram_counts_sum_to_count():
    lengths = [7 * i % 997 + 3 for i in range(250)]
    report = length_report(lengths, [1] * 250, max_length=512)
    hist = report["histogram"]
    assert sum(hist["counts"]) == report["count"] == 250
    assert len(hist["edges"]) == len(hist["counts"]) + 1 and len(hist["counts"]) <= 30
    assert hist["edges"][0] <= min(lengths) and hist["edges"][-1] > max(lengths)
    assert length_report([], [], 64)["histogram"] == {"edges": [], "counts": []}


def test_histogram_figure_marks_max_length_and_names_the_cut_share():
    fig = histogram_figure(length_report([10, 20, 100, 101, 300], [1] * 5, max_length=100))
    assert sum(fig.data[0].y) == 5
    assert fig.layout.shapes[0].x0 == 100
    assert "40.0%" in fig.layout.title.text


def _finished_run(ws, tmp_path, run_id, model, method, tokens_per_s, status="completed"):
    run_dir = tmp_path / run_id
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps({"tokens_per_s": tokens_per_s}), encoding="utf-8")
    ws.insert_run(dict(id=run_id, name=run_id, model=model, stage="sft", method=method, dataset="d",
                       status=status, run_dir=str(run_dir), created_at=time.time()))


def test_epoch_estimate_uses_median_throughput_of_finished_runs(workspace, tmp_path):
    _finished_run(workspace, tmp_path, "a", "smollm2-135m-instruct", "lora", 1000.0)
    _finished_run(workspace, tmp_path, "b", "smollm2-135m-instruct", "lora", 3000.0)
    _finished_run(workspace, tmp_path, "c", "smollm2-135m-instruct", "full", 50.0)
    _finished_run(workspace, tmp_path, "d", "other-model", "lora", 9.0)
    _finished_run(workspace, tmp_path, "e", "smollm2-135m-instruct", "lora", 1.0, status="failed")
    speed = measured_tokens_per_s(workspace, "smollm2-135m-instruct", "lora")
    assert speed == 2000.0
    assert estimate_epoch_seconds(10_000, speed) == 5.0
    # No run with the method: any method of the same model.
    assert measured_tokens_per_s(workspace, "smollm2-135m-instruct", "qlora") == 1000.0  # of 50, 1000, 3000


def test_no_finished_run_means_no_estimate(workspace):
    assert measured_tokens_per_s(workspace, "smollm2-135m-instruct", "lora") is None
    with pytest.raises(StudioError):
        estimate_epoch_seconds(100, 0)


def test_dataset_report_on_an_imported_dataset(workspace, tmp_path, tok):
    from studio.data.builder import ImportRequest, import_dataset
    from studio.data.cleaning import SplitConfig

    path = tmp_path / "qa.jsonl"
    rows = [{"instruction": f"Question {i}?", "output": "An answer. " * (i * 10 + 1)} for i in range(12)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    import_dataset(workspace, ImportRequest(source=str(path), name="qa", template="alpaca",
                                            split=SplitConfig(validation=0.0)))
    report = dataset_report(workspace, "qa", tok, max_length=128)
    assert report["format"] == "instruction" and report["template"] == "alpaca" and report["rows"] == 12
    assert [c["name"] for c in report["columns"]][:2] == ["instruction", "output"]
    lengths = report["lengths"]
    assert lengths["count"] == 12 and sum(lengths["histogram"]["counts"]) == 12
    assert 0 < lengths["truncated"] < 12
    assert report["tokens_per_s"] is None and report["epoch_seconds"] is None
    _finished_run(workspace, tmp_path, "r1", "smollm2-135m-instruct", "lora", 100.0)
    again = dataset_report(workspace, "qa", tok, max_length=128)
    assert again["epoch_seconds"] == pytest.approx(lengths["trained_tokens"] / 100.0)
    assert "would be cut" in histogram_figure(again).layout.title.text
