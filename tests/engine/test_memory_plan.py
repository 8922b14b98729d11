"""The memory plan: each step's rows in micro-batch passes, chosen for the machine, with the same learning."""
from __future__ import annotations


import pytest
import torch

from studio.config import parse_recipe
from studio.errors import StudioError
from studio.memory import GiB, load_config
from studio.memory_plan import describe_plan, divisors, plan_memory
from tests.engine.test_training import run_in_process, tiny_recipe


def recipe(model_dir, batch=8, max_length=320, stage="sft", **train):
    return parse_recipe({"name": "plan", "model": str(model_dir), "stage": stage,
                         "data": {"dataset": "sample-format-tutor", "max_length": max_length},
                         "train": {"batch_size": batch, "precision": "fp32", **train}})


def test_divisors_are_listed_largest_first():
    assert divisors(8) == [8, 4, 2, 1] and divisors(6) == [6, 3, 2, 1] and divisors(1) == [1]


def test_a_cpu_runs_short_passes_and_a_roomy_gpu_one_pass(tiny_llama_dir):
    config = load_config(tiny_llama_dir)
    cpu = plan_memory(config, recipe(tiny_llama_dir), {"kind": "cpu", "free_bytes": 64 * GiB})
    assert (cpu["micro_batch_size"], cpu["passes"], cpu["gradient_checkpointing"]) == (2, 4, False)
    gpu = plan_memory(config, recipe(tiny_llama_dir), {"kind": "cuda", "free_bytes": 64 * GiB})
    assert (gpu["micro_batch_size"], gpu["passes"]) == (8, 1) and gpu["fits"]
    assert "4 passes of 2" in describe_plan(cpu, 8)


def test_little_memory_shrinks_the_pass_then_turns_checkpointing_on(tiny_llama_dir):
    config = load_config(tiny_llama_dir)
    big = recipe(tiny_llama_dir, batch=8, max_length=4096)
    roomy = plan_memory(config, big, {"kind": "cuda", "free_bytes": 64 * GiB})
    one_row = plan_memory(config, recipe(tiny_llama_dir, batch=1, max_length=4096),
                          {"kind": "cuda", "free_bytes": 64 * GiB})["estimate_bytes"]
    tight = plan_memory(config, big, {"kind": "cuda", "free_bytes": int(one_row / 0.9) + 1})
    assert roomy["micro_batch_size"] == 8 and tight["micro_batch_size"] == 1 and not tight["gradient_checkpointing"]
    starved = plan_memory(config, big, {"kind": "cuda", "free_bytes": int(one_row * 0.8)})
    assert starved["gradient_checkpointing"] and starved["auto_checkpointing"]
    assert starved["estimate_bytes"] < one_row


def test_a_recipe_micro_batch_wins_and_must_divide_the_batch(tiny_llama_dir):
    config = load_config(tiny_llama_dir)
    plan = plan_memory(config, recipe(tiny_llama_dir, micro_batch_size=4), {"kind": "cpu", "free_bytes": 64 * GiB})
    assert (plan["micro_batch_size"], plan["passes"]) == (4, 2)
    with pytest.raises(StudioError, match="micro_batch_size") as error:
        recipe(tiny_llama_dir, micro_batch_size=3)
    assert error.value.field == "train.micro_batch_size"


def test_stages_the_estimator_does_not_model_keep_one_pass(tiny_llama_dir):
    plan = plan_memory(load_config(tiny_llama_dir), recipe(tiny_llama_dir, stage="dpo"),
                       {"kind": "cpu", "free_bytes": 64 * GiB})
    assert plan["micro_batch_size"] == 8


def test_passes_learn_what_one_pass_learns(workspace, tiny_llama_dir):
    """A step of 4 rows as one pass and as four passes of one row: the same loss and the same summed gradient
    (its norm, logged before clipping); the next step then starts from the same weights, so its loss agrees too
    (to Adam's amplified float rounding: its first update is the sign of each gradient element)."""
    runs = []
    for micro in (4, 1):
        r = tiny_recipe(tiny_llama_dir, "lora", max_steps=2, micro_batch_size=micro, group_by_length=False)
        r.method.dropout = 0.0  # dropout masks depend on the pass shape; everything else must not
        r.data.validation = 0.0
        _, events, result = run_in_process(workspace, r)
        assert result["memory_plan"]["micro_batch_size"] == micro and result["memory_plan"]["passes"] == 4 // micro
        runs.append([(e["loss"], e["grad_norm"]) for e in events if "loss" in e])
    (one, many) = runs
    assert one[0][0] == pytest.approx(many[0][0], rel=1e-6)
    assert one[0][1] == pytest.approx(many[0][1], rel=1e-4)
    assert one[1][0] == pytest.approx(many[1][0], rel=1e-3)


def test_frozen_weights_go_to_bf16_and_adapters_stay_float32(tiny_llama_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from studio.stages.trainer_setup import frozen_weights_to_bf16

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32),
                           LoraConfig(r=4, target_modules="all-linear"))
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert frozen_weights_to_bf16(model) == frozen
    assert all((p.dtype == torch.float32) == p.requires_grad for p in model.parameters())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(input_ids=torch.tensor([[5, 6, 7, 8]]), labels=torch.tensor([[5, 6, 7, 8]])).loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and g.dtype == torch.float32 for g in grads)


@pytest.mark.parametrize("setting, cuda, fused", [("auto", False, None), ("auto", True, True), ("on", False, True),
                                                  ("off", True, None)])
def test_adamw_is_fused_on_a_gpu_or_when_asked(monkeypatch, setting, cuda, fused):
    from studio.config import TrainConfig
    from studio.stages.trainer_setup import make_optimizer

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = make_optimizer([{"params": [weight]}], TrainConfig(fused_optimizer=setting, lr=0.1))
    assert optimizer.defaults["fused"] is fused and optimizer.param_groups[0]["lr"] == 0.1
    if fused:  # the fused CPU kernel updates like the default one
        weight.grad = torch.ones(3)
        optimizer.step()
        assert torch.allclose(weight.detach(), torch.full((3,), 0.9), atol=1e-4)


@pytest.mark.slow
def test_a_compiled_run_learns_what_an_eager_run_learns(workspace, tiny_llama_dir):
    losses = []
    for compile_ in (False, True):
        r = tiny_recipe(tiny_llama_dir, "lora", max_steps=2, compile=compile_, group_by_length=False)
        r.method.dropout, r.data.validation = 0.0, 0.0
        _, events, result = run_in_process(workspace, r)
        assert result["result_dir"] and any("Compiling LlamaModel" in e.get("message", "") for e in events) == compile_
        losses.append([e["loss"] for e in events if "loss" in e])
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)


@pytest.mark.parametrize("cuda, installed, auto", [(True, True, True), (True, False, False), (False, True, False)])
def test_liger_kernels_are_used_on_a_gpu_where_installed(monkeypatch, cuda, installed, auto):
    import importlib.util

    from studio.config import TrainConfig
    from studio.stages.trainer_setup import use_liger

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "liger_kernel" and installed else
                        (None if name == "liger_kernel" else real_find_spec(name, *a)))
    assert use_liger(TrainConfig()) is auto and use_liger(TrainConfig(liger="off")) is False
    if auto:
        assert use_liger(TrainConfig(liger="on")) is True
    else:
        with pytest.raises(StudioError, match="liger-kernel") as error:
            use_liger(TrainConfig(liger="on"))
        assert error.value.field == "train.liger"
