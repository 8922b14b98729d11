"""An evaluation inside training can be cut short: skipped (training goes on, its partial scores are not charted)
or stopped by a cancel (the checkpoint is written right after it). Tiny random Llama, real tokenizer."""
from __future__ import annotations

from pathlib import Path

from studio.jobs.runfiles import SKIP_EVALUATION, latest_checkpoint
from studio.training import execute, prepare_run
from tests.engine.test_training import tiny_recipe

def recipe(model_dir: Path):
    r = tiny_recipe(model_dir, max_steps=3, eval_every=2, save_every=10, eval_samples=0)
    r.data.validation = 0.25  # an evaluation of 15 batches (reported as 1, 8, 15)
    return r


def evaluation_batches(events: list[dict]) -> list[list[int]]:
    """The batch counts each evaluation reported, one list per evaluation."""
    out, current = [], []
    for e in events:
        if e.get("type") == "phase" and e.get("phase") == "evaluating":
            current.append(e["done"])
        elif e.get("type") == "phase" and e.get("phase") is None:
            out.append(current)
            current = []
    return out


def test_a_skipped_evaluation_ends_after_one_batch_and_training_goes_on(workspace, tiny_llama_dir):
    run_id = prepare_run(workspace, recipe(tiny_llama_dir))
    run_dir = Path(workspace.get_run(run_id)["run_dir"])
    (run_dir / SKIP_EVALUATION).touch()  # as `studio jobs skip-eval` / the Train tab's button write it
    events: list[dict] = []
    result = execute(run_dir, workspace.home, None, events.append, lambda: False)
    assert result["stopped"] is False and result["steps"] == 3
    first = evaluation_batches(events)[0]
    assert first == [1], first  # a whole evaluation reports [1, 8, 15]
    logs = [e["message"] for e in events if e.get("type") == "log"]
    assert any(m.startswith("Evaluation at step 2 skipped after 1 batch(es)") for m in logs), logs
    assert not any("eval_loss" in e and e.get("step") == 2 for e in events)  # partial scores are not charted
    assert not (run_dir / SKIP_EVALUATION).exists()


def test_a_cancel_during_an_evaluation_cuts_it_and_checkpoints_right_after(workspace, tiny_llama_dir):
    run_id = prepare_run(workspace, recipe(tiny_llama_dir))
    run_dir = Path(workspace.get_run(run_id)["run_dir"])
    events: list[dict] = []
    asked = []

    def emit(event: dict) -> None:
        events.append(event)
        if event.get("phase") == "evaluating":
            asked.append(True)  # the user presses Cancel while the evaluation runs

    result = execute(run_dir, workspace.home, None, emit, lambda: bool(asked))
    assert result["stopped"] is True
    assert evaluation_batches(events)[0] == [1]
    assert latest_checkpoint(run_dir).name == "checkpoint-2"  # saved after the evaluation, before another step
    assert max(e.get("step", 0) for e in events if e.get("type") == "progress") == 2
