"""LLaMA-Adapter: learned prompts inside the top attention layers of a Llama, behind a zero-initialised gate.

peft's "adaption prompt" gives each of the top `adapter_layers` attention layers `adapter_len`
learned tokens; their attention output is scaled by a gate that starts at zero, so training
begins exactly at the base model. It rewrites Llama's attention, hence Llama-family models only
(peft's own list, narrowed to what we test). The result is a peft adapter, not mergeable.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.errors import StudioError
from studio.methods.base import METHODS, PREFERENCE_STAGES, PeftMethod
from studio.settings import setting


@dataclass
class LlamaAdapterSettings:
    adapter_len: int = setting(10, help="How many learned prompt tokens each adapted attention layer sees.",
                               min=1, max=512)
    adapter_layers: int = setting(8, help="How many of the top decoder layers get adaption prompts (capped at the "
                                  "model's number of layers).", min=1, max=1024)

    name = "llama_adapter"


@METHODS.register("llama_adapter")
class LlamaAdapter(PeftMethod):
    settings_cls = LlamaAdapterSettings
    title = "LLaMA-Adapter"
    summary = "Gated learned prompts in the top attention layers of a Llama model; starts at the base model."
    mergeable = False
    not_mergeable_why = "its gated attention prompts are extra inputs to the top layers, not weight changes"
    stages = ("sft", "cpt", *PREFERENCE_STAGES)
    architectures = ("llama",)

    @classmethod
    def check(cls, settings: Any, stage: str, model_type: str | None) -> None:
        if model_type and model_type not in cls.architectures:
            raise StudioError(f"LLaMA-Adapter rewrites the attention of Llama models only, and this model is a "
                              f"'{model_type}'; pick a Llama-family model or another method such as LoRA.",
                              field="method.name", key="llama_adapter.architecture", model_type=model_type)
        super().check(settings, stage, model_type)

    @classmethod
    def prepare(cls, model: Any, settings: LlamaAdapterSettings) -> Any:
        peft_model = super().prepare(model, settings)
        wrapper = peft_model.base_model
        # peft binds the Llama's forward once, here; TRL later swaps in a forward that computes the loss
        # without full logits (`fused_lm_head`), and the adapter must call that one, so look it up per call.
        def forward(*args: Any, **kwargs: Any) -> Any:
            return wrapper.model.forward(*args, **kwargs)

        wrapper.forward = forward
        return peft_model

    @classmethod
    def peft_config(cls, model: Any, settings: LlamaAdapterSettings) -> Any:
        from peft import AdaptionPromptConfig, TaskType

        model_type = getattr(model.config, "model_type", None)
        cls.check(settings, "sft", model_type)
        layers = min(settings.adapter_layers, model.config.num_hidden_layers)
        return AdaptionPromptConfig(task_type=TaskType.CAUSAL_LM, adapter_len=settings.adapter_len,
                                    adapter_layers=layers)
