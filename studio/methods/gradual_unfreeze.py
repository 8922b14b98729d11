"""Gradual unfreezing (ULMFiT): the head trains first, then blocks join from the top down.

At the start only the output head and the final norm train (a head tied to the token embeddings
brings the embeddings with it). Every `every_steps` optimizer steps one more block unfreezes,
top block first, until all blocks train; the embeddings stay frozen unless tied to the head.
Warming the head up before the lower layers move protects their general features from the large
early gradients of a fresh task. The schedule is applied by a trainer callback that only flips
`requires_grad` on this method's blocks; the optimizer holds every parameter from the start
(AdamW skips parameters whose gradient is None), so unfrozen blocks are optimised at once.
The result is a whole model.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from transformers import TrainerCallback

from studio.errors import StudioError
from studio.methods import _blocks
from studio.methods.base import METHODS
from studio.methods.full import Full
from studio.settings import setting

log = logging.getLogger(__name__)


@dataclass
class GradualSettings:
    every_steps: int = setting(50, help="Optimizer steps between unfreezing one more block (top block "
                               "first); the head trains from step 0.", min=1, max=1_000_000)

    name = "gradual"


def unfreeze_step(settings: GradualSettings, k: int) -> int:
    """The optimizer step at which the k-th block from the top (k = 1 is the top block) unfreezes."""
    return k * settings.every_steps


class GradualUnfreezeCallback(TrainerCallback):
    """Before each optimizer step, make sure the blocks whose turn has come are trainable."""

    def __init__(self, model: Any, settings: GradualSettings):
        self.model = model
        self.settings = settings
        self.blocks = _blocks.block_params(model)
        self.unfrozen = 0  # how many blocks from the top train now

    def apply(self, step: int) -> None:
        # Computed from the step, not counted: a resumed run unfreezes the same blocks at once.
        due = min(len(self.blocks), step // self.settings.every_steps)
        if due <= self.unfrozen:
            return
        for k in range(self.unfrozen + 1, due + 1):
            _blocks.set_trainable(self.blocks[len(self.blocks) - k])
        self.unfrozen = due
        n = len(self.blocks)
        log.info("Gradual unfreezing at step %d: blocks %d-%d of %d train", step, n - due, n - 1, n)

    def on_train_begin(self, args, state, control, **kwargs):
        self.apply(state.global_step)

    def on_step_begin(self, args, state, control, **kwargs):
        self.apply(state.global_step)


@METHODS.register("gradual")
class GradualUnfreeze(Full):
    settings_cls = GradualSettings
    stages = ("sft", "cpt")  # the stages this method has been tested on
    title = "Gradual unfreezing"
    summary = "Head first, then one block more every N steps from the top down; saves a complete model."

    @classmethod
    def schedule(cls, settings: GradualSettings, n_blocks: int) -> list[tuple[int, int]]:
        """(step, block index) pairs in unfreezing order, for the UI and the schedule check."""
        return [(unfreeze_step(settings, k), n_blocks - k) for k in range(1, n_blocks + 1)]

    @classmethod
    def check_schedule(cls, settings: GradualSettings, total_steps: int, n_blocks: int) -> None:
        """Refuse a schedule whose last block would unfreeze only after training has ended."""
        last = unfreeze_step(settings, n_blocks)
        if total_steps and last >= total_steps:
            fit = max(1, (total_steps - 1) // n_blocks)
            raise StudioError(f"'method.every_steps' of {settings.every_steps} unfreezes the last of {n_blocks} "
                              f"blocks at step {last}, but training has only {total_steps} steps; use "
                              f"every_steps of at most {fit} or train longer.", field="method.every_steps",
                              key="method.gradual_unfreeze.too_slow", every_steps=settings.every_steps,
                              blocks=n_blocks, last=last, total_steps=total_steps, fit=fit)

    @classmethod
    def prepare(cls, model: Any, settings: GradualSettings) -> Any:
        _blocks.freeze_all(model)
        _blocks.set_trainable(_blocks.head_params(model) + _blocks.norm_params(model, inside_blocks=False))
        _blocks.keep_input_grads(model)
        log.info("Gradual unfreezing: the head trains from step 0, then one block every %d steps from the top",
                 settings.every_steps)
        return model

    @classmethod
    def optimizer_groups(cls, model: Any, settings: GradualSettings, lr: float) -> list[dict]:
        # Every parameter, frozen ones included: their grad stays None until their block unfreezes.
        return [{"params": list(model.parameters()), "lr": lr}]

    @classmethod
    def callbacks(cls, model: Any, settings: GradualSettings) -> list:
        return [GradualUnfreezeCallback(model, settings)]
