"""Distillation with real weights: the embedded SmolLM2-135M-Instruct (30 layers) teaches a student made of its own
first 8 layers (a DistilBERT-style start); on held-out examples the student's predictions move toward the teacher's."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from studio.config import parse_recipe

from tests.engine.test_distill import fixed_batch_kl
from tests.engine.test_training import run_in_process

pytestmark = pytest.mark.slow
STUDENT_LAYERS = 8


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory, converted_smollm2) -> Path:
    from studio.models.loading import load_causal_lm
    from studio.workspace import Workspace

    ws = Workspace.open(tmp_path_factory.mktemp("student-home"))
    model, tok = load_causal_lm(str(converted_smollm2), ws, precision="fp32", for_training=False)
    model.model.layers = model.model.layers[:STUDENT_LAYERS]
    model.config.num_hidden_layers = STUDENT_LAYERS
    out = tmp_path_factory.mktemp("student")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_a_truncated_smollm2_moves_toward_the_full_model_on_held_out_examples(workspace, student_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from studio.models.loading import load_causal_lm
    from studio.stages.sft import build_sft_datasets

    recipe = parse_recipe({
        "name": "distill-real", "model": str(student_dir), "stage": "distill", "method": {"name": "full"},
        "distill": {"teacher": "smollm2-135m-instruct", "alpha": 0.0, "temperature": 1.0},
        "data": {"dataset": "sample-format-tutor", "max_length": 128, "validation": 0.04},
        "train": {"max_steps": 5, "batch_size": 4, "lr": 5e-4, "scheduler": "constant", "warmup_ratio": 0.0,
                  "eval_every": 100, "save_every": 100},
    })
    tok = AutoTokenizer.from_pretrained(student_dir)
    _, held_out = build_sft_datasets(recipe, tok, workspace.home)
    batch = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id)([held_out[i] for i in range(8)])
    teacher, _ = load_causal_lm("smollm2-135m-instruct", workspace, precision="fp32", for_training=False)
    before = fixed_batch_kl(AutoModelForCausalLM.from_pretrained(student_dir).eval(), teacher, batch)

    _, events, result = run_in_process(workspace, recipe)
    after = fixed_batch_kl(AutoModelForCausalLM.from_pretrained(result["result_dir"]).eval(), teacher, batch)
    print(f"KL(teacher || {STUDENT_LAYERS}-layer student) per held-out response token: {before:.3f} -> {after:.3f}")
    assert after < 0.7 * before, (before, after)
    assert torch.isfinite(torch.tensor([e["loss"] for e in events if "loss" in e])).all()
