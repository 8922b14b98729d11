"""Partial freezing, gradual unfreezing, discriminative LRs and QLoRA on a tiny random Llama (no training loop)."""
from __future__ import annotations

import pytest
import torch

from studio.errors import StudioError
from studio.methods import METHODS
from studio.settings import parse_settings


def tiny_llama(tied: bool = False):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                                        num_attention_heads=4, num_key_value_heads=2, vocab_size=128,
                                        tie_word_embeddings=tied))


def settings(method: str, **raw):
    return parse_settings(METHODS.get(method).settings_cls, raw, "method")


def trainable_modules(model) -> set[str]:
    return {n.rsplit(".", 1)[0] for n, p in model.named_parameters() if p.requires_grad}


def block_of(name: str) -> int | None:
    parts = name.split(".")
    return int(parts[2]) if parts[:2] == ["model", "layers"] else None


def test_block_finder_picks_the_decoder_layers():
    from studio.methods._blocks import find_blocks

    model = tiny_llama()
    name, blocks = find_blocks(model)
    assert name == "model.layers" and blocks is model.model.layers


@pytest.mark.parametrize("last_blocks", [1, 2, 4])
def test_partial_trains_exactly_the_last_blocks_plus_head_and_final_norm(last_blocks):
    model = METHODS.get("partial").prepare(tiny_llama(), settings("partial", last_blocks=last_blocks))
    names = trainable_modules(model)
    assert {block_of(n) for n in names} - {None} == set(range(4 - last_blocks, 4))
    assert {n for n in names if block_of(n) is None} == {"lm_head", "model.norm"}
    in_blocks = {n for n, _ in model.named_parameters() if block_of(n) is not None and block_of(n) >= 4 - last_blocks}
    assert all(p.requires_grad for n, p in model.named_parameters() if n in in_blocks)


def test_partial_extras_add_embeddings_and_the_frozen_blocks_norms():
    model = METHODS.get("partial").prepare(tiny_llama(), settings("partial", last_blocks=1, train_embeddings=True,
                                                                  train_norms=True))
    names = trainable_modules(model)
    assert "model.embed_tokens" in names
    frozen_block_modules = {n for n in names if block_of(n) is not None and block_of(n) < 3}
    assert frozen_block_modules == {f"model.layers.{i}.{norm}" for i in range(3)
                                    for norm in ("input_layernorm", "post_attention_layernorm")}


def test_partial_with_a_tied_head_leaves_the_embeddings_frozen_unless_asked():
    model = METHODS.get("partial").prepare(tiny_llama(tied=True), settings("partial", last_blocks=1))
    assert not model.model.embed_tokens.weight.requires_grad and not model.lm_head.weight.requires_grad


def test_partial_refuses_more_blocks_than_the_model_has():
    with pytest.raises(StudioError, match="only 4 blocks") as exc:
        METHODS.get("partial").prepare(tiny_llama(), settings("partial", last_blocks=5))
    assert exc.value.field == "method.last_blocks"


class FakeState:
    def __init__(self, global_step: int):
        self.global_step = global_step


def test_gradual_starts_with_the_head_and_unfreezes_blocks_top_down_on_schedule():
    method = METHODS.get("gradual")
    s = settings("gradual", every_steps=3)
    model = method.prepare(tiny_llama(), s)
    assert trainable_modules(model) == {"lm_head", "model.norm"}
    (callback,) = method.callbacks(model, s)
    callback.on_train_begin(None, FakeState(0), None)
    seen = []
    for step in range(15):
        callback.on_step_begin(None, FakeState(step), None)
        seen.append(sorted({block_of(n) for n in trainable_modules(model)} - {None}))
    assert seen[0] == seen[2] == []
    assert seen[3] == seen[5] == [3]
    assert seen[6] == [2, 3] and seen[9] == [1, 2, 3] and seen[12] == seen[14] == [0, 1, 2, 3]
    assert not model.model.embed_tokens.weight.requires_grad
    assert method.schedule(s, 4) == [(3, 3), (6, 2), (9, 1), (12, 0)]


def test_gradual_resumed_mid_schedule_unfreezes_the_blocks_already_due():
    method = METHODS.get("gradual")
    s = settings("gradual", every_steps=3)
    model = method.prepare(tiny_llama(), s)
    method.callbacks(model, s)[0].on_train_begin(None, FakeState(7), None)
    assert sorted({block_of(n) for n in trainable_modules(model)} - {None}) == [2, 3]


