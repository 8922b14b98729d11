"""Supervised fine-tuning (SFT): teach a causal LM to answer instructions like the examples do.

Examples are chat conversations rendered with the model's own chat template; by default only
the assistant's tokens count for the loss (`data.train_on_prompt` switches that off). The
tokenisation and masks come from `studio.data.chat`, so what the dataset preview shows is exactly
what trains. TRL's `SFTTrainer` does the batching, packing and optimisation.
"""
from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path

from studio.errors import StudioError
from studio.stages.base import STAGES, Stage, TrainContext
from studio.stages.trainer_setup import (common_training_args, run_callbacks, finish_training,
                                         prepare_for_training, quiet_datasets, use_liger)

log = logging.getLogger(__name__)


def build_sft_datasets(recipe, tokenizer, home: Path):
    """Load, split, render and tokenise the recipe's data into (train, eval) `datasets.Dataset`s."""
    from datasets import Dataset

    from studio.data.examples import encode_records, recipe_records, resolve_template_name
    from studio.workspace import Workspace

    ws = Workspace.open(home)
    records = recipe_records(recipe.data, recipe.train.seed, ws)
    template = resolve_template_name(recipe.data, records)

    def encode(rows):
        encoded = encode_records(rows, tokenizer, template, recipe.data, recipe.train.seed, ws)
        return Dataset.from_dict({"input_ids": [e["input_ids"] for e in encoded],
                                  "labels": [e["labels"] for e in encoded]})

    train = encode(records.train)
    return train, (encode(records.validation) if records.validation else None)


def sft_config(recipe, run_dir: Path, has_eval: bool):
    from trl import SFTConfig

    args = common_training_args(recipe, run_dir, has_eval)
    if recipe.data.packing:  # packed sequences all have the same length: grouping only helps padded batches
        args["train_sampling_strategy"] = "random"
    return SFTConfig(**args, max_length=recipe.data.max_length, packing=recipe.data.packing, dataset_num_proc=None,
                     remove_unused_columns=True, use_liger_kernel=use_liger(recipe.train))


@STAGES.register("sft")
class SupervisedFineTuning(Stage):
    title = "Supervised fine-tuning (SFT)"
    summary = "Learns to answer instructions the way your examples do."
    generates, evaluation = True, "generation"

    @classmethod
    def check_data(cls, recipe, ws) -> None:
        from studio.data import load_examples
        from studio.data.examples import is_studio_dataset
        from studio.data.template_store import get_template

        if recipe.data.template != "auto":
            get_template(recipe.data.template, ws)
        if is_studio_dataset(ws, recipe.data.dataset):
            return
        examples = load_examples(recipe.data.dataset, ws)
        if len(examples) < 2 and recipe.data.validation > 0:
            raise StudioError(f"'data.dataset' has only {len(examples)} usable example(s); add more or set "
                              "data.validation to 0.", field="data.dataset", key="stage.sft.too_few", n=len(examples))

    @classmethod
    def run(cls, ctx: TrainContext) -> dict:
        return train_causal_lm(ctx, build_sft_datasets)


