"""The job manager with the real trainer on a tiny model: cancel keeps a checkpoint, resume finishes the run."""
from __future__ import annotations

import time

import pytest
from pathlib import Path

from studio.jobs import JobManager, latest_checkpoint
from studio.training import prepare_run
from studio.workspace import read_metrics

from tests.engine.test_training import tiny_recipe


def wait_for(predicate, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    raise TimeoutError


def test_real_run_cancelled_mid_training_resumes_to_completion(workspace, tiny_llama_dir):
    recipe = tiny_recipe(tiny_llama_dir, "lora", max_steps=400, save_every=1000, eval_every=1000)
    run_id = prepare_run(workspace, recipe)
    manager = JobManager(workspace).start()
    try:
        manager.submit(run_id)
        wait_for(lambda: (workspace.get_run(run_id)["step"] or 0) >= 2)
        manager.cancel(run_id)
        final = manager.wait(run_id, timeout=120)
        assert final["status"] == "cancelled"
        run_dir = Path(final["run_dir"])
        ckpt = latest_checkpoint(run_dir)
        assert ckpt is not None and int(ckpt.name.split("-")[1]) >= 2
        stopped_at = int(ckpt.name.split("-")[1])

        # Shorten the run so the resumed job finishes quickly: the recipe is the run's contract.
        recipe_path = run_dir / "recipe.yaml"
        recipe_path.write_text(recipe_path.read_text().replace("max_steps: 400", f"max_steps: {stopped_at + 2}"))
        manager.resume(run_id)
        final = manager.wait(run_id, timeout=180)
        assert final["status"] == "completed", final["error"]
        assert (run_dir / "adapter" / "adapter_config.json").exists()
        steps = [e["step"] for e in read_metrics(run_dir) if "loss" in e]
        assert steps == sorted(steps) and steps[-1] == stopped_at + 2
        assert "loss" in (run_dir / "train.log").read_text() or steps
    finally:
        manager.shutdown(kill_running=True)


def test_generation_metrics_and_samples_reach_metrics_jsonl_while_the_run_goes(workspace, tiny_llama_dir):
    """At each evaluation the run's metrics.jsonl gets perplexity, ROUGE, BLEU and exact match, samples.jsonl the
    outputs beside their references, and the summary the share of wall time the metrics took."""
    import json
    import math

    from studio.stages.generation_eval import latest_samples

    recipe = tiny_recipe(tiny_llama_dir, "lora", max_steps=4, eval_every=2, save_every=2, eval_samples=3)
    run_id = prepare_run(workspace, recipe)
    manager = JobManager(workspace).start()
    try:
        manager.submit(run_id)
        final = manager.wait(run_id, timeout=300)
        assert final["status"] == "completed", final["error"]
    finally:
        manager.shutdown(kill_running=True)
    run_dir = Path(final["run_dir"])
    scored = [e for e in read_metrics(run_dir) if "eval_rougeL" in e]
    assert [e["step"] for e in scored] == [2, 4]
    for event in scored:
        assert {"eval_rouge1", "eval_rouge2", "eval_bleu", "eval_exact_match", "eval_perplexity"} <= set(event)
        assert 0 <= event["eval_rougeL"] <= 1 and 0 <= event["eval_bleu"] <= 100
    losses = {e["step"]: e["eval_loss"] for e in read_metrics(run_dir) if "eval_loss" in e}
    assert scored[-1]["eval_perplexity"] == pytest.approx(math.exp(losses[4]), rel=1e-6)
    samples = latest_samples(run_dir)
    assert len(samples) == 3 and all(s["step"] == 4 and s["reference"] and s["prompt"] for s in samples)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert 0 < summary["metrics_share"] < 1 and summary["metrics_time_s"] > 0
