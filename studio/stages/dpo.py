"""Direct preference optimisation (DPO): the model learns to prefer the chosen answer of each pair.

No reward model: for each pair (prompt, chosen, rejected) the loss compares how much more likely the
model makes the chosen answer than the rejected one, relative to the reference model it started as,
and `dpo.beta` sets how far it may move from that reference. Three losses: 'sigmoid' (the DPO
paper's), 'ipo' (a squared loss that stops short of certainty) and 'hinge'. The reference is the
adapter-disabled base for peft methods and a frozen copy of the starting weights for full
fine-tuning. TRL's DPOTrainer logs rewards/chosen, rewards/rejected, rewards/margins (chosen minus
rejected) and rewards/accuracies (share of pairs where chosen wins), each reward being beta x the
log-probability gained since the reference; evaluations log the same names with the eval_ prefix.
The data is a preference dataset or file (`studio.stages.preference_data`); the loop is shared with
the other policy stages (`studio.stages.preference_training`).
"""
from __future__ import annotations

from dataclasses import dataclass

from studio.settings import parse_settings, setting
from studio.stages.base import STAGES, Stage, TrainContext

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


def dpo_settings(recipe) -> DpoConfig:
    return parse_settings(DpoConfig, recipe.dpo, "dpo")


@STAGES.register("dpo")
class DirectPreference(Stage):
    title = "Direct preference optimisation (DPO)"
    summary = "Learns to prefer the chosen answer of each pair over the rejected one; no reward model needed."

    @classmethod
    def check_data(cls, recipe, ws) -> None:
        from studio.stages.preference_data import load_preference_records

        dpo_settings(recipe)
        load_preference_records(recipe, ws, ("preference",), "dpo")

    @classmethod
    def run(cls, ctx: TrainContext) -> dict:
        from trl import DPOConfig, DPOTrainer

        from studio.stages.preference_data import pair_datasets
        from studio.stages.preference_training import train_policy

        settings = dpo_settings(ctx.recipe)
        ctx.emit({"type": "log", "message": f"DPO with the {settings.loss_type} loss, beta={settings.beta}"})
        return train_policy(ctx, pair_datasets("dpo"), DPOTrainer, DPOConfig,
                            {"beta": settings.beta, "loss_type": [settings.loss_type],
                             "max_length": ctx.recipe.data.max_length}, report=REPORTED)
