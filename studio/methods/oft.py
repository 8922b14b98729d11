"""OFT: rotate each targeted layer's weights with a learned block-diagonal orthogonal matrix.

An orthogonal transform keeps the angles between the layer's neurons, which preserves what the
model already knows better than an additive update. The matrix is made of blocks of
`oft_block_size` (or `r` blocks per layer); the block must divide each layer's input size, which
this module checks instead of letting peft silently change it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.errors import StudioError
from studio.methods.base import METHODS, PeftMethod
from studio.methods.lora import matched_layers, parse_targets
from studio.settings import setting


@dataclass
class OftSettings:
    oft_block_size: int = setting(32, help="Size of each orthogonal block; must divide every targeted layer's input "
                                  "size. 0 to set the number of blocks with r instead.", min=0, max=8192)
    r: int = setting(0, help="Number of orthogonal blocks per layer, instead of a block size (leave 0 when the "
                     "block size is set).", min=0, max=8192, advanced=True)
    dropout: float = setting(0.0, help="Chance of skipping a layer's rotation on a training step.",
                             min=0.0, max=0.9, advanced=True)
    coft: bool = setting(False, help="Constrained OFT: keep the rotation close to the identity (eps).",
                         advanced=True)
    eps: float = setting(6e-5, help="How far constrained OFT may move from the identity.", gt=0.0, max=1.0,
                         advanced=True)
    block_share: bool = setting(False, help="Share one block across each layer: fewer parameters, less capacity.",
                                advanced=True)
    target_modules: str = setting("all-linear", help="Which layers get OFT: 'all-linear', 'attention' or a "
                                  "comma-separated list of module names.")

    name = "oft"

    def __post_init__(self) -> None:
        if (self.r == 0) == (self.oft_block_size == 0):
            raise StudioError("Set exactly one of 'method.oft_block_size' and 'method.r' (the other 0).",
                              field="method.oft_block_size", key="method.oft.block_size_or_r")


@METHODS.register("oft")
class Oft(PeftMethod):
    settings_cls = OftSettings
    title = "OFT"
    summary = "Learns an orthogonal rotation of each layer's weights: keeps the model's knowledge, mergeable."
    mergeable = True

    @classmethod
    def peft_config(cls, model: Any, settings: OftSettings) -> Any:
        from peft import OFTConfig, TaskType

        targets = parse_targets(settings.target_modules)
        field, size = ("method.oft_block_size", settings.oft_block_size) if settings.oft_block_size else \
            ("method.r", settings.r)
        for name, (fan_in, _) in matched_layers(model, targets).items():
            if size > fan_in or fan_in % size:
                raise StudioError(f"'{field}' is {size}, which does not divide the input size {fan_in} of layer "
                                  f"{name}; pick a divisor of {fan_in}.", field=field,
                                  key="method.oft.not_a_divisor", setting=field, size=size, fan_in=fan_in,
                                  layer=name)
        return OFTConfig(r=settings.r, oft_block_size=settings.oft_block_size, module_dropout=settings.dropout,
                         coft=settings.coft, eps=settings.eps, block_share=settings.block_share,
                         target_modules=targets, task_type=TaskType.CAUSAL_LM)
