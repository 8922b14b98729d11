"""GGUF export: a written file reads back (through transformers' GGUF loader) as the same model.

The tiny random Llama covers every quantisation in seconds; one slow test writes the real
SmolLM2-135M and compares it with the original, and its tokenizer metadata with the GGUF that
llama.cpp's own converter wrote for the embedded model.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import gguf
import pytest
import torch

from studio.errors import StudioError
from studio.export.gguf import (QUANT_TYPES, check_architecture, check_quant, llama3_rope_factors, load_gguf,
                                load_gguf_model, write_gguf)

TEXT = (
    "Gardening is one of the oldest ways people have found to slow down. A small vegetable patch needs "
    "only a few hours each week, yet it teaches patience in a way few other hobbies can. Seeds sown in "
    "early spring take weeks to show their first leaves, and a tomato plant may need three months before "
    "its fruit turns red. In the meantime the gardener learns to read the weather, to notice which corner "
    "of the yard stays wet after rain, and to tell a helpful beetle from a harmful one. Many beginners "
    "plant too much at once and then struggle to keep up with weeding and watering. A better plan is to "
    "start with two or three easy crops, such as lettuce, beans and herbs, and to add more once those "
    "are growing well. Compost made from kitchen scraps and fallen leaves feeds the soil for free, and a "
    "thick layer of mulch keeps the ground moist during the hottest weeks of summer. When the harvest "
    "finally comes, even a single basket of beans feels like a reward earned by care and attention."
)
# Top-1 agreement with the original model that each quantisation must reach on the tiny random Llama
# (its logits are nearly flat, so this is a harsher test than a trained model).
SMALL_VOCAB = 1024
TINY_AGREEMENT = {"F32": 0.999, "F16": 0.99, "BF16": 0.95, "Q8_0": 0.95, "Q5_0": 0.7, "Q4_0": 0.5}


def top1(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids).logits.argmax(-1)


@pytest.fixture(scope="module")
def small_tokenizer_dir(smollm2_tokenizer_dir, tmp_path_factory) -> Path:
    """SmolLM2's tokenizer cut to its first 1024 ids (and the merges among them), with its chat template.

    Reading a GGUF's 49k-token vocabulary back takes transformers 10-20 s; 1024 tokens keep these tests fast.
    """
    out = tmp_path_factory.mktemp("small-tokenizer")
    spec = json.loads((smollm2_tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = {text: index for text, index in spec["model"]["vocab"].items() if index < SMALL_VOCAB}
    spec["model"]["vocab"] = vocab
    spec["model"]["merges"] = [m for m in spec["model"]["merges"] if all(p in vocab for p in m) and "".join(m) in vocab]
    (out / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    for name in ("tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(smollm2_tokenizer_dir / name, out / name)
    return out


@pytest.fixture(scope="module")
def tiny(small_tokenizer_dir):
    """A 2-layer random Llama (hidden 64, 4 heads, 2 kv heads, tied head) and the small tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(small_tokenizer_dir)
    config = LlamaConfig(vocab_size=SMALL_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=True)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval(), tokenizer


@pytest.mark.parametrize("quant", list(TINY_AGREEMENT))
def test_a_gguf_reads_back_as_the_same_model_and_tokenizer(tiny, tmp_path, quant):
    model, tokenizer = tiny
    ids = torch.tensor([tokenizer.encode(TEXT)])
    seen = []
    result = write_gguf(model, tokenizer, tmp_path / "m.gguf", quant.lower(), progress=lambda f, n: seen.append(f))
    loaded, loaded_tok = load_gguf(tmp_path / "m.gguf")
    agreement = (top1(loaded, ids) == top1(model, ids)).float().mean().item()
    print(f"{quant}: top-1 agreement {agreement:.3f} over {ids.shape[1]} tokens, {result['bytes']} bytes")
    assert agreement >= TINY_AGREEMENT[quant]
    assert result["quant"] == quant and result["tensors"] == 2 * 9 + 2  # tied head: no output.weight
    assert result["quantized"] == result["tensors"] - result["kept_f32"] and result["fallback_f16"] == 0
    assert result["kept_f32"] == (0 if quant == "F32" else 5) and result["pre_tokenizer"] == "default"
    assert seen[0] == 0.0 and seen[-1] == 1.0 and len(seen) == result["tensors"] + 1
    assert loaded_tok.encode(TEXT) == ids[0].tolist()
    assert loaded_tok.chat_template == tokenizer.chat_template


def test_quantised_files_are_smaller_in_proportion_to_their_bits(tiny, tmp_path):
    model, tokenizer = tiny
    weights = {}
    for quant in ("F32", "F16", "Q8_0", "Q4_0"):
        path = tmp_path / f"{quant}.gguf"
        size = write_gguf(model, tokenizer, path, quant)["bytes"]
        weights[quant] = size - gguf.GGUFReader(path).data_offset  # less the vocabulary and header
    print({q: round(b / 1e6, 2) for q, b in weights.items()})
    assert 0.45 < weights["F16"] / weights["F32"] < 0.55
    assert 0.5 < weights["Q8_0"] / weights["F16"] < 0.6      # 34 bytes per 32 values against 64
    assert 0.25 < weights["Q4_0"] / weights["F16"] < 0.32    # 18 bytes per 32 values