def test_gradual_optimizer_holds_every_parameter_and_skips_frozen_ones():
    method = METHODS.get("gradual")
    s = settings("gradual", every_steps=1)
    model = method.prepare(tiny_llama(), s)
    groups = method.optimizer_groups(model, s, 1e-2)
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(groups, lr=1e-2, weight_decay=0.1)
    frozen_before = model.model.layers[3].mlp.up_proj.weight.detach().clone()
    ids = torch.randint(0, 128, (2, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    assert torch.equal(frozen_before, model.model.layers[3].mlp.up_proj.weight)  # no grad: untouched, no decay
    optimizer.zero_grad()
    method.callbacks(model, s)[0].on_step_begin(None, FakeState(1), None)
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    assert not torch.equal(frozen_before, model.model.layers[3].mlp.up_proj.weight)  # now optimised


def test_gradual_schedule_longer_than_training_is_refused():
    method = METHODS.get("gradual")
    method.check_schedule(settings("gradual", every_steps=10), total_steps=41, n_blocks=4)
    with pytest.raises(StudioError, match="at most 9") as exc:
        method.check_schedule(settings("gradual", every_steps=10), total_steps=40, n_blocks=4)
    assert exc.value.field == "method.every_steps"


def test_discriminative_groups_decay_from_the_top_block_down():
    method = METHODS.get("discriminative")
    model = method.prepare(tiny_llama(), settings("discriminative", decay=0.5))
    groups = {g["name"]: g for g in method.optimizer_groups(model, settings("discriminative", decay=0.5), 1.0)}
    assert [groups[f"block {i}"]["lr"] for i in range(4)] == [0.125, 0.25, 0.5, 1.0]
    assert groups["embeddings"]["lr"] == 0.0625 and groups["head and the rest"]["lr"] == 1.0
    ids = {id(p) for g in groups.values() for p in g["params"]}
    assert len(ids) == sum(len(g["params"]) for g in groups.values()) == len(list(model.parameters()))
    assert all(p.requires_grad for p in model.parameters())


def test_discriminative_tied_head_shares_the_embeddings_rate():
    method = METHODS.get("discriminative")
    model = tiny_llama(tied=True)
    groups = {g["name"]: g for g in method.optimizer_groups(model, settings("discriminative"), 1.0)}
    assert any(p is model.lm_head.weight for p in groups["embeddings"]["params"])


@pytest.mark.parametrize("decay", [0, -0.5, 1.5])
def test_discriminative_refuses_a_decay_outside_0_to_1(decay):
    with pytest.raises(StudioError) as exc:
        settings("discriminative", decay=decay)
    assert exc.value.field == "method.decay"


def _bitsandbytes_runs() -> str | None:
    from studio.methods.qlora import bitsandbytes_problem

    return bitsandbytes_problem()


@pytest.mark.parametrize("raw,layer", [({}, "Linear4bit"), ({"quant_type": "fp4", "double_quant": False},
                                                             "Linear4bit"), ({"bits": 8}, "Linear8bitLt")])
def test_qlora_quantises_the_base_and_trains_only_lora(raw, layer, tmp_path):
    if _bitsandbytes_runs():
        pytest.skip(f"bitsandbytes cannot load here: {_bitsandbytes_runs()}")
    from transformers import AutoModelForCausalLM

    tiny_llama().save_pretrained(tmp_path)
    method = METHODS.get("qlora")
    s = settings("qlora", r=4, **raw)
    method.check(s, "sft", "llama")
    model = method.prepare(AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32,
                                                                **method.load_kwargs(s)), s)
    q_proj = model.base_model.model.model.layers[0].self_attn.q_proj
    assert type(q_proj.base_layer).__name__ == layer
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    ids = torch.randint(0, 128, (2, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "lora_A" in n)


def test_qlora_without_bitsandbytes_says_to_install_it_or_pick_lora(monkeypatch):
    import studio.methods.qlora as qlora

    monkeypatch.setattr(qlora, "bitsandbytes_problem", lambda: "ModuleNotFoundError: No module named 'bitsandbytes'")
    with pytest.raises(StudioError, match="QLoRA needs the bitsandbytes package.*pick LoRA"):
        METHODS.get("qlora").check(settings("qlora"), "sft", "llama")


def test_qlora_refuses_an_initialisation_that_rewrites_the_quantised_base_before_the_job():
    with pytest.raises(StudioError) as exc:
        METHODS.get("qlora").check(settings("qlora", init="pissa"), "sft", "llama")
    assert exc.value.field == "method.init"
