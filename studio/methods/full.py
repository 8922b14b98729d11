"""Full fine-tuning: every weight of the model trains. Strongest, heaviest; the result is a whole model."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.methods.base import METHODS, Method


@dataclass
class FullSettings:
    name = "full"


@METHODS.register("full")
class Full(Method):
    settings_cls = FullSettings
    result_kind = "model"
    title = "Full fine-tuning"
    summary = "Updates all weights: most capacity, most memory; saves a complete model copy."
    stages = ("sft", "cpt", "distill", "seq2seq", "classify", "reward", "dpo", "kto", "orpo", "rl")

    @classmethod
    def prepare(cls, model: Any, settings: FullSettings) -> Any:
        for p in model.parameters():
            p.requires_grad_(True)
        return model

    @classmethod
    def save(cls, model: Any, tokenizer: Any, out_dir: Path) -> Path:
        path = Path(out_dir) / "model"
        model.save_pretrained(path, safe_serialization=True)
        tokenizer.save_pretrained(path)
        return path

    @classmethod
    def load_result(cls, base_model: Any, result_dir: Path) -> Any:
        # The base's own class: a causal LM, a seq2seq model or a classifier reloads as what it was trained as.
        return type(base_model).from_pretrained(str(result_dir), use_safetensors=True, dtype=base_model.dtype)
