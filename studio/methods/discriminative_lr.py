"""Discriminative learning rates: full fine-tuning where lower layers learn more slowly.

Block i of n gets `lr * decay ** (n - 1 - i)`: the top block learns at the full rate, each block
below at `decay` times the one above, the embeddings at one step less than the bottom block
(a head tied to the embeddings shares their rate). The head, the final norm and anything else
outside the blocks learn at the full rate. Lower layers hold general features that a small
dataset should barely move. Every weight trains; the result is a whole model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.methods import _blocks
from studio.methods.base import METHODS, PREFERENCE_STAGES
from studio.methods.full import Full
from studio.settings import setting


@dataclass
class DiscriminativeSettings:
    decay: float = setting(0.8, help="Learning-rate factor from one block to the one below it (1 = same "
                           "rate everywhere; 0.8 gives the bottom of a 30-block model ~0.15% of the rate).",
                           gt=0.0, max=1.0)

    name = "discriminative"


@METHODS.register("discriminative")
class DiscriminativeLR(Full):
    settings_cls = DiscriminativeSettings
    stages = ("sft", "cpt", *PREFERENCE_STAGES)  # the stages this method has been tested on
    title = "Discriminative learning rates"
    summary = "Full fine-tuning with a lower learning rate for each lower layer; saves a complete model."

    @classmethod
    def optimizer_groups(cls, model: Any, settings: DiscriminativeSettings, lr: float) -> list[dict]:
        blocks = _blocks.block_params(model)
        n = len(blocks)
        groups, seen = [], set()

        def add(params: list[tuple[str, Any]], group_lr: float, label: str) -> None:
            fresh = [p for _, p in params if id(p) not in seen]
            seen.update(id(p) for p in fresh)
            if fresh:
                groups.append({"params": fresh, "lr": group_lr, "name": label})

        # Embeddings first, so a tied head lands in their group and not in the full-rate rest.
        add(_blocks.embedding_params(model), lr * settings.decay ** n, "embeddings")
        for i, block in enumerate(blocks):
            add(block, lr * settings.decay ** (n - 1 - i), f"block {i}")
        add(list(model.named_parameters()), lr, "head and the rest")
        return groups
