"""Evaluation of models and runs (studio.evaluation and `studio eval`) on tiny random Llamas with the real tokenizer."""
from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

import pytest

from studio.errors import StudioError
from studio.evaluation import evaluate, parse_metrics, word_diff
from studio.jobs.records import JobRecords

from tests.engine.test_classify import classify_recipe
from tests.engine.test_training import run_in_process, tiny_recipe


@pytest.fixture
def finished_run(workspace, tiny_llama_dir) -> str:
    run_id, _, result = run_in_process(workspace, tiny_recipe(tiny_llama_dir, "lora", max_steps=2))
    workspace.update_run(run_id, status="completed", result_dir=result["result_dir"])
    return run_id


def test_base_run_and_in_context_baselines_are_scored_saved_and_compared(workspace, tiny_llama_dir, finished_run):
    result = evaluate(workspace, [str(tiny_llama_dir), f"run:{finished_run}"], "sample-format-tutor",
                      split="validation", limit=3, shots=[0, 2], forgetting=True, max_new_tokens=8)
    assert result["n"] == 3 and result["columns"] == ["rouge1", "rouge2", "rougeL", "bleu", "exact_match",
                                                       "perplexity"]
    kinds = [(r["kind"], r["shots"]) for r in result["rows"]]
    assert kinds == [("model", 0), ("run", 0), ("in-context", 2)]  # zero-shot base: already the first row
    for row in result["rows"]:
        assert 0 <= row["rougeL"] <= 1 and 0 <= row["bleu"] <= 100 and row["perplexity"] > 1
    labels = [r["target"] for r in result["rows"]]
    example = result["examples"][0]
    assert example["reference"] and set(example["outputs"]) == set(labels) and example["spread"] >= 0
    # Each example carries every requested metric per target, and which targets missed it.
    assert set(example["scores"][labels[0]]) == {"rougeL", "bleu", "exact_match"}
    assert example["missed"] == [label for label in labels if not example["scores"][label]["exact_match"]]
    assert result["limit"] == 3 and result["available"] >= 3
    # The run's forgetting row compares it with its own base on the general text.
    run_row = next(f for f in result["forgetting"] if f["base"])
    assert run_row["base"] == str(tiny_llama_dir) and run_row["change"] == pytest.approx(
        run_row["perplexity"] / run_row["base_perplexity"] - 1)
    saved = Path(result["saved"])
    assert json.loads(saved.read_text())["rows"] == result["rows"]
    assert (Path(workspace.get_run(finished_run)["run_dir"]) / "evaluations" / saved.name).exists()


def test_only_perplexity_needs_no_generation(workspace, tiny_llama_dir):
    result = evaluate(workspace, [str(tiny_llama_dir)], "sample-format-tutor", split="validation", metrics="ppl",
                      limit=2)
    assert list(result["rows"][0]) == ["target", "kind", "shots", "perplexity"] and not result["examples"][0]["outputs"]


def test_runs_that_cannot_be_evaluated_and_bad_settings_are_refused(workspace, tiny_llama_dir, finished_run):
    queued, _, _ = run_in_process(workspace, tiny_recipe(tiny_llama_dir, "lora", max_steps=1))
    with pytest.raises(StudioError, match="is queued; only a completed run") as info:
        evaluate(workspace, [f"run:{queued}"], "sample-format-tutor")
    assert info.value.field == "targets"
    workspace.update_run(finished_run, stage="seq2seq")
    with pytest.raises(StudioError, match="seq2seq run, which this evaluation does not cover"):
        evaluate(workspace, [finished_run], "sample-format-tutor")
    with pytest.raises(StudioError, match="Unknown metric"):
        parse_metrics("rouge,meteor")
    with pytest.raises(StudioError, match="Split 'dev' does not exist"):
        evaluate(workspace, [str(tiny_llama_dir)], "sample-format-tutor", split="dev")
    with pytest.raises(StudioError, match="at least one model"):
        evaluate(workspace, [], "sample-format-tutor")


def test_word_diff_marks_what_the_output_adds_and_drops():
    assert word_diff("the cat sat on the mat", "the dog sat on the mat today") == [
        ("same", "the"), ("removed", "cat"), ("added", "dog"), ("same", "sat on the mat"), ("added", "today")]


