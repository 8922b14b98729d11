"""Reward model: a sequence classifier with one output learns to score the chosen answer above the rejected.

The recipe's base model gets a one-output head (`AutoModelForSequenceClassification`, num_labels=1;
a decoder reads its last non-padding token, so the pad id is set) and learns the Bradley-Terry loss
-log sigmoid(r_chosen - r_rejected) on preference pairs with TRL's RewardTrainer; every method that
serves the stage applies (LoRA wraps it as peft's SEQ_CLS task, whose head trains whole). Training
and evaluation log accuracy (share of pairs where r_chosen > r_rejected), margin (mean r_chosen -
r_rejected) and rewards/chosen, rewards/rejected; after training the held-out pairs are scored one
by one and the result carries the exact eval_accuracy and eval_margin. The saved result is what the
`rl` stage loads (`load_reward_model`) to score a policy's answers as text.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from studio.errors import StudioError
from studio.stages.base import STAGES, Stage, TrainContext

REWARD_LABELS = ["reward"]  # one output: the score


def _trainer_class():
    from trl import RewardTrainer

    class PairRewardTrainer(RewardTrainer):
        """RewardTrainer that also logs the mean reward of the chosen and of the rejected answers."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            import torch

            loss, outputs = super().compute_loss(model, inputs, return_outputs=True)
            mode = "train" if self.model.training else "eval"
            with torch.no_grad():
                chosen, rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
                self._metrics[mode]["rewards/chosen"].append(chosen.mean().item())
                self._metrics[mode]["rewards/rejected"].append(rejected.mean().item())
            return (loss, outputs) if return_outputs else loss

    return PairRewardTrainer


def score_texts(model, tokenizer, prompts: list, answers: list, max_length: int, batch_size: int = 8) -> list[float]:
    """The reward of each (prompt, answer), tokenised as the reward model was trained (`reward_ids`)."""
    import torch

    from studio.stages.preference_data import reward_ids

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    scores: list[float] = []
    for start in range(0, len(prompts), batch_size):
        ids = [reward_ids(tokenizer, p, a)[:max_length] for p, a in zip(prompts[start:start + batch_size],
                                                                           answers[start:start + batch_size])]
        width = max(len(i) for i in ids)
        input_ids = torch.tensor([i + [pad] * (width - len(i)) for i in ids], device=device)
        mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids], device=device)
        with torch.no_grad():
            scores += model(input_ids=input_ids, attention_mask=mask).logits[:, 0].float().tolist()
    return scores


def pair_scores(model, tokenizer, rows: list[dict], max_length: int) -> dict:
    """{"accuracy", "margin"} of a reward model on TRL pair rows: share with r_chosen > r_rejected, mean gap."""
    chosen = score_texts(model, tokenizer, [r["prompt"] for r in rows], [r["chosen"] for r in rows], max_length)
    rejected = score_texts(model, tokenizer, [r["prompt"] for r in rows], [r["rejected"] for r in rows], max_length)
    gaps = [c - r for c, r in zip(chosen, rejected)]
    return {"accuracy": sum(g > 0 for g in gaps) / len(gaps), "margin": sum(gaps) / len(gaps)}


