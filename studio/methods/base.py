"""The contract every fine-tuning method fulfils.

A method owns a settings dataclass (`settings_cls`, each instance knows its `name`). The stage
asks it, in order: `check` (refuse a stage/model it cannot serve, before any job starts),
`load_kwargs` (extra `from_pretrained` arguments, e.g. a 4-bit quantization config),
`prepare` (wrap or freeze the loaded model), `optimizer_groups` (per-parameter learning rates,
or None for one LR), `callbacks` (trainer callbacks, e.g. an unfreezing schedule), and after
training `save` (write `adapter/` or `model/`, as `result_kind` says). `load_result` attaches a
saved result to a fresh base model for inference. Methods never build trainers or touch data.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from studio.registry import Registry


class Method:
    name: ClassVar[str]
    settings_cls: ClassVar[type]
    result_kind: ClassVar[str] = "adapter"
    title: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    mergeable: ClassVar[bool] = False  # can the result be folded into the base weights (export)?
    # Why not, when it cannot: the Export tab's sentence (its Spanish is export.why.<name> in the locale files).
    not_mergeable_why: ClassVar[str] = "its method adds layers that are not weight updates"
    stages: ClassVar[tuple[str, ...]] = ("sft", "cpt")  # stages it can serve (and is tested on)
    architectures: ClassVar[tuple[str, ...] | None] = None  # model_type values it needs (None: any)

    @classmethod
    def check(cls, settings: Any, stage: str, model_type: str | None) -> None:
        """Raise StudioError when this method cannot serve `stage` or this model; default: the declared lists."""
        from studio.errors import StudioError

        if stage not in cls.stages:
            stages = ", ".join(cls.stages)
            raise StudioError(f"Method '{cls.name}' cannot train stage '{stage}'; it serves {stages}.",
                              field="method.name", key="method.stage", method=cls.name, stage=stage, stages=stages)
        if cls.architectures and model_type and model_type not in cls.architectures:
            needs = " or ".join(cls.architectures)
            raise StudioError(f"Method '{cls.name}' needs a {needs} model, not '{model_type}'; pick another method.",
                              field="method.name", key="method.architecture", method=cls.name, needs=needs,
                              model_type=model_type)

    @classmethod
    def load_kwargs(cls, settings: Any) -> dict:
        """Extra keyword arguments for the base model's `from_pretrained`."""
        return {}

    @classmethod
    def prepare(cls, model: Any, settings: Any) -> Any:
        """Return the model to train (e.g. wrapped with PEFT layers)."""
        raise NotImplementedError

    @classmethod
    def optimizer_groups(cls, model: Any, settings: Any, lr: float) -> list[dict] | None:
        """Parameter groups with their own `lr` (discriminative LRs, LoRA+), or None for one LR."""
        return None

    @classmethod
    def callbacks(cls, model: Any, settings: Any) -> list:
        """Trainer callbacks the method needs (they observe or steer only what the method owns)."""
        return []

    @classmethod
    def save(cls, model: Any, tokenizer: Any, out_dir: Path) -> Path:
        """Write the trained result under out_dir/<result_kind> and return that path."""
        raise NotImplementedError

    @classmethod
    def load_result(cls, base_model: Any, result_dir: Path) -> Any:
        """Attach a saved result to a freshly loaded base model for inference."""
        raise NotImplementedError


# The stages that learn from preferences (reward needs a classification head: LoRA and full fine-tuning only).
PREFERENCE_STAGES = ("dpo", "kto", "orpo", "rl")


class PeftMethod(Method):
    """Base for methods built on a `peft` config: subclasses only say how to build the config."""

    result_kind: ClassVar[str] = "adapter"
    stages: ClassVar[tuple[str, ...]] = ("sft", "cpt", *PREFERENCE_STAGES)

    @classmethod
    def peft_config(cls, model: Any, settings: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def prepare(cls, model: Any, settings: Any) -> Any:
        from peft import get_peft_model

        return get_peft_model(model, cls.peft_config(model, settings))

    @classmethod
    def save(cls, model: Any, tokenizer: Any, out_dir: Path) -> Path:
        path = Path(out_dir) / "adapter"
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        return path

    @classmethod
    def load_result(cls, base_model: Any, result_dir: Path) -> Any:
        from peft import PeftModel

        return PeftModel.from_pretrained(base_model, str(result_dir))


METHODS: Registry[type[Method]] = Registry("method")
