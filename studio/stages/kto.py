"""KTO (Kahneman-Tversky optimisation): the model learns from answers judged good or bad one at a time.

The data is 'feedback' records (prompt, completion, label true/false) such as thumbs up/down, or
preference pairs, each of which becomes one desirable and one undesirable answer. Like DPO it
measures each answer's log-probability gain over the reference model (the adapter-disabled base
for peft methods, a frozen copy for full fine-tuning), scaled by `kto.beta`, against an estimate of
the KL divergence from the reference taken on mismatched prompt/answer pairs of the same batch; so
a batch needs two or more examples, and TRL reads them in order (they are shuffled here first).
`kto.desirable_weight` / `undesirable_weight` balance unequal counts of good and bad answers. TRL's
KTOTrainer logs rewards/chosen, rewards/rejected, rewards/margins and kl (eval_* at evaluations).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from studio.errors import StudioError
from studio.settings import setting
from studio.stages.base import STAGES
from studio.stages.preference_base import PreferenceStage

FORMATS = ("feedback", "preference")
REPORTED = ("eval_rewards/margins", "eval_kl", "rewards/margins", "kl")


@dataclass
class KtoConfig:
    """How KTO weighs good and bad answers, and how far the model may move."""

    beta: float = setting(0.1, help="How closely the model stays to where it started: higher keeps it closer, lower "
                          "lets it follow the judgements further.", gt=0.0, max=10.0)
    desirable_weight: float = setting(1.0, help="Weight of the answers judged good. With fewer good than bad "
                                      "answers, raise it so that weight x count is about the same on both sides.",
                                      gt=0.0, max=100.0)
    undesirable_weight: float = setting(1.0, help="Weight of the answers judged bad (see desirable_weight).",
                                        gt=0.0, max=100.0)


@STAGES.register("kto")
class KahnemanTversky(PreferenceStage):
    title = "KTO (learning from good/bad judgements)"
    summary = "Learns from answers marked good or bad (thumbs up/down), or from preference pairs."
    settings_cls = KtoConfig
    trl_classes = ("trl", "KTOConfig", "KTOTrainer")
    formats = FORMATS
    report = REPORTED

    @classmethod
    def check_settings(cls, recipe, settings: KtoConfig) -> None:
        if recipe.train.batch_size < 2:
            raise StudioError("'train.batch_size' is 1; KTO compares each answer with the others of its batch, so "
                              "set it to 2 or more.", field="train.batch_size", key="stage.kto.batch_size")

    @classmethod
    def trl_settings(cls, settings: KtoConfig, recipe) -> dict:
        return {"beta": settings.beta, "desirable_weight": settings.desirable_weight,
                "undesirable_weight": settings.undesirable_weight,
                # the KL estimate pairs each example with its batch neighbours: keep the order
                "train_sampling_strategy": "sequential"}

    @classmethod
    def build_datasets(cls, recipe, ws, tokenizer, emit):
        """Judged answers as TRL's unpaired rows (pairs are split into a good and a bad answer), shuffled."""
        from studio.stages.preference_data import feedback_row, load_preference_records, pairs_as_feedback, \
            rows_dataset

        data = load_preference_records(recipe, ws, FORMATS, "kto")
        if data.skipped:
            emit({"type": "log", "message": f"{data.skipped} unusable row(s) of the file were left out"})
        seed = recipe.train.seed
        if data.format == "preference":
            train, val = pairs_as_feedback(data.train, seed), pairs_as_feedback(data.validation, seed)
            emit({"type": "log", "message": f"{len(data.train) + len(data.validation)} pairs became one good and "
                                            "one bad answer each"})
        else:
            train, val = list(data.train), list(data.validation)
            random.Random(seed).shuffle(train)
        system = recipe.data.system_prompt
        return (rows_dataset([feedback_row(r, tokenizer, system) for r in train]),
                rows_dataset([feedback_row(r, tokenizer, system) for r in val]))
