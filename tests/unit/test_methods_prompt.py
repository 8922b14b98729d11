"""Prompt-learning methods and LLaMA-Adapter on tiny Llamas: what trains, what is refused, what generates."""
from __future__ import annotations

import pytest
import torch

from studio.errors import StudioError
from studio.methods import METHODS
from studio.settings import parse_settings

PROMPT_LEARNING = ["prompt_tuning", "prefix_tuning", "p_tuning"]


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, vocab_size=128,
                                        pad_token_id=0))


def prepared(name: str, **settings):
    method = METHODS.get(name)
    return method.prepare(tiny_llama(), parse_settings(method.settings_cls, settings, "method"))


def trainable(model) -> dict[str, int]:
    return {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name,settings,expected", [
    ("prompt_tuning", {"num_virtual_tokens": 7}, 7 * 64),
    # no projection: keys and values of each layer, 2 KV heads x 16 dims each
    ("prefix_tuning", {"num_virtual_tokens": 7}, 7 * 2 * 2 * 32),
    ("llama_adapter", {"adapter_len": 5, "adapter_layers": 1}, 5 * 64 + 1),  # prompt + gate of the top layer
])
def test_only_the_virtual_tokens_train_and_the_count_matches_peft(name, settings, expected):
    model = prepared(name, **settings)
    counts = trainable(model)
    assert sum(counts.values()) == expected == model.get_nb_trainable_parameters()[0]
    assert all("prompt_encoder" in n or "adaption_" in n for n in counts)


@pytest.mark.parametrize("name,settings,part", [
    ("prefix_tuning", {"prefix_projection": True, "encoder_hidden_size": 16}, "transform"),
    ("p_tuning", {"encoder_reparameterization_type": "MLP", "encoder_hidden_size": 16}, "mlp_head"),
    ("p_tuning", {"encoder_reparameterization_type": "LSTM", "encoder_hidden_size": 16}, "lstm_head"),
])
def test_prompt_encoders_train_their_networks_and_nothing_of_the_model(name, settings, part):
    model = prepared(name, num_virtual_tokens=4, **settings)
    counts = trainable(model)
    assert any(part in n for n in counts) and all(n.startswith("prompt_encoder.") for n in counts)
    assert sum(counts.values()) == model.get_nb_trainable_parameters()[0]


def test_text_init_without_text_is_refused_naming_the_field():
    with pytest.raises(StudioError) as exc:
        parse_settings(METHODS.get("prompt_tuning").settings_cls, {"init": "text", "init_text": "  "}, "method")
    assert exc.value.field == "method.init_text"


def test_text_init_starts_from_the_texts_embeddings_offline(tiny_llama_dir, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    words = model.get_input_embeddings().weight.detach().clone()
    method = METHODS.get("prompt_tuning")
    settings = parse_settings(method.settings_cls, {"num_virtual_tokens": 6, "init": "text",
                                                    "init_text": "Answer briefly:"}, "method")
    tuned = method.prepare(model, settings)
    ids = AutoTokenizer.from_pretrained(tiny_llama_dir)("Answer briefly:")["input_ids"]
    ids = (ids * 6)[:6]  # peft repeats a short text up to the number of virtual tokens
    assert torch.equal(tuned.prompt_encoder["default"].embedding.weight.detach(), words[ids])


def test_llama_adapter_refuses_other_model_types_before_the_job():
    method = METHODS.get("llama_adapter")
    with pytest.raises(StudioError, match="Llama models only.*'bert'") as exc:
        method.check(method.settings_cls(), "sft", "bert")
    assert exc.value.field == "method.name"
    method.check(method.settings_cls(), "sft", "llama")


def test_llama_adapter_caps_its_layers_at_the_models_depth():
    model = prepared("llama_adapter", adapter_len=3, adapter_layers=30)
    assert model.get_nb_trainable_parameters()[0] == 2 * (3 * 64 + 1)


@pytest.mark.parametrize("name", PROMPT_LEARNING)
def test_prompt_learning_methods_serve_sft_and_preferences_but_not_orpo_and_are_not_mergeable(name):
    method = METHODS.get(name)
    assert method.stages == ("sft", "dpo", "kto", "rl") and not method.mergeable
    with pytest.raises(StudioError):
        method.check(method.settings_cls(), "classify", "llama")


@pytest.mark.parametrize("name", [*PROMPT_LEARNING, "llama_adapter"])
def test_cached_generation_matches_step_by_step_prediction(name, tmp_path):
    """Generation with the KV cache must use the virtual tokens exactly as the trained forward pass does."""
    model = prepared(name, num_virtual_tokens=5) if name != "llama_adapter" else prepared(name, adapter_layers=2)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p))  # a trained-looking adapter, so that it changes the predictions
    model.save_pretrained(tmp_path)
    loaded = METHODS.get(name).load_result(tiny_llama(), tmp_path).eval()
    prompt = torch.randint(1, 128, (1, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = prompt
        for _ in range(6):
            nxt = loaded(input_ids=expected, attention_mask=torch.ones_like(expected)).logits[:, -1].argmax(-1)
            expected = torch.cat([expected, nxt[:, None]], dim=1)
        generated = loaded.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=6,
                                    do_sample=False)
    assert generated.tolist() == expected.tolist()
