"""Shared base for peft's prompt-learning methods (prompt tuning, prefix tuning, P-tuning).

These methods freeze the whole model and learn extra "virtual tokens": embeddings put in front
of the input, or keys/values put in front of every layer's cache. peft adds the virtual tokens
inside the model's forward pass, so the stage keeps feeding plain `input_ids`/`labels` and the
trainer never sees them. This module also carries the one fix they need for generation (see
`fix_generation_cache`); the concrete methods only build their peft config.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, ClassVar

from studio.methods.base import PeftMethod


def fix_generation_cache(peft_model: Any) -> Any:
    """Make peft's prompt-learning generation see the KV cache under transformers 5.

    transformers 5 renamed the generation input `past_key_values` to `cache`. peft 0.21 still
    looks for `past_key_values`, so it thinks every step is the first one: prompt tuning and
    P-tuning re-insert the virtual tokens at each new token, and prefix tuning writes its prefix
    into a cache the model ignores. Generation then drifts from what the trained model predicts.
    We hand peft the cache under the old name and give it back to the model under the new one. peft 0.22 reads
    the cache under transformers' own name (`peft.import_utils.get_transformers_cache_name`), so from there on
    nothing is changed: renaming it would hide the cache from peft again.
    """
    import peft.import_utils

    if hasattr(peft.import_utils, "get_transformers_cache_name"):
        return peft_model
    base_prepare = getattr(peft_model, "base_model_prepare_inputs_for_generation", None)
    peft_prepare = getattr(peft_model, "prepare_inputs_for_generation", None)
    if base_prepare is None or peft_prepare is None or getattr(peft_model, "_studio_cache_fix", False):
        return peft_model
    renamed: list[bool] = []

    @functools.wraps(base_prepare)
    def base_with_old_name(*args: Any, **kwargs: Any) -> dict:
        inputs = base_prepare(*args, **kwargs)
        if "cache" in inputs and "past_key_values" not in inputs:
            inputs["past_key_values"] = inputs.pop("cache")
            renamed.append(True)
        return inputs

    @functools.wraps(peft_prepare)
    def prepare(*args: Any, **kwargs: Any) -> dict:
        renamed.clear()
        inputs = peft_prepare(*args, **kwargs)
        if renamed and "past_key_values" in inputs:
            inputs["cache"] = inputs.pop("past_key_values")
        return inputs

    peft_model.base_model_prepare_inputs_for_generation = base_with_old_name
    peft_model.prepare_inputs_for_generation = prepare
    peft_model._studio_cache_fix = True
    return peft_model


class PromptLearningMethod(PeftMethod):
    """A peft prompt-learning method: virtual tokens only, nothing to merge; SFT and the preference stages except
    ORPO (its loss lines labels up with logits that the virtual tokens lengthen)."""

    mergeable: ClassVar[bool] = False
    stages: ClassVar[tuple[str, ...]] = ("sft", "dpo", "kto", "rl")

    @classmethod
    def prepare(cls, model: Any, settings: Any) -> Any:
        return fix_generation_cache(super().prepare(model, settings))

    @classmethod
    def load_result(cls, base_model: Any, result_dir: Path) -> Any:
        return fix_generation_cache(super().load_result(base_model, result_dir))
