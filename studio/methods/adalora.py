"""AdaLoRA: LoRA whose rank budget moves during training to the layers that matter most.

Every targeted layer starts at `init_r`; after a warm-up share of the steps, AdaLoRA scores each
rank-1 component by importance and prunes the weakest until the average rank reaches `target_r`,
then holds the pattern for a final share of the steps. peft does the scoring and pruning; this
module supplies what the trainer must do for it: tell peft the real number of steps when
training begins and call `update_and_allocate` after every optimizer step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.errors import StudioError
from studio.methods.base import METHODS, PeftMethod
from studio.methods.lora import check_rank, matched_layers, parse_targets
from studio.settings import setting

PLACEHOLDER_STEPS = 1000  # peft needs a step count at construction; the callback sets the real one


@dataclass
class AdaLoraSettings:
    init_r: int = setting(12, help="Starting rank of every targeted layer, before pruning.", min=1, max=1024)
    target_r: int = setting(8, help="Average rank left after pruning: the final budget.", min=1, max=1024)
    alpha: float = setting(32.0, help="Scale of the update, as in LoRA.", gt=0.0, max=65536.0)
    dropout: float = setting(0.05, help="Dropout on the adapter input during training.", min=0.0, max=0.9)
    target_modules: str = setting("all-linear", help="Which layers get AdaLoRA: 'all-linear', 'attention' or a "
                                  "comma-separated list of module names.")
    tinit: float = setting(0.1, help="Share of the training steps to train at full rank before pruning starts.",
                           min=0.0, max=0.9, advanced=True)
    tfinal: float = setting(0.2, help="Share of the training steps at the end that keep the final ranks fixed.",
                            min=0.0, max=0.9, advanced=True)
    deltaT: int = setting(1, help="Re-allocate the ranks every this many steps during the pruning phase.",
                          min=1, max=10000, advanced=True)

    name = "adalora"

    def __post_init__(self) -> None:
        if self.target_r > self.init_r:
            raise StudioError(f"'method.target_r' ({self.target_r}) must not exceed 'method.init_r' "
                              f"({self.init_r}): AdaLoRA only removes rank.", field="method.target_r",
                              key="method.adalora.target_above_init", target_r=self.target_r, init_r=self.init_r)
        if self.tinit + self.tfinal >= 0.9:
            raise StudioError(f"'method.tfinal' plus 'method.tinit' is {self.tinit + self.tfinal:.2f}; keep it "
                              "under 0.9 so some steps are left for pruning.", field="method.tfinal",
                              key="method.adalora.schedule_too_long", total=self.tinit + self.tfinal)


def schedule(settings: AdaLoraSettings, total_steps: int) -> tuple[int, int]:
    """(tinit, tfinal) in steps for this run, always leaving at least one step of pruning."""
    tinit, tfinal = int(settings.tinit * total_steps), int(settings.tfinal * total_steps)
    while tinit + tfinal >= total_steps and (tinit or tfinal):
        if tfinal >= tinit:
            tfinal -= 1
        else:
            tinit -= 1
    return tinit, tfinal


def _adalora_callback(model: Any, settings: AdaLoraSettings) -> Any:
    from transformers import TrainerCallback

    class AdaLoraBudget(TrainerCallback):
        """Sets the real step count when training starts; re-allocates ranks after each optimizer step."""

        def on_train_begin(self, args, state, control, **kwargs):
            config = model.peft_config[model.active_adapter]
            config.total_step = max(state.max_steps, 1)
            config.tinit, config.tfinal = schedule(settings, config.total_step)

        def on_optimizer_step(self, args, state, control, **kwargs):
            # global_step is bumped after this hook; peft counts steps from 1 to total_step.
            model.base_model.update_and_allocate(state.global_step + 1)

    return AdaLoraBudget()


@METHODS.register("adalora")
class AdaLora(PeftMethod):
    settings_cls = AdaLoraSettings
    title = "AdaLoRA"
    summary = "LoRA that moves its rank budget to the layers that need it most while it trains."
    mergeable = True
    stages = ("sft", "cpt")  # not the preference stages: TRL adds a reference adapter, AdaLoRA trains only one

    @classmethod
    def peft_config(cls, model: Any, settings: AdaLoraSettings) -> Any:
        from peft import AdaLoraConfig, TaskType

        targets = parse_targets(settings.target_modules)
        check_rank(matched_layers(model, targets), settings.init_r, field="method.init_r")
        tinit, tfinal = schedule(settings, PLACEHOLDER_STEPS)
        return AdaLoraConfig(init_r=settings.init_r, target_r=settings.target_r, lora_alpha=settings.alpha,
                             lora_dropout=settings.dropout, target_modules=targets, tinit=tinit, tfinal=tfinal,
                             deltaT=settings.deltaT, total_step=PLACEHOLDER_STEPS, task_type=TaskType.CAUSAL_LM)

    @classmethod
    def callbacks(cls, model: Any, settings: AdaLoraSettings) -> list:
        return [_adalora_callback(model, settings)]
