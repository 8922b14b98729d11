"""Merging two finished LoRA runs (peft's add_weighted_adapter) makes a new completed run that loads like any other:
a weight of 1 and 0 gives back the first run's outputs, TIES/DARE merges load and generate, and mismatched runs are
refused with a sentence."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from studio.errors import StudioError
from studio.merge_runs import merge_runs
from tests.engine.test_training import run_in_process, tiny_recipe


def finished(ws, model_dir, dataset: str, **method) -> str:
    recipe = tiny_recipe(model_dir, "lora")
    recipe.data.dataset = dataset
    for key, value in method.items():
        setattr(recipe.method, key, value)
    run_id, _, result = run_in_process(ws, recipe)
    ws.update_run(run_id, status="completed", result_dir=result["result_dir"])  # what the job manager does
    return run_id


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, tiny_llama_dir):
    from studio.workspace import Workspace

    ws = Workspace.open(tmp_path_factory.mktemp("merge-ws"))
    return ws, finished(ws, tiny_llama_dir, "sample-format-tutor"), finished(ws, tiny_llama_dir, "sample-extract-json")


def logits(ws, run_id: str) -> torch.Tensor:
    from studio.methods import METHODS
    from studio.models.loading import load_causal_lm

    run = ws.get_run(run_id)
    base, tokenizer = load_causal_lm(run["model"], ws, precision="fp32", for_training=False)
    model = METHODS.get(run["method"]).load_result(base, Path(run["result_dir"])).eval()
    with torch.no_grad():
        return model(**tokenizer("Turn this into a list: eggs, milk", return_tensors="pt")).logits


def test_a_merge_is_a_completed_run_and_weight_one_gives_back_the_first_task(two_runs):
    ws, tutor, extract = two_runs
    merged = merge_runs(ws, [tutor, f"run:{extract}"], combination="cat", weights=[1.0, 0.0], name="soup")
    run = ws.get_run(merged)
    assert run["status"] == "completed" and run["method"] == "lora" and run["name"] == "soup"
    assert run["dataset"] == "sample-format-tutor + sample-extract-json"
    info = json.loads((Path(run["run_dir"]) / "merge.json").read_text())
    assert info["combination"] == "cat" and [s["run_id"] for s in info["sources"]] == [tutor, extract]
    assert torch.allclose(logits(ws, merged), logits(ws, tutor), atol=1e-4)
    assert not torch.allclose(logits(ws, merged), logits(ws, extract), atol=1e-4)


@pytest.mark.parametrize("combination", ["linear", "ties", "dare_ties"])
def test_each_combination_makes_a_run_that_loads_and_moves_the_base(two_runs, combination):
    ws, tutor, extract = two_runs
    merged = merge_runs(ws, [tutor, extract], combination=combination, weights=[0.7, 0.7], density=0.5)
    out = logits(ws, merged)
    assert torch.isfinite(out).all() and not torch.allclose(out, logits(ws, tutor), atol=1e-4)


def test_mismatched_or_too_few_runs_are_refused(two_runs, tiny_llama_dir):
    ws, tutor, extract = two_runs
    before = len(ws.list_runs())
    with pytest.raises(StudioError, match="at least two"):
        merge_runs(ws, [tutor])
    with pytest.raises(StudioError, match="one weight per run"):
        merge_runs(ws, [tutor, extract], weights=[1.0])
    with pytest.raises(StudioError, match="density"):
        merge_runs(ws, [tutor, extract], combination="ties", density=0)
    wider = finished(ws, tiny_llama_dir, "sample-format-tutor", r=4)
    with pytest.raises(StudioError, match="use 'cat'"):
        merge_runs(ws, [tutor, wider], combination="ties")
    assert len(ws.list_runs()) == before + 1  # only the wider run was added


def test_the_cli_merges_and_scores_each_task_before_and_after(two_runs, monkeypatch, capsys):
    from studio.cli import main

    ws, tutor, extract = two_runs
    monkeypatch.setenv("STUDIO_HOME", str(ws.home))
    assert main(["runs", "merge", tutor, extract, "--combination", "ties", "--weights", "1,1", "--eval",
                 "--limit", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert ws.get_run(out["run_id"])["status"] == "completed"
    assert [row["task"] for row in out["scores"]] == ["sample-format-tutor", "sample-extract-json"]
    for row in out["scores"]:
        assert row["n"] == 2 and 0 <= row["before"] <= 1 and 0 <= row["after"] <= 1
    assert main(["runs", "merge", tutor, extract, "--weights", "a,b", "--json"]) == 1
    assert "give numbers separated by commas" in capsys.readouterr().out
