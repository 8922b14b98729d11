"""LoKr: the weight update is a Kronecker product of a small matrix and a low-rank one.

The Kronecker structure covers a whole weight matrix with very few numbers, so LoKr usually trains
fewer parameters than LoRA at the same rank. peft implements it (from LyCORIS); this module checks
the targets and the rank and builds the config.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.errors import StudioError
from studio.methods.base import METHODS, PeftMethod
from studio.methods.lora import check_rank, matched_layers, parse_targets
from studio.settings import setting


@dataclass
class LokrSettings:
    r: int = setting(8, help="Rank of the low-rank Kronecker factor.", min=1, max=1024)
    alpha: float = setting(8.0, help="Scale of the update (effective scale = alpha / r).", gt=0.0,
                           max=65536.0)
    decompose_both: bool = setting(False, help="Also split the small Kronecker factor into low-rank parts "
                                   "(fewer parameters, less capacity).", advanced=True)
    decompose_factor: int = setting(-1, help="How to split each layer's size between the two factors; -1 picks "
                                    "the most balanced split.", min=-1, max=4096, advanced=True)
    rank_dropout: float = setting(0.0, help="Dropout on the update's rank components during training.",
                                  min=0.0, max=0.9, advanced=True)
    module_dropout: float = setting(0.0, help="Chance of skipping a layer's update on a training step.",
                                    min=0.0, max=0.9, advanced=True)
    target_modules: str = setting("all-linear", help="Which layers get LoKr: 'all-linear', 'attention' or a "
                                  "comma-separated list of module names.")

    name = "lokr"

    def __post_init__(self) -> None:
        if self.decompose_factor == 0:
            raise StudioError("'method.decompose_factor' must be -1 (balanced) or a positive factor, not 0.",
                              field="method.decompose_factor", key="method.lokr.zero_factor")


@METHODS.register("lokr")
class Lokr(PeftMethod):
    settings_cls = LokrSettings
    title = "LoKr"
    summary = "A LoRA relative whose update is a Kronecker product: very few parameters per layer."
    mergeable = True

    @classmethod
    def peft_config(cls, model: Any, settings: LokrSettings) -> Any:
        from peft import LoKrConfig, TaskType

        targets = parse_targets(settings.target_modules)
        check_rank(matched_layers(model, targets), settings.r)
        return LoKrConfig(r=settings.r, alpha=settings.alpha, decompose_both=settings.decompose_both,
                          decompose_factor=settings.decompose_factor, rank_dropout=settings.rank_dropout,
                          module_dropout=settings.module_dropout, target_modules=targets,
                          task_type=TaskType.CAUSAL_LM)
