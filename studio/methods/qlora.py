"""QLoRA: LoRA on top of a base model whose weights are stored in 4 or 8 bits.

The base loads through bitsandbytes (4-bit NF4 or FP4, optionally double-quantised, or 8-bit),
which cuts the frozen weights' memory to about a quarter (4-bit) of bf16; the LoRA matrices stay
in full precision and are the only thing that trains. `peft.prepare_model_for_kbit_training`
casts the remaining small weights to fp32 for stable training. The result is a normal LoRA
adapter, loaded onto an unquantised base for inference. All LoRA settings and their checks come
from the LoRA method; this module adds only the quantisation. bitsandbytes runs on CUDA and, in
recent versions, slowly on CPU: the dequantisation costs time rather than saving it there.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any

from studio.errors import StudioError
from studio.methods.base import METHODS, PREFERENCE_STAGES
from studio.methods.lora import Lora, LoraSettings
from studio.settings import setting


@dataclass
class QloraSettings(LoraSettings):
    bits: int = setting(4, help="Bits per frozen base weight: 4 (smallest, the usual QLoRA) or 8.", choices=(4, 8))
    quant_type: str = setting("nf4", help="4-bit number format: 'nf4' (fits normally distributed weights, "
                              "the QLoRA default) or 'fp4'. Ignored at 8 bits.", choices=("nf4", "fp4"))
    double_quant: bool = setting(True, help="Also quantise the quantisation constants (saves ~0.4 bits per "
                                 "weight at 4 bits).")
    compute_dtype: str = setting("bf16", help="Precision the 4-bit weights are expanded to for each matrix "
                                 "product: 'bf16' (faster, less memory) or 'fp32'.", choices=("bf16", "fp32"))

    name = "qlora"


def bitsandbytes_problem() -> str | None:
    """Why bitsandbytes cannot be used here, or None when it imports."""
    try:
        importlib.import_module("bitsandbytes")
    except Exception as exc:  # a broken native library raises more than ImportError
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    return None


@METHODS.register("qlora")
class Qlora(Lora):
    settings_cls = QloraSettings
    stages = ("sft", "cpt", *PREFERENCE_STAGES)  # the stages this method has been tested on
    title = "QLoRA"
    summary = ("LoRA on a 4- or 8-bit quantised base: the least memory for a big model. Measured: on an H100, 35% "
               "less memory than LoRA at half its speed (1.7B model); on a 2-core CPU about 200 tokens/s, no "
               "faster than LoRA (SmolLM2-135M).")

    @classmethod
    def check(cls, settings: QloraSettings, stage: str, model_type: str | None) -> None:
        super().check(settings, stage, model_type)
        if getattr(settings, "init", "default") in ("pissa", "olora"):
            # Known from the settings alone, so refuse before the job rather than after loading the model.
            raise StudioError(f"'method.init' {settings.init} needs the base weights in full precision, not "
                              "quantised; use the default initialisation with QLoRA.", field="method.init",
                              key="method.qlora.init_quantised", init=settings.init)
        problem = bitsandbytes_problem()
        if problem:
            raise StudioError(f"QLoRA needs the bitsandbytes package, which cannot be loaded here ({problem}); "
                              "install it (pip install bitsandbytes) or pick LoRA.", field="method.name",
                              key="method.qlora.no_bitsandbytes", problem=problem)

    @classmethod
    def quantization_config(cls, settings: QloraSettings) -> Any:
        import torch
        from transformers import BitsAndBytesConfig

        if settings.bits == 8:
            return BitsAndBytesConfig(load_in_8bit=True)
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=settings.quant_type,
                                  bnb_4bit_use_double_quant=settings.double_quant,
                                  bnb_4bit_compute_dtype=torch.bfloat16 if settings.compute_dtype == "bf16"
                                  else torch.float32)

    @classmethod
    def load_kwargs(cls, settings: QloraSettings) -> dict:
        return {"quantization_config": cls.quantization_config(settings)}

    @classmethod
    def prepare(cls, model: Any, settings: QloraSettings) -> Any:
        from peft import prepare_model_for_kbit_training

        # Gradient checkpointing stays the trainer's decision (train.gradient_checkpointing).
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        if settings.bits == 8:
            # bitsandbytes logs a warning on every 8-bit matmul of fp32 inputs; it would flood train.log.
            logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)
        return super().prepare(model, settings)
