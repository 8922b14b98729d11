"""VeRA: one pair of frozen random projections shared by all layers, plus two small trained vectors per layer.

Each layer's update is diag(b)·B·diag(d)·A where A and B are random, frozen and shared, and only
the scaling vectors d (length r) and b (one per output) train: about 30 times fewer parameters (with the defaults)
than LoRA. `projection_prng_key` seeds the random matrices; `save_projection` stores them in the
adapter so it reloads identically on any machine (larger file). peft implements it; this module
checks the targets and the rank and builds the config.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.errors import StudioError
from studio.methods.base import METHODS, PeftMethod
from studio.methods.lora import matched_layers, parse_targets
from studio.settings import setting


@dataclass
class VeraSettings:
    r: int = setting(64, help="Size of the shared random projections; VeRA needs higher ranks than LoRA "
                     "(256 or more on large models) because only scaling vectors train.", min=1, max=8192)
    dropout: float = setting(0.0, help="Dropout on the adapter input during training.", min=0.0, max=0.9)
    target_modules: str = setting("all-linear", help="Which layers get VeRA: 'all-linear', 'attention' or a "
                                  "comma-separated list of module names.")
    projection_prng_key: int = setting(0, help="Seed of the shared random projections.", min=0, max=2**32 - 1,
                                       advanced=True)
    save_projection: bool = setting(True, help="Store the random projections in the adapter, so it reloads "
                                    "exactly anywhere (bigger file).", advanced=True)
    d_initial: float = setting(0.1, help="Starting value of the trained per-rank scaling vector d.", gt=0.0,
                               max=10.0, advanced=True)

    name = "vera"


@METHODS.register("vera")
class Vera(PeftMethod):
    settings_cls = VeraSettings
    title = "VeRA"
    summary = "Shared frozen random projections with two small trained vectors per layer: far fewer parameters than LoRA."
    mergeable = True

    @classmethod
    def peft_config(cls, model: Any, settings: VeraSettings) -> Any:
        from peft import TaskType, VeraConfig

        targets = parse_targets(settings.target_modules)
        layers = matched_layers(model, targets)
        # The update's rank is capped by each layer's smaller side; past the widest such side r only adds waste.
        usable = max(min(dims) for dims in layers.values())
        if settings.r > usable:
            raise StudioError(f"'method.r' is {settings.r}, but no targeted layer can use more than {usable}; use "
                              f"at most {usable}.", field="method.r",
                              key="method.vera.rank_too_large", r=settings.r, usable=usable)
        return VeraConfig(r=settings.r, vera_dropout=settings.dropout, target_modules=targets,
                          projection_prng_key=settings.projection_prng_key, save_projection=settings.save_projection,
                          d_initial=settings.d_initial, task_type=TaskType.CAUSAL_LM)
