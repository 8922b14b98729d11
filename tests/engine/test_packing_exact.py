"""Padding-free packing is exact: the same examples packed into one row or padded in a batch give the same loss
and the same gradients, with transformers' sdpa (a block mask) and with the studio's per-example sdpa."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from studio.models.varlen_attention import NAME, restore_sdpa, use_varlen_attention
from studio.stages.lean_loss import lean_causal_loss


def examples(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        length = int(torch.randint(12, 40, (1,), generator=g))
        ids = torch.randint(5, 1000, (length,), generator=g).tolist()
        prompt = length // 3  # the prompt's tokens do not count, as in SFT
        out.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return out


def loss_and_grads(model, batch, lean: bool):
    model.zero_grad()
    if lean:
        loss = lean_causal_loss(model, batch)
    else:
        loss = model(**batch).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.fixture
def model(tiny_llama_dir):
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32, attn_implementation="sdpa")
    m.config.use_cache = False
    return m.train()


@pytest.mark.parametrize("lean", [False, True])
@pytest.mark.parametrize("varlen", [False, True])
def test_packed_and_padded_batches_give_the_same_loss_and_gradients(model, varlen, lean):
    rows = examples()
    padded = DataCollatorForLanguageModeling(pad_token_id=0)(rows)
    packed = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(rows)
    assert packed["input_ids"].shape[0] == 1 and "attention_mask" not in packed
    assert int((packed["labels"] != -100).sum()) == int((padded["labels"][:, 1:] != -100).sum())
    reference_loss, reference = loss_and_grads(model, padded, lean)
    if varlen:
        assert use_varlen_attention(model)
    loss, grads = loss_and_grads(model, packed, lean)
    assert loss == pytest.approx(float(reference_loss), rel=1e-5)
    assert grads.keys() == reference.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], reference[name], rtol=1e-4, atol=1e-6, msg=name)


def test_per_example_attention_is_used_for_packed_rows_only(model, monkeypatch):
    calls = []
    import studio.models.varlen_attention as varlen

    sdpa = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(varlen.F, "scaled_dot_product_attention",
                        lambda *a, **k: calls.append(a[0].shape[2]) or sdpa(*a, **k))
    rows = examples(3)
    assert use_varlen_attention(model) and model.config._attn_implementation == NAME
    model(**DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(rows))
    layers = model.config.num_hidden_layers
    assert sorted(calls[:3]) == sorted(len(r["input_ids"]) for r in rows) and len(calls) == 3 * layers
    calls.clear()
    model(**DataCollatorForLanguageModeling(pad_token_id=0)(rows))  # padded rows: transformers' own sdpa, whole rows
    assert calls == [max(len(r["input_ids"]) for r in rows)] * layers
    restore_sdpa(model)
    assert model.config._attn_implementation == "sdpa"


def test_packing_stays_on_where_exact_and_goes_off_for_a_soft_prompt(model):
    from peft import LoraConfig, PromptTuningConfig, get_peft_model

    from studio.stages.sft import packing_problem

    assert packing_problem(model) is None
    assert packing_problem(get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))) is None
    soft = get_peft_model(AutoModelForCausalLM.from_pretrained(model.name_or_path, dtype=torch.float32),
                          PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    assert "soft prompt" in packing_problem(soft)


def test_a_prompt_tuning_run_trains_padded_and_says_why(workspace, tiny_llama_dir):
    from tests.engine.test_training import run_in_process, tiny_recipe

    r = tiny_recipe(tiny_llama_dir, "prompt_tuning", max_steps=1)
    assert r.data.packing  # the default
    _, events, result = run_in_process(workspace, r)
    assert result["result_dir"]
    assert any(e.get("message", "").startswith("Examples train padded, not packed: a soft prompt") for e in events)
