"""ORPO (odds-ratio preference optimisation): supervised fine-tuning and preference learning in one loss.

The loss is the usual next-token loss on the chosen answer plus `orpo.beta` (lambda in the paper)
times a term that raises the odds of the chosen answer against the rejected one. No reference model
is needed, so it costs about what SFT costs. TRL 1.x ships ORPO in `trl.experimental.orpo` (its API
may change); it logs rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies, nll_loss
and log_odds_ratio (eval_* at evaluations). The data is a preference dataset or file.
"""
from __future__ import annotations

from dataclasses import dataclass

from studio.settings import parse_settings, setting
from studio.stages.base import STAGES, Stage, TrainContext

REPORTED = ("eval_rewards/accuracies", "eval_rewards/margins", "rewards/accuracies", "rewards/margins")


@dataclass
class OrpoConfig:
    """How much the preference term counts beside learning the chosen answers."""

    beta: float = setting(0.1, help="Weight of the preference term (lambda in the ORPO paper) beside learning the "
                          "chosen answers: higher pushes the chosen and rejected answers apart harder. Usually "
                          "0.05 to 0.5.", gt=0.0, max=10.0)


def orpo_settings(recipe) -> OrpoConfig:
    return parse_settings(OrpoConfig, recipe.orpo, "orpo")


@STAGES.register("orpo")
class OddsRatioPreference(Stage):
    title = "ORPO (fine-tuning and preferences in one step)"
    summary = "Learns the chosen answers and to prefer them over the rejected ones, without a reference model."

    @classmethod
    def check_data(cls, recipe, ws) -> None:
        from studio.stages.preference_data import load_preference_records

        orpo_settings(recipe)
        load_preference_records(recipe, ws, ("preference",), "orpo")

    @classmethod
    def run(cls, ctx: TrainContext) -> dict:
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        from studio.stages.preference_data import pair_datasets
        from studio.stages.preference_training import train_policy

        settings = orpo_settings(ctx.recipe)
        return train_policy(ctx, pair_datasets("orpo"), ORPOTrainer, ORPOConfig,
                            {"beta": settings.beta, "max_length": ctx.recipe.data.max_length,
                             # its collator has no input_ids key for the Trainer's token count
                             "include_num_input_tokens_seen": "no"}, reference=False, report=REPORTED)
