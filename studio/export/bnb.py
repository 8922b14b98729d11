"""bitsandbytes exports: 8-bit (LLM.int8) and 4-bit (NF4/FP4, optional double quantisation) checkpoints.

`save_bnb` loads a merged full-precision model folder through `transformers.BitsAndBytesConfig`, which
quantises every linear layer as it loads, and saves the result in the Hugging Face format: safetensors with
the packed weights and their quantisation state, and a `quantization_config` in config.json, so a plain
`AutoModelForCausalLM.from_pretrained(folder)` (here `load_bnb`) reloads it quantised. Embeddings, norms and
the LM head stay in the compute dtype. bitsandbytes 0.50 runs both modes on a CPU as well as on CUDA (8-bit casts
its inputs to float16; 4-bit uses its AVX512-BF16 kernel where the CPU has one), so no GPU is required.

The model is saved before it runs anything: on a CPU with AVX512-BF16, a 4-bit layer's first forward pass
repacks its weights for the CPU kernel, and bitsandbytes 0.50's inverse repacking at save time writes the block
scales transposed (without double quantisation) or re-quantised (with it). Writing the merged folder is the
export pipeline's; measuring the result is `studio.export.report`'s.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from studio.errors import StudioError
from studio.phase import Phase

BITS = (4, 8)
QUANT_TYPES = ("nf4", "fp4")
COMPUTE_DTYPES = ("auto", "bfloat16", "float16", "float32")


def check_bnb_settings(bits: int, quant_type: str, compute_dtype: str) -> None:
    if bits not in BITS:
        raise StudioError(f"bitsandbytes quantises to 4 or 8 bits, not {bits}; choose 4 (NF4/FP4) or 8 (LLM.int8).",
                          field="quant", key="export.bnb.bad_bits", bits=bits)
    if bits == 4 and quant_type not in QUANT_TYPES:
        raise StudioError(f"Unknown 4-bit type '{quant_type}'; choose 'nf4' (best for trained weights) or 'fp4'.",
                          field="quant", key="export.bnb.bad_quant_type", quant_type=quant_type)
    if compute_dtype not in COMPUTE_DTYPES:
        choices = ", ".join(COMPUTE_DTYPES)
        raise StudioError(f"Unknown compute dtype '{compute_dtype}'; choose one of {choices}.",
                          field="compute_dtype", key="export.bnb.bad_compute_dtype",
                          compute_dtype=compute_dtype, choices=choices)


def resolve_compute_dtype(compute_dtype: str):
    """The torch dtype for 'auto' and the named ones: bf16 where this machine has fast bf16, else float32."""
    import torch

    from studio.models.loading import resolve_precision, torch_dtype

    if compute_dtype == "auto":
        return torch_dtype(resolve_precision("auto"))
    return getattr(torch, compute_dtype)


def save_bnb(merged_dir: Path, out_dir: Path, bits: int = 4, quant_type: str = "nf4", double_quant: bool = True,
             compute_dtype: str = "auto", progress: Callable[[float, str], None] | None = None) -> dict:
    """Quantise the model in `merged_dir` with bitsandbytes and save it, with its tokenizer, into `out_dir`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    quant_type = (quant_type or "nf4").strip().lower()
    check_bnb_settings(bits, quant_type, compute_dtype)
    progress = progress or (lambda fraction, message: None)
    dtype = resolve_compute_dtype(compute_dtype)
    if bits == 8:
        config = BitsAndBytesConfig(load_in_8bit=True)
    else:
        config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant_type,
                                    bnb_4bit_use_double_quant=double_quant, bnb_4bit_compute_dtype=dtype)
    progress(0.0, Phase(f"quantising to {bits}-bit with bitsandbytes", "quantising_bnb", bits=bits))
    model = AutoModelForCausalLM.from_pretrained(merged_dir, quantization_config=config, dtype=dtype,
                                                 device_map=_device())
    progress(0.7, Phase("writing the bitsandbytes checkpoint", "writing_bnb"))
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(merged_dir).save_pretrained(out_dir)
    progress(1.0, Phase("done", "done"))
    return {"path": str(out_dir), "bits": bits, "quant_type": quant_type if bits == 4 else "int8",
            "double_quant": bool(double_quant) if bits == 4 else False, "compute_dtype": str(dtype).split(".")[-1],
            "bytes": sum(f.stat().st_size for f in out_dir.glob("*.safetensors"))}


def load_bnb(path: Path):
    """(model, tokenizer) of a bitsandbytes export; its config.json carries the quantisation settings."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, device_map=_device())
    return model.eval(), AutoTokenizer.from_pretrained(path)


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