def load_reward_model(run: dict, ws):
    """(model, tokenizer, max_length) of a finished reward run: its base with its result attached, eval mode."""
    from studio.config import load_recipe
    from studio.methods import METHODS
    from studio.stages.classify import load_classifier

    recipe = load_recipe(Path(run["run_dir"]) / "recipe.yaml")
    result_dir = Path(run["result_dir"])
    base, tokenizer = load_classifier(run["model"], ws, REWARD_LABELS, recipe.trust_remote_code)
    model = METHODS.get(run["method"], field="rl.reward").load_result(base, result_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.eval().requires_grad_(False), tokenizer, recipe.data.max_length


@STAGES.register("reward")
class RewardModel(Stage):
    title = "Reward model"
    summary = "Learns to score answers the way your preference pairs rank them; reports pairwise accuracy."
    task = "classify"

    @classmethod
    def check_data(cls, recipe, ws) -> None:
        from studio.stages.classify import check_classifier_model
        from studio.stages.preference_data import load_preference_records

        check_classifier_model(recipe, ws)
        load_preference_records(recipe, ws, ("preference",), "reward")

    @classmethod
    def run(cls, ctx: TrainContext) -> dict:
        return train_reward_model(ctx)


def encode_pairs(rows: list[dict], tokenizer, max_length: int) -> tuple[list[dict], list[dict]]:
    """(rows that fit in max_length tokens, their {"chosen_ids", "rejected_ids"}), tokenised by `reward_ids`:
    the trainer gets ids, so training and later scoring cannot tokenise differently."""
    from studio.stages.preference_data import reward_ids

    kept, encoded = [], []
    for row in rows:
        chosen, rejected = (reward_ids(tokenizer, row["prompt"], row[side]) for side in ("chosen", "rejected"))
        if max(len(chosen), len(rejected)) <= max_length:
            kept.append(row)
            encoded.append({"chosen_ids": chosen, "rejected_ids": rejected})
    return kept, encoded


def train_reward_model(ctx: TrainContext) -> dict:
    from transformers import PrinterCallback
    from transformers.utils import logging as hf_logging
    from trl import RewardConfig

    from studio.methods import METHODS
    from studio.stages.classify import load_classifier
    from studio.stages.preference_data import load_preference_records, pair_row, rows_dataset
    from studio.stages.preference_training import preference_args
    from studio.stages.progress import train as train_with_progress
    from studio.stages.trainer_setup import run_callbacks, finish_training, prepare_for_training, quiet_datasets
    from studio.workspace import Workspace

    hf_logging.disable_progress_bar()
    quiet_datasets()
    warnings.filterwarnings("ignore", category=FutureWarning)
    recipe, max_length = ctx.recipe, ctx.recipe.data.max_length
    method = METHODS.get(recipe.method.name, field="method.name")
    ws = Workspace.open(ctx.home)
    data = load_preference_records(recipe, ws, ("preference",), "reward")
    ctx.emit({"type": "log", "message": f"Loading model {recipe.model} with a one-output reward head"})
    model, tokenizer = load_classifier(recipe.model, ws, REWARD_LABELS, recipe.trust_remote_code,
                                       **method.load_kwargs(recipe.method))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id
    system = recipe.data.system_prompt
    train_rows = [pair_row(r, tokenizer, system) for r in data.train]
    eval_rows = [pair_row(r, tokenizer, system) for r in data.validation]
    kept_train, train_ids = encode_pairs(train_rows, tokenizer, max_length)
    kept_eval, eval_ids = encode_pairs(eval_rows, tokenizer, max_length)
    dropped = len(train_rows) + len(eval_rows) - len(kept_train) - len(kept_eval)
    if dropped:
        ctx.emit({"type": "log", "message": f"{dropped} pair(s) longer than data.max_length={max_length} tokens "
                                            "were left out"})
    if not kept_train:
        raise StudioError(f"Every training pair is longer than data.max_length={max_length} tokens; raise "
                          "data.max_length.", field="data.max_length", key="stage.reward.too_long",
                          max_length=max_length)
    train_ds, eval_ds = rows_dataset(train_ids), rows_dataset(eval_ids)
    ctx.emit({"type": "log", "message": f"{len(kept_train)} training and {len(kept_eval)} validation pairs"})
    model, callback, optimizer = prepare_for_training(ctx, method, model, len(train_ds))
    args = RewardConfig(**preference_args(recipe, ctx.run_dir, eval_ds is not None, max_length=max_length))
    trainer = _trainer_class()(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                               processing_class=tokenizer, optimizers=(optimizer, None),
                               callbacks=[callback, *method.callbacks(model, recipe.method),
                                          *run_callbacks(ctx, eval_ds is not None)])
    trainer.remove_callback(PrinterCallback)
    output = train_with_progress(trainer, callback, ctx.resume_from)
    evaluated = [h["step"] for h in trainer.state.log_history if "eval_accuracy" in h]
    if eval_ds is not None and not callback.stopped and evaluated[-1:] != [trainer.state.global_step]:
        trainer.evaluate()  # the live charts end on the model that is saved
    result = finish_training(trainer, output, callback, method, tokenizer, ctx)
    if result["stopped"]:
        return result
    (Path(result["result_dir"]) / "labels.json").write_text(json.dumps({"labels": REWARD_LABELS}), encoding="utf-8")
    scores = pair_scores(trainer.model.eval(), tokenizer, kept_eval, max_length) if kept_eval else {}
    return {**result, "eval_accuracy": scores.get("accuracy"), "eval_margin": scores.get("margin"),
            "eval_pairs": len(kept_eval)}
