"""LoRA: freeze the base model and learn a low-rank update B·A beside chosen linear layers.

Only the small A/B matrices train (often <1% of the weights), so memory and checkpoints stay
small and the result is a PEFT adapter directory that `peft.PeftModel.from_pretrained` loads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.methods.base import METHODS, PeftMethod
from studio.settings import setting


@dataclass
class LoraSettings:
    r: int = setting(16, help="Rank of the update matrices: higher learns more, costs more memory.", min=1, max=1024)
    alpha: float = setting(32.0, help="Scale of the update (effective scale = alpha / r). Usually 2 x r.", gt=0.0)
    dropout: float = setting(0.05, help="Dropout on the LoRA input during training, against overfitting.",
                             min=0.0, max=0.9)
    target_modules: str = setting("all-linear", help="Which layers get LoRA: 'all-linear', 'attention' or a "
                                  "comma-separated list of module names (e.g. q_proj,v_proj).")

    name = "lora"


ATTENTION_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj"]


def _targets(spec: str) -> Any:
    if spec == "all-linear":
        return "all-linear"
    if spec == "attention":
        return ATTENTION_MODULES
    return [s.strip() for s in spec.split(",") if s.strip()]


@METHODS.register("lora")
class Lora(PeftMethod):
    settings_cls = LoraSettings
    title = "LoRA"
    summary = "Small trainable low-rank matrices beside frozen weights; fast, light, mergeable."
    mergeable = True

    @classmethod
    def peft_config(cls, model: Any, settings: LoraSettings) -> Any:
        from peft import LoraConfig, TaskType

        return LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                          target_modules=_targets(settings.target_modules), task_type=TaskType.CAUSAL_LM)
