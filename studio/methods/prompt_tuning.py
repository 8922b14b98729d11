"""Prompt tuning: learn a few "soft prompt" embeddings put in front of every input; the model stays frozen.

Only `num_virtual_tokens x hidden size` numbers train (11,520 for a 576-wide model with 20 tokens),
so it suits very large models and many tasks on one base. The soft prompt starts random or from
the embeddings of a text the user types; for that peft needs the model's tokenizer, which we
point at the folder the model was loaded from, so nothing is downloaded.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.errors import StudioError
from studio.methods._prompt_learning import PromptLearningMethod
from studio.methods.base import METHODS
from studio.settings import setting


@dataclass
class PromptTuningSettings:
    num_virtual_tokens: int = setting(20, help="Length of the learned soft prompt, in tokens: more tokens learn "
                                      "more and make every input that much longer.", min=1, max=512)
    init: str = setting("random", help="How the soft prompt starts: 'random', or 'text' to start from the "
                        "embeddings of the text below (often learns faster).", choices=("random", "text"))
    init_text: str = setting("", help="Text the soft prompt starts from when init is 'text', e.g. 'Answer the "
                             "question in one friendly sentence:'. Repeated or cut to the number of tokens.")

    name = "prompt_tuning"

    def __post_init__(self) -> None:
        if self.init == "text" and not self.init_text.strip():
            raise StudioError("'method.init_text' is empty; type the text the soft prompt should start from, or "
                              "set init to 'random'.", field="method.init_text",
                              key="method.prompt_tuning.empty_init_text")


def model_folder(model: Any) -> str:
    """Where the loaded model came from (a local folder in the studio), for loading its tokenizer."""
    source = getattr(model, "name_or_path", None) or getattr(model.config, "_name_or_path", None)
    if not source:
        raise StudioError("Prompt tuning from text needs the model's tokenizer, but the model does not say where it "
                          "was loaded from; set init to 'random'.", field="method.init",
                          key="method.prompt_tuning.no_model_folder")
    return str(source)


@METHODS.register("prompt_tuning")
class PromptTuning(PromptLearningMethod):
    settings_cls = PromptTuningSettings
    title = "Prompt tuning"
    summary = "Learns a short soft prompt in front of every input; the model stays frozen. Tiny, not mergeable."
    not_mergeable_why = "its soft prompt is extra input in front of every text, not a change to any weight"

    @classmethod
    def peft_config(cls, model: Any, settings: PromptTuningSettings) -> Any:
        from peft import PromptTuningConfig, PromptTuningInit, TaskType

        if settings.init == "text":
            return PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=settings.num_virtual_tokens,
                                      prompt_tuning_init=PromptTuningInit.TEXT,
                                      prompt_tuning_init_text=settings.init_text.strip(),
                                      tokenizer_name_or_path=model_folder(model))
        return PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=settings.num_virtual_tokens,
                                  prompt_tuning_init=PromptTuningInit.RANDOM)
