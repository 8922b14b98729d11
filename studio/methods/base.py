"""The contract every fine-tuning method fulfils.

A method owns a settings dataclass (`settings_cls`, each instance knows its `name`), wraps a
loaded base model for training (`prepare`), and saves what training produced (`save`) in the
form named by `result_kind`: "adapter" (PEFT directory) or "model" (full `save_pretrained`).
Loading a finished result for inference is `load_result`. Methods never build trainers or
touch data: that is the stage's job.
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

    @classmethod
    def prepare(cls, model: Any, settings: Any) -> Any:
        """Return the model to train (e.g. wrapped with PEFT layers)."""
        raise NotImplementedError

    @classmethod
    def save(cls, model: Any, tokenizer: Any, out_dir: Path) -> Path:
        """Write the trained result under out_dir/<result_kind> and return that path."""
        raise NotImplementedError

    @classmethod
    def load_result(cls, base_model: Any, result_dir: Path) -> Any:
        """Attach a saved result to a freshly loaded base model for inference."""
        raise NotImplementedError


METHODS: Registry[type[Method]] = Registry("method")