def train_causal_lm(ctx: TrainContext, build_datasets, trainer_cls=None, reshape=None, **config_overrides) -> dict:
    """Load, prepare, train and save a causal LM: the body shared by the SFT and CPT stages.

    `build_datasets(recipe, tokenizer, home) -> (train, eval)` gives tokenised `datasets.Dataset`s;
    `config_overrides` replace `SFTConfig` fields (e.g. CPT's packing strategy); `trainer_cls` (a class or
    factory taking SFTTrainer's arguments) replaces `SFTTrainer`, e.g. for distillation's loss; `reshape(model)`
    changes the loaded model before the method is applied (distillation's smaller student).
    """
    from transformers import PrinterCallback
    from transformers.utils import logging as hf_logging

    from studio.methods import METHODS
    from studio.models.loading import load_causal_lm
    from studio.stages.generation_eval import GenerationMetrics, causal_samples
    from studio.stages.progress import train as train_with_progress
    from studio.workspace import Workspace

    # train.log is read by people: our callback writes one line per step, so no bars or raw dicts.
    hf_logging.disable_progress_bar()
    quiet_datasets()
    warnings.filterwarnings("ignore", category=FutureWarning)  # library deprecation notes, not user news
    recipe = ctx.recipe
    method = METHODS.get(recipe.method.name, field="method.name")
    ws = Workspace.open(ctx.home)
    ctx.emit({"type": "log", "message": f"Loading model {recipe.model}"})
    model, tokenizer = load_causal_lm(recipe.model, ws, precision=recipe.train.precision,
                                      trust_remote_code=recipe.trust_remote_code,
                                      **method.load_kwargs(recipe.method))
    if reshape is not None:
        reshape(model)
    train_ds, eval_ds = build_datasets(recipe, tokenizer, ctx.home)
    ctx.emit({"type": "log", "message": f"{len(train_ds)} training and {len(eval_ds) if eval_ds else 0} "
                                        "validation examples"})
    model, callback, optimizer = prepare_for_training(ctx, method, model, len(train_ds))
    if recipe.data.packing and (problem := packing_problem(model)):
        ctx.emit({"type": "log", "message": f"Examples train padded, not packed: {problem}"})
        recipe = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, packing=False))
    if recipe.data.packing:  # packed rows attend example by example (studio.models.varlen_attention)
        from studio.models.varlen_attention import use_varlen_attention

        if use_varlen_attention(model):
            ctx.emit({"type": "log", "message": "Packed examples attend one by one (per-example sdpa)"})
    args = sft_config(recipe, ctx.run_dir, eval_ds is not None)
    for key, value in config_overrides.items():
        setattr(args, key, value)
    samples = causal_samples(eval_ds, tokenizer, recipe.train.eval_samples)
    generation = GenerationMetrics(samples, tokenizer, ctx.emit, ctx.run_dir)
    trainer_cls = trainer_cls or sft_trainer_class(recipe.train)
    trainer = trainer_cls(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, processing_class=tokenizer,
                          callbacks=[generation, callback, *method.callbacks(model, recipe.method),
                                     *run_callbacks(ctx, eval_ds is not None)],
                          optimizers=(optimizer, None))
    trainer.remove_callback(PrinterCallback)
    output = train_with_progress(trainer, callback, ctx.resume_from)
    return finish_training(trainer, output, callback, method, tokenizer, ctx)


def packing_problem(model) -> str | None:
    """Why packed rows would not train exactly as padded ones on this model; None when they would.

    transformers' own decoders keep packed examples apart from their restarting position ids (any attention
    implementation); a soft prompt (prompt/prefix tuning) is prepended once per row and peft drops the position
    ids, and remote model code may not look at them."""
    peft_config = getattr(model, "active_peft_config", None)
    if peft_config is not None and peft_config.is_prompt_learning:
        return "a soft prompt would be prepended once per packed row, not once per example"
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not type(base).__module__.startswith("transformers."):
        return "this model's own code may let packed examples attend to each other"
    return None


def sft_trainer_class(train_cfg):
    """TRL's SFTTrainer, whose training loss skips the full logits and the per-step entropy/accuracy pass
    (`studio.stages.lean_loss`) unless `train.token_metrics` asks for them or the model needs its own forward."""
    from trl import SFTTrainer

    from studio.stages.lean_loss import lean_causal_loss, supports_lean_loss

    if train_cfg.token_metrics:
        return SFTTrainer

    class LeanSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if return_outputs or not model.training or not supports_lean_loss(model):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            return lean_causal_loss(model, inputs, num_items_in_batch)

        def _track_num_input_tokens(self, inputs):
            # A padding-free row holds only real tokens: count them without a device sync (and without taking
            # the end-of-turn token, which doubles as the pad token, for padding).
            if "position_ids" in inputs and "attention_mask" not in inputs and self.accelerator.num_processes == 1:
                self.state.num_input_tokens_seen += int(inputs["input_ids"].numel())
                return
            super()._track_num_input_tokens(inputs)

    return LeanSFTTrainer


