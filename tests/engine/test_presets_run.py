"""Each preset in `presets/` trains as it is written on the embedded models (a few steps, its own stage, data and
method), evaluates, and saves a result: what `studio train presets/x.yaml` and the guided path start."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from studio.config import load_recipe
from studio.guide import GOALS, presets
from tests.engine.test_training import run_in_process


@pytest.mark.slow
@pytest.mark.parametrize("goal", GOALS)
def test_each_preset_trains_as_written_on_the_embedded_models(goal, workspace):
    # A few short steps and a small validation share: the preset's model, stage, data and method, not its length.
    short = ["train.max_steps=2", "train.batch_size=1", "train.eval_every=2", "train.save_every=2",
             "train.eval_samples=0", "data.max_length=128", "data.validation=0.02"]
    recipe = load_recipe(presets()[goal].path, short)
    _, events, result = run_in_process(workspace, recipe)
    losses = [e["loss"] for e in events if "loss" in e]
    assert result["steps"] == 2 and len(losses) == 2 and all(math.isfinite(x) for x in losses), goal
    assert any(math.isfinite(e["eval_loss"]) for e in events if "eval_loss" in e), goal
    assert Path(result["result_dir"]).is_dir()


@pytest.mark.slow
def test_studio_guide_writes_a_recipe_that_studio_train_reads(workspace, tmp_path, capsys):
    from studio.cli import main

    out = tmp_path / "extract.yaml"
    assert main(["guide", "extract", "--write", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Extract fields as JSON: Extraction is a format to learn") and "GB free here." in printed
    assert "Methods that fit this goal: LoRA" in printed
    recipe = load_recipe(out)
    assert recipe.stage == "sft" and recipe.data.dataset == "sample-extract-json" and recipe.method.name == "lora"
