"""The real embedded SmolLM2-135M-Instruct: a few LoRA steps on the sample data change its answers."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from studio.config import parse_recipe
from studio.training import execute, prepare_run

pytestmark = pytest.mark.slow

PROMPT = [{"role": "user", "content": "Explain what a budget is."}]


def greedy(model, tokenizer, max_new_tokens=40) -> str:
    ids = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_a_few_lora_steps_on_the_real_model_lower_the_loss_and_change_answers(workspace):
    from peft import PeftModel

    from studio.models.loading import load_causal_lm

    recipe = parse_recipe({
        "name": "real-smoke", "model": "smollm2-135m-instruct", "method": {"name": "lora"},
        "data": {"dataset": "sample-format-tutor", "max_length": 192, "validation": 0},
        "train": {"max_steps": 8, "batch_size": 4, "lr": 1e-3, "save_every": 100},
    })
    run_id = prepare_run(workspace, recipe)
    events: list[dict] = []
    result = execute(Path(workspace.get_run(run_id)["run_dir"]), workspace.home, None, events.append, lambda: False)
    losses = [e["loss"] for e in events if "loss" in e]
    assert len(losses) == 8
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3

    base, tok = load_causal_lm("smollm2-135m-instruct", workspace, precision="fp32", for_training=False)
    before = greedy(base, tok)
    tuned = PeftModel.from_pretrained(base, result["result_dir"])
    after = greedy(tuned, tok)
    assert after != before
