"""The registration shape the direct preference stages share (dpo, kto, orpo): settings, data check, TRL trainer.

Each of those stages reads its own recipe section (named like the stage) into a settings dataclass,
checks that section and the preference data before a run exists, and trains with one TRL trainer
through the shared loop (`studio.stages.preference_training.train_policy`), reporting the last value
of a few metrics. `PreferenceStage` does all of that; a subclass says only what differs:

- `settings_cls`: the dataclass of its recipe section (the UI renders it too);
- `trl_classes`: where its TRL config and trainer live, as ("module", "ConfigClass", "TrainerClass");
- `trl_settings(settings, recipe)`: the TRL config fields its settings become (max_length is added here);
- optionally `formats` (data formats it accepts), `reference` (whether TRL gets a reference model),
  `report` (metrics the result carries), `check_settings` (checks beyond the section's own),
  `build_datasets` (TRL rows; preference pairs by default) and `describe` (a log line at the start).

The `rl` stage trains with the same loop but generates its own answers, so it is not one of these.
"""
from __future__ import annotations

import importlib
from typing import ClassVar

from studio.stages.base import Stage, TrainContext


class PreferenceStage(Stage):
    """A stage that trains a causal LM with one TRL preference trainer on preference or feedback data."""

    generates = True
    trl_classes: ClassVar[tuple[str, str, str]]
    formats: ClassVar[tuple[str, ...]] = ("preference",)
    reference: ClassVar[bool] = True
    report: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def check_settings(cls, recipe, settings) -> None:
        """Refuse recipe values this stage cannot train with (beyond its own section's bounds)."""

    @classmethod
    def trl_settings(cls, settings, recipe) -> dict:
        """The TRL config fields this stage's settings become."""
        raise NotImplementedError

    @classmethod
    def describe(cls, settings) -> str | None:
        """A log line said when training starts, or None."""
        return None

    @classmethod
    def build_datasets(cls, recipe, ws, tokenizer, emit):
        """(train, eval) TRL datasets; preference pairs unless the stage says otherwise."""
        from studio.stages.preference_data import pair_datasets

        return pair_datasets(cls.name)(recipe, ws, tokenizer, emit)

    @classmethod
    def check_data(cls, recipe, ws) -> None:
        from studio.stages.preference_data import load_preference_records

        cls.check_settings(recipe, cls.settings(recipe))
        load_preference_records(recipe, ws, cls.formats, cls.name)

    @classmethod
    def run(cls, ctx: TrainContext) -> dict:
        from studio.stages.preference_training import train_policy

        settings = cls.settings(ctx.recipe)
        module, config_name, trainer_name = cls.trl_classes
        trl = importlib.import_module(module)
        message = cls.describe(settings)
        if message:
            ctx.emit({"type": "log", "message": message})
        return train_policy(ctx, cls.build_datasets, getattr(trl, trainer_name), getattr(trl, config_name),
                            {"max_length": ctx.recipe.data.max_length, **cls.trl_settings(settings, ctx.recipe)},
                            reference=cls.reference, report=cls.report)
