"""The training loop the policy stages share (dpo, kto, orpo, rl): load, prepare, train with a TRL trainer, save.

It is SFT's loop (`studio.stages.sft`) with what preference trainers add: a reference model (none for
peft methods, whose adapter-disabled base is the reference; a frozen copy of the starting weights for
the others), TRL config classes in place of `SFTConfig`, random batches (TRL's preference collators
have no `input_ids` column to group lengths by), and, after training, the removal of the frozen
"ref" adapter TRL adds beside a ready-made peft model, so the saved result holds the trained adapter
only. What each stage trains on and which TRL trainer it uses stay in the stage modules.
"""
from __future__ import annotations

import copy
import warnings
from typing import Any, Callable

from studio.stages.base import TrainContext


def preference_args(recipe, run_dir, has_eval: bool, **overrides: Any) -> dict:
    """The studio's shared Trainer arguments, with sampling that preference collators support."""
    from studio.stages.trainer_setup import common_training_args

    args = common_training_args(recipe, run_dir, has_eval)
    args["train_sampling_strategy"] = "random"
    return {**args, **overrides}


def frozen_reference(model, method):
    """A frozen copy of the starting weights, or None when the method is a peft adapter (its disabled
    adapter is the starting model, so no second copy is kept in memory)."""
    from studio.methods.base import PeftMethod

    if issubclass(method, PeftMethod):
        return None
    return copy.deepcopy(model).eval().requires_grad_(False)


def drop_reference_adapter(model) -> None:
    """Delete the "ref" adapter TRL adds to a peft model it is handed, so only the trained one is saved."""
    config = getattr(model, "peft_config", None)
    if isinstance(config, dict) and "ref" in config:
        model.delete_adapter("ref")


def train_policy(ctx: TrainContext, build_datasets: Callable, make_trainer: Callable, config_cls,
                 settings: dict, reference: bool = True, report: tuple[str, ...] = ()) -> dict:
    """Train a causal LM with a TRL preference trainer and save it as the method says.

    `build_datasets(recipe, ws, tokenizer, emit) -> (train, eval)` gives TRL-ready datasets; `make_trainer`
    takes the trainer's keyword arguments (plus `ref_model` when `reference`); `settings` are the TRL config's
    stage fields (beta, max_length, ...) and override the shared ones; the result carries the last logged value
    of each metric in `report`."""
    from transformers import PrinterCallback
    from transformers.utils import logging as hf_logging

    from studio.methods import METHODS
    from studio.models.loading import load_causal_lm
    from studio.stages.progress import train as train_with_progress
    from studio.stages.trainer_setup import run_callbacks, finish_training, prepare_for_training, quiet_datasets
    from studio.workspace import Workspace

    hf_logging.disable_progress_bar()
    quiet_datasets()
    warnings.filterwarnings("ignore", category=FutureWarning)
    recipe = ctx.recipe
    method = METHODS.get(recipe.method.name, field="method.name")
    ws = Workspace.open(ctx.home)
    ctx.emit({"type": "log", "message": f"Loading model {recipe.model}"})
    model, tokenizer = load_causal_lm(recipe.model, ws, precision=recipe.train.precision,
                                      trust_remote_code=recipe.trust_remote_code, **method.load_kwargs(recipe.method))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    train_ds, eval_ds = build_datasets(recipe, ws, tokenizer, ctx.emit)
    ctx.emit({"type": "log", "message": f"{len(train_ds)} training and {len(eval_ds) if eval_ds else 0} "
                                        "validation examples"})
    ref_model = frozen_reference(model, method) if reference else None
    model, callback, optimizer = prepare_for_training(ctx, method, model, len(train_ds))
    args = config_cls(**preference_args(recipe, ctx.run_dir, eval_ds is not None, **settings))
    extra = {"ref_model": ref_model} if reference else {}
    trainer = make_trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                           processing_class=tokenizer, optimizers=(optimizer, None),
                           callbacks=[callback, *method.callbacks(model, recipe.method),
                                      *run_callbacks(ctx, eval_ds is not None)], **extra)
    trainer.remove_callback(PrinterCallback)
    output = train_with_progress(trainer, callback, ctx.resume_from)
    drop_reference_adapter(trainer.model)
    result = finish_training(trainer, output, callback, method, tokenizer, ctx)
    return result if result["stopped"] else {**result, **last_logged(trainer, report)}


def last_logged(trainer, keys) -> dict:
    """The last logged value of each metric in `keys` (None where it was never logged)."""
    out = {}
    for key in keys:
        values = [h[key] for h in trainer.state.log_history if key in h]
        out[key] = values[-1] if values else None
    return out
