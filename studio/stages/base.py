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
    """What every part of the studio asks a stage is said here, on the class, so adding a stage touches only its
    module and the locale files: the recipe section it reads, the model head it trains, whether its result
    writes text and what the Evaluate tab measures on it."""

    name: ClassVar[str]
    title: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    settings_cls: ClassVar[type | None] = None  # the recipe section named after the stage (`dpo:`), if it has one
    task: ClassVar[str] = "causal"  # the model head it trains: "causal", "seq2seq" or "classify"
    generates: ClassVar[bool] = False  # its result answers in text (playground, preference candidates)
    evaluation: ClassVar[str | None] = None  # what the Evaluate tab measures: "generation", "classification"

    @classmethod
    def settings(cls, recipe: Any) -> Any:
        """The stage's recipe section parsed into `settings_cls` (defaults for what the recipe leaves out)."""
        from studio.settings import parse_settings

        return parse_settings(cls.settings_cls, recipe.section(cls.name), cls.name)

    @classmethod
    def check_data(cls, recipe: Any, ws: Any) -> None:
        """Refuse data this stage cannot train on, before a run exists (StudioError naming the field)."""

    @classmethod
    def memory_models(cls, recipe: Any, ws: Any, config: Any) -> tuple[Any, int]:
        """For the memory estimate: the config of the model this stage trains, given the recipe model's `config`,
        and the parameters of the models the run holds frozen beside it (e.g. a teacher)."""
        return config, 0

    @classmethod
    def run(cls, ctx: TrainContext) -> dict:
        """Train and save; return {"result_dir": str, "final_loss": float | None, "stopped": bool}."""
        raise NotImplementedError


STAGES: Registry[type[Stage]] = Registry("stage")


def stage_sections() -> dict[str, type]:
    """{stage name: settings class} for every stage that reads a recipe section of its own."""
    return {name: cls.settings_cls for name, cls in STAGES.items() if cls.settings_cls is not None}


def capability(stage: str | None, attribute: str) -> Any:
    """One class attribute of the stage named `stage` (e.g. "generates"); None for a name no stage has."""
    return getattr(dict(STAGES.items()).get(stage or ""), attribute, None)


def stages_where(**capabilities: Any) -> tuple[str, ...]:
    """The names of the stages whose class attributes equal `capabilities`, e.g. stages_where(generates=True)."""
    return tuple(name for name, cls in STAGES.items()
                 if all(getattr(cls, key) == value for key, value in capabilities.items()))
