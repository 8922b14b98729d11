"""Write a merged Hugging Face causal LM as one GGUF file that llama.cpp, Ollama and LM Studio run.

`write_gguf` mirrors what llama.cpp's `convert_hf_to_gguf.py` does for `LlamaForCausalLM` (and
Qwen2): the `<arch>.*` hyperparameters, the tensors under llama.cpp's names (q_proj/k_proj rows
permuted into llama.cpp's rotary layout), no `output.weight` when the head is tied to the
embeddings, and the tokenizer from `gguf_vocab`. It streams: header and tensor table first, then each
tensor is converted, quantised and written in turn, so memory holds one tensor's copy at a time.

Quantisation uses gguf-py's reference quantisers. 1-D tensors (norms, rope factors) stay F32; a
tensor whose rows are not a whole number of 32-value blocks falls back to F16, as llama.cpp does.
Every 2-D tensor, token embeddings and output head included, gets the chosen type: llama-quantize
would give the head Q6_K for Q4/Q5 files, but gguf-py has no Q6_K quantiser, so we keep it simple.

`load_gguf` reads a file back with transformers, which dequantises every tensor to `dtype`: it is for
checking an export (reports, tests), not for fast inference. Renaming into place is the caller's job.
"""
from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gguf
import numpy as np
import torch

from studio.errors import StudioError
from studio.export.gguf_vocab import add_vocab

QUANT_TYPES = ("F16", "BF16", "Q8_0", "Q5_0", "Q5_1", "Q4_0", "Q4_1")
_ALL_QUANTS = (*QUANT_TYPES, "F32")
_FILE_TYPES = {"F32": gguf.LlamaFileType.ALL_F32, "F16": gguf.LlamaFileType.MOSTLY_F16,
               "BF16": gguf.LlamaFileType.MOSTLY_BF16, "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
               "Q5_0": gguf.LlamaFileType.MOSTLY_Q5_0, "Q5_1": gguf.LlamaFileType.MOSTLY_Q5_1,
               "Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0, "Q4_1": gguf.LlamaFileType.MOSTLY_Q4_1}


@dataclass(frozen=True)
class GgufArch:
    """How one transformers architecture maps onto a llama.cpp one."""

    name: str              # general.architecture, and the prefix of the hyperparameter keys
    tensors: gguf.MODEL_ARCH
    permute_qk: bool       # llama.cpp's llama graph wants q/k rows in its own rotary order
    examples: str


ARCHES = {
    "llama": GgufArch("llama", gguf.MODEL_ARCH.LLAMA, True, "SmolLM2, Llama 3"),
    "qwen2": GgufArch("qwen2", gguf.MODEL_ARCH.QWEN2, False, "Qwen2, Qwen2.5"),
}
SUPPORTED = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}


def check_architecture(config) -> None:
    """Raise a StudioError unless GGUF export knows `config.model_type`."""
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED:
        known = ", ".join(f"{t} ({SUPPORTED[t]}, e.g. {ARCHES[t].examples})" for t in SUPPORTED)
        raise StudioError(f"GGUF export supports: {known}; '{model_type}' is not one of them; "
                          "export as merged or int8 instead.", field="format",
                          key="export.gguf.architecture", model_type=str(model_type), known=known)


def check_quant(quant: str) -> str:
    """`quant` in canonical spelling ("q8_0" -> "Q8_0"); a StudioError naming the choices otherwise."""
    canonical = str(quant).strip().upper()
    if canonical not in _ALL_QUANTS:
        choices = ", ".join(QUANT_TYPES)
        raise StudioError(f"'{quant}' is not a GGUF quantisation; choose one of {choices} (or F32).",
                          field="quant", key="export.gguf.quant", quant=str(quant), choices=choices)
    return canonical


def _rope(config) -> tuple[float, dict]:
    """(rope_theta, scaling parameters): transformers 5 keeps both in `config.rope_parameters`."""
    params = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    theta = params.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    return float(theta), params


