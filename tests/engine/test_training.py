"""SFT on a tiny random Llama (real SmolLM2 tokenizer): every method trains, logs and saves a loadable result."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from studio.config import parse_recipe
from studio.errors import StudioError
from studio.methods import METHODS
from studio.training import execute, prepare_run


# Settings a method needs to do something visible in a 3-step run (defaults are sized for real runs).
TEST_SETTINGS = {"gradual": {"every_steps": 1}}


def tiny_recipe(model_dir: Path, method: str = "lora", **train) -> object:
    return parse_recipe({
        "name": f"tiny-{method}", "model": str(model_dir), "method": {"name": method, **TEST_SETTINGS.get(method, {})},
        "data": {"dataset": "sample-format-tutor", "max_length": 96, "validation": 0.05},
        "train": {"max_steps": 3, "batch_size": 4, "lr": 5e-3, "eval_every": 2, "save_every": 2,
                  "precision": "fp32", "eval_samples": 2, **train},
    })


def run_in_process(ws, recipe) -> tuple[str, list[dict], dict]:
    run_id = prepare_run(ws, recipe)
    run_dir = Path(ws.get_run(run_id)["run_dir"])
    events: list[dict] = []
    result = execute(run_dir, ws.home, None, events.append, lambda: False)
    return run_id, events, result


def logged_trainable(events: list[dict]) -> int:
    """The trainable count a run logged ("Trainable parameters: N of M")."""
    line = next(e["message"] for e in events if e.get("message", "").startswith("Trainable parameters:"))
    return int(line.split(":")[1].split(" of ")[0].replace(",", ""))


def prompt_logits(model, tokenizer) -> torch.Tensor:
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "Explain photosynthesis."}],
                                        add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        return model(**ids).logits[0, -1]


@pytest.mark.parametrize("method", [n for n, m in METHODS.items() if "sft" in m.stages])
def test_every_method_trains_logs_loss_and_saves_a_loadable_result(method, workspace, tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_id, events, result = run_in_process(workspace, tiny_recipe(tiny_llama_dir, method))
    losses = [e["loss"] for e in events if "loss" in e]
    assert len(losses) >= 3 and all(l == l for l in losses)  # logged every step, no NaN
    assert any("eval_loss" in e for e in events)
    # Between steps the run says it evaluates (batch k of n), then writes sample answers, then trains again.
    phases = [e for e in events if e.get("type") == "phase"]
    assert any(e["phase"] == "evaluating" and 1 <= e["done"] <= e["total"] for e in phases), phases
    assert any(e["phase"] == "generating" for e in phases) and phases[-1]["phase"] is None
    assert result["result_dir"] and not result["stopped"]
    result_dir = Path(result["result_dir"])
    assert result_dir.name == METHODS.get(method).result_kind

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    before = prompt_logits(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), tok)
    tuned = METHODS.get(method).load_result(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), result_dir)
    assert not torch.allclose(before, prompt_logits(tuned, tok), atol=1e-4)
    again = METHODS.get(method).load_result(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), result_dir)
    assert torch.allclose(prompt_logits(tuned, tok), prompt_logits(again, tok), atol=1e-5)  # reload is stable
    summary = json.loads((Path(workspace.get_run(run_id)["run_dir"]) / "summary.json").read_text())
    assert summary["tokens_per_s"] > 0 and summary["peak_rss_mb"] > 0


def test_only_lora_parameters_train_and_they_all_change(workspace, tiny_llama_dir):
    from safetensors.torch import load_file

    _, _, result = run_in_process(workspace, tiny_recipe(tiny_llama_dir, "lora"))
    weights = load_file(Path(result["result_dir"]) / "adapter_model.safetensors")
    lora_b = {k: v for k, v in weights.items() if "lora_B" in k}
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b.values())  # B starts at zero: each one moved


def test_stop_flag_saves_a_checkpoint_and_returns_stopped(workspace, tiny_llama_dir):
    recipe = tiny_recipe(tiny_llama_dir, "lora", max_steps=50, save_every=100)
    run_id = prepare_run(workspace, recipe)
    run_dir = Path(workspace.get_run(run_id)["run_dir"])
    steps = []

    def emit(event):
        steps.append(event.get("step", 0))

    result = execute(run_dir, workspace.home, None, emit, lambda: max(steps, default=0) >= 2)
    assert result["stopped"] and result["result_dir"] is None
    assert (run_dir / "checkpoints" / "checkpoint-2").is_dir()


def test_resume_continues_from_the_checkpoint_step(workspace, tiny_llama_dir):
    recipe = tiny_recipe(tiny_llama_dir, "lora", max_steps=4, save_every=2)
    run_id = prepare_run(workspace, recipe)
    run_dir = Path(workspace.get_run(run_id)["run_dir"])
    seen = []
    execute(run_dir, workspace.home, None, lambda e: seen.append(e.get("step", 0)), lambda: max(seen, default=0) >= 2)
    resumed = []
    result = execute(run_dir, workspace.home, run_dir / "checkpoints" / "checkpoint-2", resumed.append, lambda: False)
    steps = [e["step"] for e in resumed if "loss" in e]
    assert steps and min(steps) == 3 and max(steps) == 4
    assert result["result_dir"]


def test_bad_dataset_leaves_no_run_behind(workspace, tiny_llama_dir, tmp_path):
    recipe = tiny_recipe(tiny_llama_dir)
    recipe.data.dataset = str(tmp_path / "missing.jsonl")
    with pytest.raises(StudioError) as exc:
        prepare_run(workspace, recipe)
    assert exc.value.field == "data.dataset"
    assert workspace.list_runs() == [] and not any(workspace.runs_dir.iterdir())


def test_unknown_model_offline_names_the_models_available(workspace, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    recipe = parse_recipe({"name": "x", "model": "someone/not-a-real-model", "data": {"dataset": "sample-format-tutor"}})
    with pytest.raises(StudioError, match="(?i)offline.*smollm2-135m-instruct"):
        prepare_run(workspace, recipe)
    assert workspace.list_runs() == []


def test_auto_precision_is_written_into_the_resolved_recipe(workspace, tiny_llama_dir):
    import yaml

    recipe = tiny_recipe(tiny_llama_dir, precision="auto")
    run_id = prepare_run(workspace, recipe)
    saved = yaml.safe_load((Path(workspace.get_run(run_id)["run_dir"]) / "recipe.yaml").read_text())
    assert saved["train"]["precision"] in ("bf16", "fp32")


def test_packing_trains_on_packed_sequences(workspace, tiny_llama_dir):
    recipe = tiny_recipe(tiny_llama_dir, "lora", max_steps=2)
    recipe.data.packing = True
    _, events, result = run_in_process(workspace, recipe)
    assert [e["step"] for e in events if "loss" in e][-1] == 2
    assert result["result_dir"]


def test_sft_on_a_studio_dataset_with_a_text_template(workspace, tiny_llama_dir, tmp_path):
    from studio.data.builder import ImportRequest, import_dataset
    from studio.data.cleaning import SplitConfig

    src = tmp_path / "faq.csv"
    src.write_text("question,answer\n" + "".join(f"What is {i}?,It is {i}.\n" for i in range(24)))
    import_dataset(workspace, ImportRequest(source=str(src), name="faq", template="alpaca",
                                            split=SplitConfig(validation=4)))
    recipe = parse_recipe({"name": "faq", "model": str(tiny_llama_dir), "data": {"dataset": "faq", "max_length": 96},
                           "train": {"max_steps": 2, "batch_size": 4, "eval_every": 1, "precision": "fp32"}})
    run_id, events, result = run_in_process(workspace, recipe)
    assert result["result_dir"] and any("eval_loss" in e for e in events)


def test_unknown_template_is_refused_before_the_run_exists(workspace, tiny_llama_dir):
    recipe = tiny_recipe(tiny_llama_dir)
    recipe.data.template = "klingon"
    with pytest.raises(StudioError, match="Unknown template 'klingon'"):
        prepare_run(workspace, recipe)
    assert workspace.list_runs() == []


def test_an_unfreezing_schedule_longer_than_training_is_refused_before_the_run(workspace, tiny_llama_dir):
    recipe = tiny_recipe(tiny_llama_dir, "gradual", max_steps=3)
    recipe.method.every_steps = 5
    with pytest.raises(StudioError, match="every_steps"):
        prepare_run(workspace, recipe)
    assert workspace.list_runs() == []


def test_a_method_refuses_a_model_it_cannot_serve_before_the_run(workspace, tiny_llama_dir, tmp_path):
    import json as _json
    import shutil

    bert_like = tmp_path / "bert-like"
    shutil.copytree(tiny_llama_dir, bert_like)
    config = _json.loads((bert_like / "config.json").read_text())
    (bert_like / "config.json").write_text(_json.dumps({**config, "model_type": "bert"}))
    recipe = tiny_recipe(bert_like, "llama_adapter")
    with pytest.raises(StudioError, match="Llama"):
        prepare_run(workspace, recipe)


def test_early_stopping_ends_a_run_that_stops_improving(workspace, tiny_llama_dir):
    recipe = tiny_recipe(tiny_llama_dir, "lora", max_steps=30, lr=1e-12, eval_every=1, save_every=1,
                         early_stopping_patience=2, keep_best=True)
    _, events, result = run_in_process(workspace, recipe)
    steps = [e["step"] for e in events if "loss" in e]
    assert result["result_dir"] and max(steps) < 10  # stopped long before 30 steps


def test_keep_best_needs_aligned_save_and_eval_steps():
    with pytest.raises(StudioError, match="multiple of 'train.eval_every'"):
        parse_recipe({"name": "x", "data": {"dataset": "sample-format-tutor"},
                      "train": {"keep_best": True, "save_every": 50, "eval_every": 20}})
