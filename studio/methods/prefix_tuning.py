"""Prefix tuning: learn keys and values that every attention layer sees before the real tokens.

Unlike prompt tuning, the prefix acts in every layer, not only at the input, so it learns more
for the same number of virtual tokens: `num_virtual_tokens x layers x 2 x key/value width`
numbers. With `prefix_projection` the prefix comes out of a small two-layer network instead
(more stable training, many more parameters while training; peft keeps the same forward).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.methods._prompt_learning import PromptLearningMethod
from studio.methods.base import METHODS
from studio.settings import setting


@dataclass
class PrefixTuningSettings:
    num_virtual_tokens: int = setting(20, help="Length of the learned prefix, in tokens, added to the keys and values "
                                      "of every attention layer.", min=1, max=512)
    prefix_projection: bool = setting(False, help="Produce the prefix with a small two-layer network (more stable "
                                      "training, more trainable parameters) instead of learning it directly.")
    encoder_hidden_size: int = setting(256, help="Width of that network's hidden layer; used only when "
                                       "prefix_projection is on.", min=1, max=16384)

    name = "prefix_tuning"


@METHODS.register("prefix_tuning")
class PrefixTuning(PromptLearningMethod):
    settings_cls = PrefixTuningSettings
    title = "Prefix tuning"
    summary = "Learns keys and values put in front of every attention layer; the model stays frozen. Not mergeable."
    not_mergeable_why = "its learnt keys and values are extra inputs to every attention layer, not weight changes"

    @classmethod
    def peft_config(cls, model: Any, settings: PrefixTuningSettings) -> Any:
        from peft import PrefixTuningConfig, TaskType

        return PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=settings.num_virtual_tokens,
                                  prefix_projection=settings.prefix_projection,
                                  encoder_hidden_size=settings.encoder_hidden_size)
