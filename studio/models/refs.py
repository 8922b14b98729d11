"""What names a model: an alias of the catalogue, a hub id, a folder, or `run:<id>`, a finished run's base
plus its result. `parse` is the one place that reads such a spec; the checks a run must pass depend on
its use (an evaluation, a teacher, a reward model) and stay with the caller, which names its own field.

    >>> parse("run:20261205-lora").run_id
    '20261205-lora'
    >>> run_spec("20261205-lora")
    'run:20261205-lora'
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUN_PREFIX = "run:"


@dataclass(frozen=True)
class ModelRef:
    spec: str                 # as given, stripped
    run_id: str | None = None  # set when the spec names a run

    @property
    def is_run(self) -> bool:
        return self.run_id is not None


def parse(spec: str | None, ws: Any = None) -> ModelRef:
    """`run:<id>` names a run; with `ws`, a bare id of an existing run does too; anything else is a model."""
    spec = (spec or "").strip()
    if spec.startswith(RUN_PREFIX):
        return ModelRef(spec, spec[len(RUN_PREFIX):].strip())
    if ws is not None and spec and ws.get_run(spec) is not None:
        return ModelRef(spec, spec)
    return ModelRef(spec)


def run_spec(run_id: str) -> str:
    """The spec that names run `run_id` (what pickers offer and recipes store)."""
    return f"{RUN_PREFIX}{run_id}"


def has_result(run: dict | None) -> bool:
    """A run that completed and whose saved result is still on disk: the only kind a spec may use."""
    return bool(run) and run["status"] == "completed" and bool(run.get("result_dir")) and \
        Path(run["result_dir"]).exists()
