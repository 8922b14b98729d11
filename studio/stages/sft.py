"""Supervised fine-tuning (SFT): teach a causal LM to answer instructions like the examples do.

Examples are chat conversations rendered with the model's own chat template; by default only
the assistant's tokens count for the loss (`data.train_on_prompt` switches that off). The
tokenisation and masks come from `studio.data.chat`, so what the dataset preview shows is exactly
what trains. TRL's `SFTTrainer` does the batching, packing and optimisation.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from pathlib import Path

from studio.errors import StudioError
from studio.stages.base import STAGES, Stage, TrainContext

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


CUDA_LOG_EVERY = 5  # steps between logged losses on a GPU (the live chart still gets a point every few seconds)


def common_training_args(recipe, run_dir: Path, has_eval: bool) -> dict:
    """The Trainer arguments every stage shares: schedule, batches, precision, checkpoints, evaluation, logging."""
    import torch

    t = recipe.train
    micro = t.micro_batch_size or t.batch_size  # rows a pass; the step's batch_size rows take batch / micro passes
    return dict(
        output_dir=str(run_dir / "checkpoints"), num_train_epochs=t.epochs, max_steps=t.max_steps,
        learning_rate=t.lr, per_device_train_batch_size=micro, per_device_eval_batch_size=micro,
        gradient_accumulation_steps=t.grad_accum * (t.batch_size // micro),
        warmup_steps=t.warmup_ratio,  # a float in [0, 1) is a share of all steps
        weight_decay=t.weight_decay, lr_scheduler_type=t.scheduler, max_grad_norm=t.max_grad_norm,
        seed=t.seed, data_seed=t.seed, bf16=t.precision == "bf16", fp16=t.precision == "fp16",
        # Each logged loss is a host sync: a CPU step takes seconds, a GPU step milliseconds.
        logging_steps=1 if not torch.cuda.is_available() else CUDA_LOG_EVERY, logging_first_step=True,
        logging_nan_inf_filter=False,  # its per-step isnan() check is a host sync; a NaN loss is logged as NaN
        eval_strategy="steps" if has_eval else "no", eval_steps=t.eval_every,
        save_strategy="steps", save_steps=t.save_every, save_total_limit=2,
        report_to="none", disable_tqdm=True, include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0, dataloader_pin_memory=torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(), gradient_checkpointing=t.gradient_checkpointing,
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        **best_checkpoint_args(t, has_eval),
    )


def use_liger(train_cfg) -> bool:
    """Whether the SFT/CPT trainer patches the model with Liger's kernels (`train.liger`; the training loss stays
    the studio's lean one; the other stages' TRL trainers would swap their losses for Liger's, so they keep theirs)."""
    import importlib.util

    import torch

    if train_cfg.liger == "off":
        return False
    ready = torch.cuda.is_available() and importlib.util.find_spec("liger_kernel") is not None
    if train_cfg.liger == "on" and not ready:
        raise StudioError("'train.liger' is 'on' but Liger's kernels need a CUDA GPU and the liger-kernel package; "
                          "install it (pip install liger-kernel) or set it to 'auto'.", field="train.liger",
                          key="recipe.liger_unavailable")
    return ready


def sft_config(recipe, run_dir: Path, has_eval: bool):
    from trl import SFTConfig

    args = common_training_args(recipe, run_dir, has_eval)
    if recipe.data.packing:  # packed sequences all have the same length: grouping only helps padded batches
        args["train_sampling_strategy"] = "random"
    return SFTConfig(**args, max_length=recipe.data.max_length, packing=recipe.data.packing, dataset_num_proc=None,
                     remove_unused_columns=True, use_liger_kernel=use_liger(recipe.train))


def best_checkpoint_args(t, has_eval: bool) -> dict:
    """Trainer arguments for keep-best and early stopping (both need evaluations to compare)."""
    if not has_eval or not (t.keep_best or t.early_stopping_patience):
        return {}
    metric = t.metric_for_best if t.metric_for_best.startswith("eval_") else f"eval_{t.metric_for_best}"
    return {"load_best_model_at_end": True, "metric_for_best_model": metric,
            "greater_is_better": not metric.endswith(("loss", "perplexity"))}


def early_stopping_callbacks(t, has_eval: bool) -> list:
    from transformers import EarlyStoppingCallback

    return [EarlyStoppingCallback(t.early_stopping_patience)] if has_eval and t.early_stopping_patience else []


def planned_steps(recipe, n_examples: int) -> int:
    """Optimiser steps the run will take: max_steps, or epochs over the examples."""
    t = recipe.train
    if t.max_steps > 0:
        return t.max_steps
    return max(1, math.ceil(n_examples / (t.batch_size * t.grad_accum)) * math.ceil(t.epochs))


def quiet_datasets() -> None:
    import datasets

    datasets.disable_progress_bars()


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


