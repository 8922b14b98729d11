"""The contract every training stage fulfils, and the context a worker hands it.

A stage turns a validated recipe into a finished result: it loads data in the shape it needs,
asks the method to prepare the model, trains (reporting progress only through `ctx.emit` and
stopping only when `ctx.should_stop()` says so), and asks the method to save the result.
Stages never touch SQLite or the job queue: the worker and supervisor do.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from studio.registry import Registry


@dataclass
class TrainContext:
    recipe: Any  # studio.config.Recipe, with train.precision already resolved
    run_dir: Path
    home: Path
    emit: Callable[[dict], None] = lambda event: None
    should_stop: Callable[[], bool] = lambda: False
    resume_from: Path | None = None
    extra: dict = field(default_factory=dict)


class Stage:
    name: ClassVar[str]
    title: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    @classmethod
    def check_data(cls, recipe: Any, ws: Any) -> None:
        """Refuse data this stage cannot train on, before a run exists (StudioError naming the field)."""

    @classmethod
    def run(cls, ctx: TrainContext) -> dict:
        """Train and save; return {"result_dir": str, "final_loss": float | None, "stopped": bool}."""
        raise NotImplementedError


STAGES: Registry[type[Stage]] = Registry("stage")
