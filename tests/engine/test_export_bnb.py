"""bitsandbytes exports (studio.export.bnb): 4-bit NF4 and 8-bit reload with from_pretrained, stay close to
fp32, and shrink the linear layers as the bit width says; bad settings are refused naming the field."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from studio.errors import StudioError

ROOT = Path(__file__).resolve().parents[2]
HELDOUT = (ROOT / "assets" / "export" / "heldout-en.txt").read_text(encoding="utf-8")
LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.fixture(scope="module")
def exports(tiny_llama_dir, tmp_path_factory):
    """{mode: (save_bnb's answer, folder)} for 4-bit NF4 with double quantisation and 8-bit, bf16 compute."""
    from studio.export.bnb import save_bnb

    done = {}
    for mode, bits in (("nf4", 4), ("int8", 8)):
        out = tmp_path_factory.mktemp(f"bnb-{mode}")
        done[mode] = save_bnb(tiny_llama_dir, out, bits=bits, quant_type="nf4", compute_dtype="bfloat16"), out
    return done


@pytest.fixture(scope="module")
def reference(tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    ids = tokenizer(HELDOUT, return_tensors="pt").input_ids[:, :128]
    with torch.inference_mode():
        return ids, AutoModelForCausalLM.from_pretrained(tiny_llama_dir)(input_ids=ids).logits.float()


@pytest.mark.parametrize("mode, layer, min_top1", [("nf4", "Linear4bit", 0.8), ("int8", "Linear8bitLt", 0.95)])
def test_the_export_reloads_quantised_and_stays_close_to_fp32(exports, reference, mode, layer, min_top1):
    from studio.export.bnb import load_bnb

    info, folder = exports[mode]
    model, tokenizer = load_bnb(folder)
    assert type(model.get_submodule("model.layers.0.mlp.down_proj")).__name__ == layer
    assert json.loads((folder / "config.json").read_text())["quantization_config"]["quant_method"] == "bitsandbytes"
    ids, fp32 = reference
    with torch.inference_mode():
        quantised = model(input_ids=ids).logits.float()
    top1 = (quantised.argmax(-1) == fp32.argmax(-1)).float().mean().item()
    # Measured on the random 2-layer model with bf16 compute: nf4 top-1 ~0.9, max |diff| ~0.1; int8 ~0.99, ~0.03.
    assert top1 >= min_top1
    assert (quantised - fp32).abs().max().item() < 0.5
    assert model.generate(ids[:, :6], max_new_tokens=3, do_sample=False).shape == (1, 9)
    assert tokenizer.chat_template


def test_the_saved_4bit_weights_are_the_ones_quantised_in_memory(exports, tiny_llama_dir):
    """bitsandbytes 0.50 repacks 4-bit weights for the CPU at the first forward and writes them back wrongly;
    save_bnb saves before any forward, so the reloaded model computes what the quantised one did."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from studio.export.bnb import load_bnb

    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=torch.bfloat16)
    fresh = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, quantization_config=config, dtype=torch.bfloat16,
                                                 device_map="cpu")
    ids = torch.tensor([[1, 540, 2000, 30, 77, 900, 12]])
    with torch.inference_mode():
        assert torch.equal(fresh(input_ids=ids).logits, load_bnb(exports["nf4"][1])[0](input_ids=ids).logits)


def _linear_bytes(folder: Path) -> int:
    from safetensors import safe_open

    with safe_open(folder / "model.safetensors", "pt") as f:
        return sum(f.get_tensor(k).nbytes for k in f.keys() if any(f".{name}." in k for name in LINEAR))


@pytest.mark.parametrize("mode, low, high", [("nf4", 0.125, 0.2), ("int8", 0.25, 0.27)])
def test_linear_layers_shrink_by_the_bit_width(exports, tiny_llama_dir, mode, low, high):
    info, folder = exports[mode]
    ratio = _linear_bytes(folder) / _linear_bytes(tiny_llama_dir)
    # 4 or 8 bits a weight, plus the block scales (nf4, double-quantised) or one scale per row (int8). nf4 also
    # stores ~300 bytes a layer (code book, JSON state), which weighs on these 4-16 K weight layers (0.19 here).
    assert low <= ratio <= high
    whole = info["bytes"] / (tiny_llama_dir / "model.safetensors").stat().st_size
    assert whole < 0.55  # the embedding (most of this tiny model) is kept in bf16


@pytest.mark.parametrize("kwargs, match", [(dict(bits=3), "4 or 8 bits"), (dict(quant_type="int4"), "nf4"),
                                           (dict(compute_dtype="float8"), "compute dtype")])
def test_bad_bnb_settings_are_refused_before_loading_anything(tmp_path, kwargs, match):
    from studio.export.bnb import save_bnb

    with pytest.raises(StudioError, match=match) as refused:
        save_bnb(tmp_path / "missing", tmp_path / "out", **kwargs)
    assert refused.value.field in ("quant", "compute_dtype")
    assert not (tmp_path / "out").exists()
