"""Bottleneck adapters on a tiny random Llama: identity at start, only adapters train, exact size, save/reload."""
from __future__ import annotations

import json

import pytest
import torch

from studio.errors import StudioError
from studio.methods import METHODS
from studio.methods.bottleneck import BottleneckSettings
from studio.settings import parse_settings

HIDDEN, LAYERS = 64, 2
ADAPTERS = METHODS.get("adapters")


def tiny_llama(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=LAYERS, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=128)
    return LlamaForCausalLM(config).eval()


def logits(model, ids=torch.arange(1, 17).unsqueeze(0)):
    with torch.no_grad():
        return model(input_ids=ids).logits


def settings(**kw) -> BottleneckSettings:
    return parse_settings(BottleneckSettings, kw, "method")


def trainable(model) -> dict:
    return {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}


def train_a_few_steps(model, steps: int = 3):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(1))
    model.train()
    for _ in range(steps):
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval()


@pytest.mark.parametrize("style", ["houlsby", "pfeiffer"])
def test_adapted_model_starts_equal_to_the_base(style):
    base = logits(tiny_llama())
    adapted = ADAPTERS.prepare(tiny_llama(), settings(style=style, non_linearity="gelu"))
    assert torch.equal(logits(adapted), base)  # zero up-projection: exact identity, not just close


@pytest.mark.parametrize("style,sites", [("houlsby", 2), ("pfeiffer", 1)])
def test_only_adapters_train_and_their_count_is_exact(style, sites):
    model = ADAPTERS.prepare(tiny_llama(), settings(style=style, reduction_factor=16))
    params = trainable(model)
    assert params and all(".bottleneck_adapter." in n for n in params)
    bottleneck = HIDDEN // 16
    per_adapter = 2 * HIDDEN * bottleneck + bottleneck + HIDDEN  # down W+b, up W+b
    assert sum(params.values()) == LAYERS * sites * per_adapter == LAYERS * sites * 580


def test_gradient_reaches_only_the_adapters():
    model = ADAPTERS.prepare(tiny_llama(), settings(style="houlsby"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_a_few_steps(model)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == set(trainable(model))  # every adapter tensor moved, no base tensor did


def test_gradient_checkpointing_still_trains_the_adapters():
    model = ADAPTERS.prepare(tiny_llama(), settings())
    model.gradient_checkpointing_enable()
    ups = {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith("up.weight")}
    train_a_few_steps(model, steps=2)
    assert all(not torch.equal(p, ups[n]) for n, p in model.named_parameters() if n in ups)


@pytest.mark.parametrize("style", ["houlsby", "pfeiffer"])
def test_saved_adapter_reloads_to_identical_logits_and_holds_only_adapter_tensors(style, tmp_path, tmp_path_factory):
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    tokenizer = _byte_tokenizer(tmp_path_factory)
    model = train_a_few_steps(ADAPTERS.prepare(tiny_llama(), settings(style=style, non_linearity="silu")))
    out = ADAPTERS.save(model, tokenizer, tmp_path)
    assert out.name == ADAPTERS.result_kind == "adapter"
    weights = load_file(out / "bottleneck.safetensors")
    assert set(weights) == set(trainable(model))
    config = json.loads((out / "bottleneck_config.json").read_text())
    assert config["style"] == style and config["hidden_size"] == HIDDEN and config["bottleneck_size"] == 4
    assert AutoTokenizer.from_pretrained(out) is not None
    reloaded = ADAPTERS.load_result(tiny_llama(), out)
    assert torch.equal(logits(reloaded), logits(model))
    assert not torch.allclose(logits(reloaded), logits(tiny_llama()), atol=1e-4)


def test_adapter_for_another_model_is_refused(tmp_path, tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    model = ADAPTERS.prepare(tiny_llama(), settings(style="houlsby"))
    out = ADAPTERS.save(model, _byte_tokenizer(tmp_path_factory), tmp_path)
    deeper = LlamaForCausalLM(LlamaConfig(hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=3,
                                          num_attention_heads=4, num_key_value_heads=2, vocab_size=128))
    with pytest.raises(StudioError, match="trained for another model"):
        ADAPTERS.load_result(deeper, out)
    wider = LlamaForCausalLM(LlamaConfig(hidden_size=128, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, vocab_size=128))
    with pytest.raises(StudioError, match="trained for another model"):
        ADAPTERS.load_result(wider, out)


def test_bad_reduction_factor_is_refused():
    with pytest.raises(StudioError) as exc:
        settings(reduction_factor=0)
    assert exc.value.field == "method.reduction_factor"
    with pytest.raises(StudioError, match="leaves no bottleneck") as exc:
        ADAPTERS.prepare(tiny_llama(), settings(reduction_factor=HIDDEN + 1))
    assert exc.value.field == "method.reduction_factor"
    with pytest.raises(StudioError) as exc:
        settings(non_linearity="tanh")
    assert exc.value.field == "method.non_linearity"


def test_non_llama_models_are_refused_before_the_job():
    ADAPTERS.check(settings(), "sft", "llama")
    with pytest.raises(StudioError, match="needs a llama or mistral or qwen2 model"):
        ADAPTERS.check(settings(), "sft", "bert")
    assert ADAPTERS.mergeable is False and "Not mergeable" in ADAPTERS.summary


@pytest.mark.parametrize("style,expected", [("houlsby", 2_525_040), ("pfeiffer", 1_262_520)])
def test_adapter_size_on_a_smollm2_135m_shaped_model(style, expected):
    """Counted on the instantiated SmolLM2-135M architecture (meta tensors, no memory): 576 wide, 30 blocks."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True)
    with torch.device("meta"):
        model = ADAPTERS.prepare(LlamaForCausalLM(config), settings(style=style))
    assert sum(trainable(model).values()) == expected == (2 if style == "houlsby" else 1) * 30 * (2 * 576 * 36 + 36 + 576)


def _byte_tokenizer(tmp_path_factory):
    """A minimal real tokenizer (no downloads) so `save` has something to write beside the weights."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {chr(i): i for i in range(32, 127)} | {"<unk>": 0}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    return PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>")