def test_the_file_carries_llama_metadata_and_permuted_attention(tiny, tmp_path):
    model, tokenizer = tiny
    write_gguf(model, tokenizer, tmp_path / "m.gguf", "F32", metadata={"name": "tiny", "license": "mit"})
    reader = gguf.GGUFReader(tmp_path / "m.gguf")
    field = lambda key: reader.fields[key].contents()  # noqa: E731
    assert field("general.architecture") == "llama" and field("general.name") == "tiny"
    assert field("llama.attention.head_count_kv") == 2 and field("llama.rope.dimension_count") == 16
    assert field("tokenizer.ggml.model") == "gpt2" and field("tokenizer.ggml.add_bos_token") is False
    tensors = {t.name: t for t in reader.tensors}
    assert "output.weight" not in tensors
    q = model.model.layers[0].self_attn.q_proj.weight.detach()
    written = torch.from_numpy(tensors["blk.0.attn_q.weight"].data.copy())
    assert not torch.equal(written, q)  # rows reordered for llama.cpp's rotary layout ...
    assert torch.equal(written.sort(dim=0).values, q.sort(dim=0).values)  # ... but the same rows


def test_a_qwen2_model_round_trips(tiny, tmp_path):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    _, tokenizer = tiny
    config = Qwen2Config(vocab_size=SMALL_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).eval()
    write_gguf(model, tokenizer, tmp_path / "q.gguf", "F32")
    loaded = load_gguf_model(tmp_path / "q.gguf")
    ids = torch.tensor([tokenizer.encode(TEXT)])
    assert type(loaded).__name__ == "Qwen2ForCausalLM"
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, model(ids).logits, atol=1e-4)


def test_llama3_rope_scaling_is_written_as_the_factors_transformers_applies(tiny, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    _, tokenizer = tiny
    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    config = LlamaConfig(vocab_size=SMALL_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=2048, rope_parameters=rope)
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](config, "cpu")
    plain = 1.0 / (rope["rope_theta"] ** (torch.arange(0, 32, 2, dtype=torch.float32) / 32))
    assert torch.allclose(llama3_rope_factors(config), plain / scaled, rtol=1e-5)
    write_gguf(LlamaForCausalLM(config), tokenizer, tmp_path / "r.gguf", "Q8_0")
    freqs = next(t for t in gguf.GGUFReader(tmp_path / "r.gguf").tensors if t.name == "rope_freqs.weight")
    assert freqs.tensor_type == gguf.GGMLQuantizationType.F32 and len(freqs.data) == 16


@pytest.mark.parametrize("model_type", ["gpt2", "bert"])
def test_an_unsupported_architecture_is_refused_with_a_keyed_error(tiny, tmp_path, model_type):
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.for_model(model_type, vocab_size=64, hidden_size=32, n_embd=32, num_hidden_layers=1,
                                  n_layer=1, num_attention_heads=2, n_head=2, intermediate_size=64)
    with pytest.raises(StudioError) as err:
        check_architecture(config)
    assert err.value.key == "export.gguf.architecture" and model_type in err.value.message
    with pytest.raises(StudioError):
        write_gguf(AutoModel.from_config(config), tiny[1], tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


def test_quant_names_are_normalised_and_unknown_ones_refused():
    assert [check_quant(q.lower()) for q in QUANT_TYPES] == list(QUANT_TYPES)
    assert check_quant(" f32 ") == "F32"
    with pytest.raises(StudioError) as err:
        check_quant("Q4_K_M")
    assert err.value.key == "export.gguf.quant" and err.value.field == "quant" and "Q8_0" in err.value.message


def test_a_sentencepiece_style_tokenizer_is_refused(tiny, tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "▁a": 1, "▁b": 2}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")
    with pytest.raises(StudioError) as err:
        write_gguf(tiny[0], tokenizer, tmp_path / "s.gguf")
    assert err.value.key == "export.gguf.tokenizer"


@pytest.mark.slow
def test_the_real_smollm2_exports_close_to_the_original(workspace, tmp_path):
    from studio.models.embedded import smollm2_gguf_path
    from studio.models.loading import load_causal_lm

    model, tokenizer = load_causal_lm("smollm2-135m-instruct", workspace, for_training=False)
    model.eval()
    ids = torch.tensor([tokenizer.encode(TEXT + " " + TEXT[:600])])
    reference = top1(model, ids)
    figures = {}
    for quant, needed in (("Q8_0", 0.95), ("Q4_0", 0.6)):  # F16 is checked on the tiny model: it only casts
        path = tmp_path / f"smollm2-{quant}.gguf"
        started = time.perf_counter()
        result = write_gguf(model, tokenizer, path, quant)
        seconds = time.perf_counter() - started
        loaded = load_gguf_model(path)
        agreement = (top1(loaded, ids) == reference).float().mean().item()
        figures[quant] = (round(agreement, 3), round(result["bytes"] / 1e6, 1), round(seconds, 1))
        assert agreement >= needed, (quant, agreement)
        del loaded
    print(f"SmolLM2-135M over {ids.shape[1]} tokens: quant -> (top-1 agreement, MB, write s): {figures}")
    # The tokenizer metadata matches what llama.cpp's converter wrote for the packaged model.
    ours = gguf.GGUFReader(tmp_path / "smollm2-Q8_0.gguf").fields
    theirs = gguf.GGUFReader(smollm2_gguf_path()).fields
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                "tokenizer.ggml.padding_token_id", "tokenizer.ggml.add_bos_token", "tokenizer.chat_template",
                "llama.context_length", "llama.rope.freq_base", "llama.attention.head_count_kv"):
        assert ours[key].contents() == theirs[key].contents(), key
