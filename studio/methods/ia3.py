"""IA3: learn one scaling vector per targeted layer and leave every weight frozen.

IA3 multiplies the keys, the values and the feed-forward activations by learned vectors, so it
trains the fewest parameters of the peft family (57,600 on SmolLM2-135M). Layers named
in `feedforward_modules` are scaled on their input, the others on their output; this module only
checks the names against the model and builds peft's config.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.errors import StudioError
from studio.methods.base import METHODS, PeftMethod
from studio.methods.lora import matched_layers, parse_targets
from studio.settings import setting


@dataclass
class Ia3Settings:
    target_modules: str = setting("k_proj,v_proj,down_proj", help="Layers whose activations get a learned scale "
                                  "(comma-separated module names, or 'all-linear').")
    feedforward_modules: str = setting("down_proj", help="Which of those layers are feed-forward layers: they are "
                                       "scaled on their input instead of their output.")

    name = "ia3"


@METHODS.register("ia3")
class Ia3(PeftMethod):
    settings_cls = Ia3Settings
    title = "IA3"
    summary = "Learns one scaling vector per chosen layer: the fewest trainable parameters, mergeable."
    mergeable = True

    @classmethod
    def peft_config(cls, model: Any, settings: Ia3Settings) -> Any:
        from peft import IA3Config, TaskType

        targets = parse_targets(settings.target_modules)
        picked = matched_layers(model, targets)
        feedforward = parse_targets(settings.feedforward_modules)
        if feedforward == "all-linear":
            feedforward = sorted({n.rsplit(".", 1)[-1] for n in picked})
        short = {n.rsplit(".", 1)[-1] for n in picked}
        stray = [f for f in feedforward if f not in short]
        if stray:
            strays, choices = ', '.join(stray), ', '.join(sorted(short))
            raise StudioError(f"'method.feedforward_modules' names {strays}, which the target layers do "
                              f"not include; pick from {choices}.", field="method.feedforward_modules",
                              key="method.ia3.feedforward_not_targeted", strays=strays, choices=choices)
        return IA3Config(target_modules=targets, feedforward_modules=feedforward, task_type=TaskType.CAUSAL_LM)
