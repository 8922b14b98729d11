"""ORPO (odds-ratio preference optimisation): supervised fine-tuning and preference learning in one loss.

The loss is the usual next-token loss on the chosen answer plus `orpo.beta` (lambda in the paper)
times a term that raises the odds of the chosen answer against the rejected one. No reference model
is needed, so it costs about what SFT costs. TRL 1.x ships ORPO in `trl.experimental.orpo` (its API
may change); it logs rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies, nll_loss
and log_odds_ratio (eval_* at evaluations). The data is a preference dataset or file.
"""
from __future__ import annotations

from dataclasses import dataclass

from studio.settings import setting
from studio.stages.base import STAGES
from studio.stages.preference_base import PreferenceStage

REPORTED = ("eval_rewards/accuracies", "eval_rewards/margins", "rewards/accuracies", "rewards/margins")


@dataclass
class OrpoConfig:
    """How much the preference term counts beside learning the chosen answers."""

    beta: float = setting(0.1, help="Weight of the preference term (lambda in the ORPO paper) beside learning the "
                          "chosen answers: higher pushes the chosen and rejected answers apart harder. Usually "
                          "0.05 to 0.5.", gt=0.0, max=10.0)


@STAGES.register("orpo")
class OddsRatioPreference(PreferenceStage):
    title = "ORPO (fine-tuning and preferences in one step)"
    summary = "Learns the chosen answers and to prefer them over the rejected ones, without a reference model."
    settings_cls = OrpoConfig
    trl_classes = ("trl.experimental.orpo", "ORPOConfig", "ORPOTrainer")
    reference = False
    report = REPORTED

    @classmethod
    def trl_settings(cls, settings: OrpoConfig, recipe) -> dict:
        # its collator has no input_ids key for the Trainer's token count
        return {"beta": settings.beta, "include_num_input_tokens_seen": "no"}
