"""The lean loss is the model's own loss: same value and same gradients, for LoRA and full fine-tuning, padded and
packed batches, with or without gradient-accumulation token counts; and it never holds the full logits."""
from __future__ import annotations

import pytest
import torch

from studio.stages import lean_loss
from studio.stages.lean_loss import chunked_linear_cross_entropy, lean_causal_loss, supports_lean_loss


def _model(tiny_llama_dir, method: str):
    from peft import LoraConfig, PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, attn_implementation="sdpa")
    if method == "lora":
        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0,
                                                 init_lora_weights=False))
    elif method == "prompt":
        model = get_peft_model(model, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    return model


def _batch(packed: bool):
    torch.manual_seed(1)
    ids = torch.randint(5, 400, (3, 24))
    labels = ids.clone()
    labels[:, :9] = -100  # the prompt does not count
    if packed:
        position_ids = torch.cat([torch.arange(10), torch.arange(14)]).repeat(3, 1)
        labels[:, 10] = -100  # the first token of the second example is not predicted from the first
        return {"input_ids": ids, "labels": labels, "position_ids": position_ids}
    mask = torch.ones_like(ids)
    mask[1, 18:] = 0
    labels[1, 18:] = -100
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def _grads(model) -> dict:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}


@pytest.mark.parametrize("method", ["lora", "full"])
@pytest.mark.parametrize("packed", [False, True])
def test_same_loss_and_gradients_as_the_models_own(tiny_llama_dir, method, packed):
    model = _model(tiny_llama_dir, method)
    assert supports_lean_loss(model)
    batch = _batch(packed)
    reference = model(**batch, use_cache=False).loss  # as training runs it: with a cache, packing is not seen
    reference.backward()
    expected = _grads(model)
    model.zero_grad()
    loss = lean_causal_loss(model, batch)
    loss.backward()
    got = _grads(model)
    assert torch.allclose(loss, reference, atol=1e-5)
    assert expected.keys() == got.keys() and len(got) > 0
    for name in expected:
        assert torch.allclose(got[name], expected[name], atol=1e-5, rtol=1e-4), name


def test_accumulation_counts_divide_the_sum(tiny_llama_dir):
    model = _model(tiny_llama_dir, "lora")
    batch = _batch(False)
    counted = int((batch["labels"][:, 1:] != -100).sum())
    mean = lean_causal_loss(model, batch)
    over_two_batches = lean_causal_loss(model, batch, num_items_in_batch=torch.tensor(2 * counted))
    assert torch.allclose(over_two_batches * 2, mean, atol=1e-6)


def test_prompt_learning_keeps_the_models_own_loss(tiny_llama_dir):
    assert not supports_lean_loss(_model(tiny_llama_dir, "prompt"))


def test_chunks_give_the_same_answer_as_one_pass(monkeypatch):
    torch.manual_seed(2)
    hidden = torch.randn(2, 40, 16, requires_grad=True)
    weight = torch.randn(300, 16, requires_grad=True)
    labels = torch.randint(0, 300, (2, 40))
    labels[0, :5] = -100
    whole = torch.nn.functional.cross_entropy((hidden[:, :-1] @ weight.t()).reshape(-1, 300),
                                              labels[:, 1:].reshape(-1), ignore_index=-100)
    whole.backward()
    expected = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    monkeypatch.setattr(lean_loss, "CHUNK_ELEMENTS", 300 * 7)  # 7 rows a chunk: many chunks, a ragged last one
    loss = chunked_linear_cross_entropy(hidden, weight, labels)
    loss.backward()
    assert torch.allclose(loss, whole, atol=1e-5)
    assert torch.allclose(hidden.grad, expected[0], atol=1e-5) and torch.allclose(weight.grad, expected[1], atol=1e-5)