def test_studio_eval_prints_a_table_and_saves(workspace, tiny_llama_dir, monkeypatch, capsys):
    from studio.cli import main

    monkeypatch.setenv("STUDIO_HOME", str(workspace.home))
    assert main(["eval", str(tiny_llama_dir), "--data", "sample-format-tutor", "--split", "validation",
                 "--limit", "2", "--metrics", "rouge,ppl", "--max-new-tokens", "4", "--misses", "1"]) == 0
    out = capsys.readouterr().out
    assert "rougeL" in out and "perplexity" in out and "Saved to" in out
    assert "validation: the first 2 of " in out and "(--limit 2; leave it out to score them all)" in out
    assert "examples missed by at least one target" in out and "  reference: " in out
    assert main(["eval", "no-such-run-or-model", "--data", "sample-format-tutor"]) == 1
    failed, done = JobRecords(workspace).list(kind="evaluate")  # newest first: `studio jobs` sees both
    assert done["status"] == "completed" and done["result"]["n"] == 2 and done["result"]["saved"] in out
    assert done["params"]["limit"] == 2 and done["title"] == f"{tiny_llama_dir} on sample-format-tutor"
    assert failed["status"] == "failed" and "no-such-run-or-model" in failed["error"]


def test_a_data_file_is_scored_whole_and_without_a_limit_every_row_is(workspace, tiny_llama_dir, tmp_path, monkeypatch,
                                                                      capsys):
    from studio.cli import main

    path = tmp_path / "held-out.jsonl"
    path.write_text("".join(json.dumps({"instruction": f"Say {i}.", "output": f"{i}"}) + "\n" for i in range(7)),
                    encoding="utf-8")
    seen = []
    result = evaluate(workspace, [str(tiny_llama_dir)], str(path), metrics="em", max_new_tokens=2,
                      rows_done=lambda target, done, total: seen.append((done, total)))
    assert result["split"] == "file" and result["n"] == result["available"] == 7 and result["limit"] is None
    assert seen[-1] == (7, 7) and all(total == 7 for _, total in seen)
    monkeypatch.setenv("STUDIO_HOME", str(workspace.home))
    assert main(["eval", str(tiny_llama_dir), "--data", str(path), "--metrics", "em", "--max-new-tokens", "2"]) == 0
    assert f"{path} / the whole file: 7 examples" in capsys.readouterr().out


def test_json_errors_are_one_json_object(workspace, monkeypatch, capsys):
    from studio.cli import main

    monkeypatch.setenv("STUDIO_HOME", str(workspace.home))
    assert main(["eval", "no-such-run-or-model", "--data", "sample-format-tutor", "--json"]) == 1
    out = capsys.readouterr().out
    error = json.loads(out)
    assert "no-such-run-or-model" in error["error"] and error["field"] == "model" and error["key"]


def test_an_evaluation_cancelled_through_its_job_row_stops_and_is_retried(workspace, tiny_llama_dir, monkeypatch,
                                                                         capsys):
    from studio.cli_jobs import cmd_retry
    from studio.engine import Engine

    records = JobRecords(workspace)

    def cancel_from_elsewhere(message):  # `studio jobs cancel ID` while the first target is about to start
        records.request_cancel(records.list(kind="evaluate", active_only=True)[0]["id"])

    engine = Engine(workspace, start_jobs=False)
    with pytest.raises(StudioError, match="evaluation was cancelled") as info:
        engine.evaluate([str(tiny_llama_dir)], "sample-format-tutor", split="validation", metrics="ppl", limit=2,
                        emit=cancel_from_elsewhere)
    assert info.value.key == "eval.cancelled"
    [row] = records.list(kind="evaluate")
    assert row["status"] == "cancelled" and row["phase"].startswith("Evaluating")
    monkeypatch.setenv("STUDIO_HOME", str(workspace.home))
    assert cmd_retry(Namespace(job_id=str(row["id"]))) == 0
    assert records.list(kind="evaluate")[0]["status"] == "completed"
    assert json.loads(capsys.readouterr().out)["rows"][0]["perplexity"] > 1


def test_classification_runs_get_accuracy_f1_and_a_confusion_matrix(workspace, tiny_bert_dir, tiny_llama_dir):  # noqa: F811
    ids = []
    for method in ("full", "lora"):
        run_id, _, result = run_in_process(workspace, classify_recipe(tiny_bert_dir, method))
        workspace.update_run(run_id, status="completed", result_dir=result["result_dir"])
        ids.append(run_id)
    result = evaluate(workspace, ids, "sample-sentiment", split="validation", limit=20)
    assert result["columns"] == ["accuracy", "f1"] and result["n"] == 20 and result["example_score"] == "correct"
    for row in result["rows"]:
        matrix = result["confusion"][row["target"]]["matrix"]
        assert sum(map(sum, matrix)) == 20
        assert row["accuracy"] == pytest.approx((matrix[0][0] + matrix[1][1]) / 20)
    example = result["examples"][0]
    assert example["reference"] in ("neg", "pos") and set(example["outputs"].values()) <= {"neg", "pos"}
    with pytest.raises(StudioError, match="evaluate them separately"):
        evaluate(workspace, [ids[0], str(tiny_llama_dir)], "sample-sentiment")
