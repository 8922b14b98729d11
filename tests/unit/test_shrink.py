"""A smaller student from a model's own layers (studio.models.shrink): which layers stay, and that the cut model
still generates with its cache and saves and loads as it is."""
from __future__ import annotations

import pytest
import torch

from studio.errors import StudioError
from studio.models.shrink import check_keep, keep_layers, spread


def test_spread_keeps_the_first_and_last_layer_evenly_apart():
    assert spread(30, 10) == [0, 3, 6, 10, 13, 16, 19, 23, 26, 29]
    assert spread(4, 2) == [0, 3] and spread(4, 1) == [0] and spread(3, 3) == [0, 1, 2]
    with pytest.raises(ValueError):
        spread(4, 0)


def _llama(layers: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


def test_a_cut_model_generates_with_its_cache_and_loads_back_the_same(tmp_path):
    model = _llama(5)
    third = model.model.layers[2]
    assert keep_layers(model, 3) == [0, 2, 4]
    assert model.config.num_hidden_layers == 3 and model.model.layers[1] is third
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1, 2]
    prompt = torch.tensor([[5, 9, 11, 3]])
    with torch.no_grad():
        cached = model.generate(prompt, max_new_tokens=4, do_sample=False, use_cache=True)
        uncached = model.generate(prompt, max_new_tokens=4, do_sample=False, use_cache=False)
    assert cached.tolist() == uncached.tolist()
    model.save_pretrained(tmp_path)
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert loaded.config.num_hidden_layers == 3
    with torch.no_grad():
        assert torch.allclose(loaded(prompt).logits, model(prompt).logits, atol=1e-5)


def test_keeping_as_many_layers_as_the_model_has_is_refused_naming_the_field():
    model = _llama(2)
    with pytest.raises(StudioError) as info:
        check_keep(model.config, 2)
    assert info.value.field == "distill.student_layers" and "has 2 layers" in str(info.value)
    assert model.config.num_hidden_layers == 2
