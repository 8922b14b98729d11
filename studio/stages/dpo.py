"""Direct preference optimisation (DPO): the model learns to prefer the chosen answer of each pair.

No reward model: for each pair (prompt, chosen, rejected) the loss compares how much more likely the
model makes the chosen answer than the rejected one, relative to the reference model it started as,
and `dpo.beta` sets how far it may move from that reference. Three losses: 'sigmoid' (the DPO
paper's), 'ipo' (a squared loss that stops short of certainty) and 'hinge'. The reference is the
adapter-disabled base for peft methods and a frozen copy of the starting weights for full
fine-tuning. TRL's DPOTrainer logs rewards/chosen, rewards/rejected, rewards/margins (chosen minus
rejected) and rewards/accuracies (share of pairs where chosen wins), each reward being beta x the
log-probability gained since the reference; evaluations log the same names with the eval_ prefix.
The data is a preference dataset or file (`studio.stages.preference_data`); the registration shape and
the loop are shared with kto and orpo (`studio.stages.preference_base`, `studio.stages.preference_training`).
"""
from __future__ import annotations

from dataclasses import dataclass

from studio.settings import setting
from studio.stages.base import STAGES
from studio.stages.preference_base import PreferenceStage

LOSSES = ("sigmoid", "ipo", "hinge")
REPORTED = ("eval_rewards/accuracies", "eval_rewards/margins", "rewards/accuracies", "rewards/margins")


@dataclass
class DpoConfig:
    """How DPO compares the chosen and rejected answers, and how far the model may move."""

    beta: float = setting(0.1, help="How closely the model stays to where it started: higher keeps it closer and "
                          "changes it gently, lower lets it follow the preferences further (and over-fit them "
                          "sooner). For 'ipo' it is the regularisation strength. Usually 0.05 to 0.5.",
                          gt=0.0, max=10.0)
    loss_type: str = setting("sigmoid", help="'sigmoid': the DPO paper's loss; 'ipo': a squared loss that stops "
                             "pushing a pair apart at a fixed gap, steadier when pairs are very clear-cut; 'hinge': "
                             "stops once the chosen answer wins by a margin.", choices=LOSSES)


@STAGES.register("dpo")
class DirectPreference(PreferenceStage):
    title = "Direct preference optimisation (DPO)"
    summary = "Learns to prefer the chosen answer of each pair over the rejected one; no reward model needed."
    settings_cls = DpoConfig
    trl_classes = ("trl", "DPOConfig", "DPOTrainer")
    report = REPORTED

    @classmethod
    def describe(cls, settings: DpoConfig) -> str:
        return f"DPO with the {settings.loss_type} loss, beta={settings.beta}"

    @classmethod
    def trl_settings(cls, settings: DpoConfig, recipe) -> dict:
        return {"beta": settings.beta, "loss_type": [settings.loss_type]}
