"""P-tuning: virtual tokens in front of the input, produced by a small trainable prompt encoder.

Like prompt tuning, the model stays frozen and only the input gets extra embeddings; here they
come out of an MLP or a bidirectional LSTM over learned seeds, which trains more steadily than
learning the embeddings directly. After training only the encoder's output matters, but peft
saves the encoder, so the adapter is larger than a prompt-tuning one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.methods._prompt_learning import PromptLearningMethod
from studio.methods.base import METHODS
from studio.settings import setting


@dataclass
class PTuningSettings:
    num_virtual_tokens: int = setting(20, help="How many virtual tokens go in front of every input.", min=1, max=512)
    encoder_reparameterization_type: str = setting("MLP", help="The prompt encoder: 'MLP' (small and fast) or "
                                                   "'LSTM' (a bidirectional LSTM, then an MLP; more parameters).",
                                                   choices=("MLP", "LSTM"))
    encoder_hidden_size: int = setting(128, help="Width of the prompt encoder's hidden layers.", min=1, max=16384)

    name = "p_tuning"


@METHODS.register("p_tuning")
class PTuning(PromptLearningMethod):
    settings_cls = PTuningSettings
    title = "P-tuning"
    summary = "Virtual input tokens produced by a small trained encoder; the model stays frozen. Not mergeable."
    not_mergeable_why = "its virtual tokens come from a small encoder at run time, not from a change to any weight"

    @classmethod
    def peft_config(cls, model: Any, settings: PTuningSettings) -> Any:
        from peft import PromptEncoderConfig, TaskType

        return PromptEncoderConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=settings.num_virtual_tokens,
                                   encoder_reparameterization_type=settings.encoder_reparameterization_type,
                                   encoder_hidden_size=settings.encoder_hidden_size)
