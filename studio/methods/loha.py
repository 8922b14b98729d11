"""LoHa: a low-rank update built as the Hadamard (element-wise) product of two LoRA-style pairs.

With the same rank as LoRA it can express updates of much higher rank (up to r squared), at twice
LoRA's parameters per layer. peft implements it (from LyCORIS); this module checks the targets and
the rank and builds the config.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.methods.base import METHODS, PeftMethod
from studio.methods.lora import check_rank, matched_layers, parse_targets
from studio.settings import setting


@dataclass
class LohaSettings:
    r: int = setting(8, help="Rank of each of the two factor pairs; the update can reach rank r x r.",
                     min=1, max=1024)
    alpha: float = setting(8.0, help="Scale of the update (effective scale = alpha / r).", gt=0.0,
                           max=65536.0)
    rank_dropout: float = setting(0.0, help="Dropout on the update's rank components during training.",
                                  min=0.0, max=0.9, advanced=True)
    module_dropout: float = setting(0.0, help="Chance of skipping a layer's update on a training step.",
                                    min=0.0, max=0.9, advanced=True)
    target_modules: str = setting("all-linear", help="Which layers get LoHa: 'all-linear', 'attention' or a "
                                  "comma-separated list of module names.")

    name = "loha"


@METHODS.register("loha")
class Loha(PeftMethod):
    settings_cls = LohaSettings
    title = "LoHa"
    summary = "A LoRA relative whose update is the element-wise product of two low-rank pairs: more expressive."
    mergeable = True

    @classmethod
    def peft_config(cls, model: Any, settings: LohaSettings) -> Any:
        from peft import LoHaConfig, TaskType

        targets = parse_targets(settings.target_modules)
        check_rank(matched_layers(model, targets), settings.r)
        return LoHaConfig(r=settings.r, alpha=settings.alpha, rank_dropout=settings.rank_dropout,
                          module_dropout=settings.module_dropout, target_modules=targets,
                          task_type=TaskType.CAUSAL_LM)
