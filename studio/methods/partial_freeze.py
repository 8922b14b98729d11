"""Partial freezing: only the top of the network trains, the lower blocks stay as they were.

The last `last_blocks` transformer blocks train, plus the final norm and an untied output head
(a head tied to the token embeddings follows `train_embeddings`). Optionally every embedding
table and every normalisation layer in the frozen blocks train too. Lower layers hold general
features, upper ones task-specific ones, so this keeps most of full fine-tuning's quality on a
new task for a fraction of the gradient and optimizer memory. The result is a whole model.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from studio.errors import StudioError
from studio.methods import _blocks
from studio.methods.base import METHODS, PREFERENCE_STAGES
from studio.methods.full import Full
from studio.settings import setting

log = logging.getLogger(__name__)


@dataclass
class PartialSettings:
    last_blocks: int = setting(2, help="How many of the top transformer blocks train; the ones below stay "
                               "frozen.", min=1, max=512)
    train_embeddings: bool = setting(False, help="Also train the embedding tables (and a head tied to them); "
                                     "useful for new vocabulary or a new language.")
    train_norms: bool = setting(False, help="Also train the normalisation layers inside the frozen blocks "
                                "(few parameters, often helps a shifted domain).")

    name = "partial"


@METHODS.register("partial")
class PartialFreeze(Full):
    settings_cls = PartialSettings
    stages = ("sft", "cpt", *PREFERENCE_STAGES)  # the stages this method has been tested on
    title = "Partial freezing"
    summary = "Trains only the last N blocks (optionally embeddings and norms); saves a complete model."

    @classmethod
    def trainable_params(cls, model: Any, settings: PartialSettings) -> list[tuple[str, Any]]:
        blocks = _blocks.block_params(model)
        if settings.last_blocks > len(blocks):
            raise StudioError(f"'method.last_blocks' is {settings.last_blocks} but this model has only "
                              f"{len(blocks)} blocks; pick at most {len(blocks)}.", field="method.last_blocks",
                              key="method.partial_freeze.too_many_blocks", last_blocks=settings.last_blocks,
                              blocks=len(blocks))
        chosen = [np for block in blocks[len(blocks) - settings.last_blocks:] for np in block]
        chosen += _blocks.norm_params(model, inside_blocks=False)
        embedding_ids = {id(p) for _, p in _blocks.embedding_params(model)}
        chosen += [(n, p) for n, p in _blocks.head_params(model) if id(p) not in embedding_ids]
        if settings.train_embeddings:
            chosen += _blocks.embedding_params(model)
        if settings.train_norms:
            chosen += _blocks.norm_params(model, inside_blocks=True)
        return chosen

    @classmethod
    def prepare(cls, model: Any, settings: PartialSettings) -> Any:
        chosen = cls.trainable_params(model, settings)
        _blocks.freeze_all(model)
        _blocks.set_trainable(chosen)
        if not settings.train_embeddings:
            _blocks.keep_input_grads(model)
        n_blocks = len(_blocks.find_blocks(model)[1])
        log.info("Partial freezing: blocks %d-%d of %d train (embeddings %s, norms in frozen blocks %s)",
                 n_blocks - settings.last_blocks, n_blocks - 1, n_blocks,
                 "train" if settings.train_embeddings else "frozen", "train" if settings.train_norms else "frozen")
        return model