def llama3_rope_factors(config) -> torch.Tensor:
    """The per-frequency divisors llama.cpp reads from `rope_freqs.weight` for Llama 3.1-style rope."""
    theta, params = _rope(config)
    dim = _head_dim(config)
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor = params.get("factor", 8.0)
    low, high = params.get("low_freq_factor", 1.0), params.get("high_freq_factor", 4.0)
    old_context = params.get("original_max_position_embeddings", 8192)
    factors = []
    for freq in freqs.tolist():
        wavelen = 2 * math.pi / freq
        if wavelen < old_context / high:
            factors.append(1.0)
        elif wavelen > old_context / low:
            factors.append(factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return torch.tensor(factors, dtype=torch.float32)


def _head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def _add_hyperparameters(writer: gguf.GGUFWriter, config, quant: str) -> None:
    theta, rope = _rope(config)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
    writer.add_rope_freq_base(theta)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_dimension_count(_head_dim(config))
    if _head_dim(config) != config.hidden_size // config.num_attention_heads:
        writer.add_key_length(_head_dim(config))
        writer.add_value_length(_head_dim(config))
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(_FILE_TYPES[quant])
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    elif kind not in ("default", "llama3"):  # llama3 travels as the rope_freqs tensor
        raise StudioError(f"GGUF export does not handle '{kind}' rope scaling yet; export as merged instead.",
                          field="format", key="export.gguf.rope", kind=str(kind))


def _add_metadata(writer: gguf.GGUFWriter, metadata: dict[str, Any]) -> None:
    writer.add_type(gguf.GGUFType.MODEL)
    for key, add in (("name", writer.add_name), ("description", writer.add_description),
                     ("license", writer.add_license), ("author", writer.add_author)):
        if metadata.get(key):
            add(str(metadata[key]))
    if metadata.get("base_model"):
        writer.add_base_model_count(1)
        writer.add_base_model_name(0, str(metadata["base_model"]))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _permute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """Reorder q/k rows from transformers' rotate-half layout to llama.cpp's interleaved one."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tensors(model, arch: GgufArch) -> list[tuple[str, Callable[[], torch.Tensor], tuple[int, ...]]]:
    """(gguf name, lazy float tensor, shape) for every tensor the file holds, in writing order."""
    config = model.config
    names = gguf.get_tensor_name_map(arch.tensors, config.num_hidden_layers)
    n_head = config.num_attention_heads
    n_kv = getattr(config, "num_key_value_heads", None) or n_head
    out = []
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and getattr(config, "tie_word_embeddings", False):
            continue  # llama.cpp reuses token_embd for a tied head
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None or not tensor.is_floating_point():
            raise StudioError(f"The model has a tensor '{hf_name}' that GGUF export does not know; "
                              "export as merged instead.", field="format", key="export.gguf.tensor",
                              tensor=hf_name)
        heads = {"q_proj": n_head, "k_proj": n_kv}.get(hf_name.split(".")[-2]) if arch.permute_qk else None

        def load(t=tensor, heads=heads):
            t = t.detach().to("cpu", torch.float32)
            return _permute(t, heads) if heads else t
        out.append((name, load, tuple(tensor.shape)))
    _, rope = _rope(config)
    if rope.get("rope_type") == "llama3":
        factors = llama3_rope_factors(config)
        out.append((gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", lambda: factors,
                    tuple(factors.shape)))
    return out


def _storage_type(name: str, shape: tuple[int, ...], quant: str) -> gguf.GGMLQuantizationType:
    """The type one tensor is stored in: llama.cpp's rules for `quant`."""
    if len(shape) <= 1 or name.endswith("_norm.weight") or quant == "F32":
        return gguf.GGMLQuantizationType.F32
    qtype = gguf.GGMLQuantizationType[quant]
    block, _ = gguf.GGML_QUANT_SIZES[qtype]
    if shape[-1] % block:
        return gguf.GGMLQuantizationType.F16
    return qtype


def _encode(tensor: torch.Tensor, qtype: gguf.GGMLQuantizationType) -> np.ndarray:
    return gguf.quants.quantize(tensor.numpy(), qtype)


def _byte_size(shape: tuple[int, ...], qtype: gguf.GGMLQuantizationType) -> tuple[tuple[int, ...], np.dtype]:
    """The numpy shape and dtype `_encode` returns, known before any tensor is converted."""
    if qtype == gguf.GGMLQuantizationType.F32:
        return shape, np.dtype(np.float32)
    if qtype == gguf.GGMLQuantizationType.F16:
        return shape, np.dtype(np.float16)
    return gguf.quants.quant_shape_to_byte_shape(shape, qtype), np.dtype(np.uint8)


def write_gguf(model, tokenizer, path: Path, quant: str = "F16",
               progress: Callable[[float, str], None] | None = None,
               metadata: dict | None = None) -> dict:
    """Write `model` (a merged, in-memory transformers causal LM) and `tokenizer` as one GGUF at `path`.

    Returns {"path", "quant", "tensors", "bytes", "quantized", "kept_f32", "fallback_f16",
    "pre_tokenizer", "seconds"}: `quantized` counts tensors stored in `quant`, `kept_f32` the 1-D
    ones left in F32, `fallback_f16` those whose rows do not split into blocks.
    """
    quant = check_quant(quant)
    config = model.config
    check_architecture(config)
    arch = ARCHES[config.model_type]
    started = time.perf_counter()
    path = Path(path)
    plan = [(name, load, _storage_type(name, shape, quant), shape) for name, load, shape in _tensors(model, arch)]
    writer = gguf.GGUFWriter(path, arch.name)
    try:
        _add_metadata(writer, metadata or {})
        _add_hyperparameters(writer, config, quant)
        pre = add_vocab(writer, tokenizer, config.vocab_size)
        for name, _, qtype, shape in plan:
            byte_shape, dtype = _byte_size(shape, qtype)
            nbytes = int(np.prod(byte_shape)) * dtype.itemsize
            writer.add_tensor_info(name, byte_shape, dtype, nbytes,
                                   raw_dtype=qtype if dtype == np.uint8 else None)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for i, (name, load, qtype, _) in enumerate(plan):
            if progress is not None:
                progress(i / len(plan), name)
            with torch.no_grad():
                writer.write_tensor_data(_encode(load(), qtype))
        if progress is not None:
            progress(1.0, "done")
    except BaseException:
        writer.close()
        path.unlink(missing_ok=True)  # never leave half a file that looks like a model
        raise
    writer.close()
    requested = gguf.GGMLQuantizationType[quant]
    counts = Counter(qtype for _, _, qtype, _ in plan)
    f32, f16 = gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16
    return {"path": str(path), "quant": quant, "tensors": len(plan), "bytes": path.stat().st_size,
            "quantized": counts[requested], "kept_f32": counts[f32] if requested != f32 else 0,
            "fallback_f16": counts[f16] if requested != f16 else 0,
            "pre_tokenizer": pre, "seconds": round(time.perf_counter() - started, 2)}


def load_gguf_model(path: Path, dtype: torch.dtype = torch.float32):
    """The model read back from a GGUF by transformers, every tensor dequantised to `dtype` (no tokenizer: rebuilding
    a 49k-token vocabulary from the file takes transformers 10-20 s)."""
    from transformers import AutoModelForCausalLM, GgufConfig

    path = Path(path)
    return AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype,
                                                quantization_config=GgufConfig(dequantize=True)).eval()


def load_gguf(path: Path, dtype: torch.dtype = torch.float32):
    """(model, tokenizer) read back from a GGUF by transformers; every tensor is dequantised to `dtype`."""
    from transformers import AutoTokenizer

    path = Path(path)
    return load_gguf_model(path, dtype), AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