def train_causal_lm(ctx: TrainContext, build_datasets, trainer_cls=None, **config_overrides) -> dict:
    """Load, prepare, train and save a causal LM: the body shared by the SFT and CPT stages.

    `build_datasets(recipe, tokenizer, home) -> (train, eval)` gives tokenised `datasets.Dataset`s;
    `config_overrides` replace `SFTConfig` fields (e.g. CPT's packing strategy); `trainer_cls` (a class or
    factory taking SFTTrainer's arguments) replaces `SFTTrainer`, e.g. for distillation's loss.
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
                                     *early_stopping_callbacks(recipe.train, eval_ds is not None)],
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


def prepare_for_training(ctx: TrainContext, method, model, n_train: int, emit=None):
    """The method's hooks before a trainer exists: wrap the model, check a schedule, log what trains, build the
    progress callback and (for per-group learning rates) the optimizer. Shared by every stage."""
    import torch

    from studio.stages.progress import ProgressCallback

    from transformers import set_seed

    recipe, emit = ctx.recipe, emit or ctx.emit
    set_seed(recipe.train.seed)  # new adapter weights (LoRA's A, prompt embeddings) come from the recipe's seed
    model = method.prepare(model, recipe.method)
    if hasattr(method, "check_schedule"):  # e.g. gradual unfreezing: the schedule must fit in the run
        from studio.methods._blocks import find_blocks

        method.check_schedule(recipe.method, planned_steps(recipe, n_train), len(find_blocks(model)[1]))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    from studio.methods.base import PeftMethod

    # An adapter's frozen base is never saved and never unfreezes: on a GPU it can sit in bf16.
    if torch.cuda.is_available() and recipe.train.precision == "bf16" and issubclass(method, PeftMethod):
        cast = frozen_weights_to_bf16(model)
        emit({"type": "log", "message": f"Frozen weights in bf16 ({cast:,} values), trained ones in float32"})
    emit({"type": "log", "message": f"Trainable parameters: {trainable:,} of {total:,} "
                                    f"({100 * trainable / max(total, 1):.2f}%)"})
    groups = method.optimizer_groups(model, recipe.method, recipe.train.lr)
    optimizer = make_optimizer(groups, recipe.train) if groups else None
    if recipe.train.compile:
        emit({"type": "log", "message": f"Compiling {compile_body(model)} with torch.compile (the first steps "
                                        "take longer)"})
    return model, ProgressCallback(emit, ctx.should_stop, ctx.run_dir), optimizer


def make_optimizer(groups, train_cfg):
    """AdamW over the method's parameter groups; fused into one kernel where `train.fused_optimizer` says so."""
    import torch

    fused = train_cfg.fused_optimizer == "on" or (train_cfg.fused_optimizer == "auto" and torch.cuda.is_available())
    return torch.optim.AdamW(groups, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay, fused=fused or None)


def compile_body(model) -> str:
    """torch.compile the model's transformer body in place (the part every loss path calls, the lean one included);
    returns its class name. Heads and adapters' wrappers stay eager."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = getattr(base, "base_model", None) or base  # the decoder under a *ForCausalLM head
    body.compile()
    return type(body).__name__


def frozen_weights_to_bf16(model) -> int:
    """Store the frozen float32 weights of an adapter-style run in bf16 (half the memory, no autocast copy per
    forward on a GPU); what trains stays float32. Returns how many values were cast."""
    import torch

    cast = 0
    for param in model.parameters():
        if not param.requires_grad and param.dtype == torch.float32:
            param.data = param.data.to(torch.bfloat16)
            cast += param.numel()
    return cast


def finish_training(trainer, output, callback, method, tokenizer, ctx: TrainContext) -> dict:
    """After `trainer.train()`: the stopped result, or the saved result with its speed. Shared by every stage."""
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    final_loss = losses[-1] if losses else None
    if callback.stopped:
        return {"result_dir": None, "final_loss": final_loss, "stopped": True}
    from studio.models.varlen_attention import restore_sdpa

    restore_sdpa(trainer.model)  # a saved config names transformers' own attention
    result_dir = method.save(trainer.model, tokenizer, ctx.run_dir)
    runtime = output.metrics.get("train_runtime")
    tokens = trainer.state.num_input_tokens_seen
    result = {"result_dir": str(result_dir), "final_loss": final_loss, "stopped": False,
              "steps": trainer.state.global_step, "train_runtime_s": runtime, "tokens_seen": tokens,
              "tokens_per_s": tokens / runtime if runtime else None}
    from studio.stages.generation_eval import GenerationMetrics

    generation = next((c for c in trainer.callback_handler.callbacks if isinstance(c, GenerationMetrics)), None)
    if generation is not None:  # how much of the wall time went to generating and scoring samples
        result["metrics_time_s"] = round(generation.seconds, 3)
        result["metrics_share"] = round(generation.seconds / runtime, 4) if runtime else None
    return result
