"""What every training stage shares around its trainer: the Trainer arguments (schedule, batches, precision,
checkpoints, evaluation, logging), the method's hooks before a trainer exists (`prepare_for_training`) and the
result after it (`finish_training`). Stage modules import these; none imports another stage for them."""
from __future__ import annotations

import math
from pathlib import Path

from studio.errors import StudioError
from studio.stages.base import TrainContext

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
        report_to="none", run_name=run_dir.name, disable_tqdm=True, include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0, dataloader_pin_memory=torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(), gradient_checkpointing=t.gradient_checkpointing,
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        **best_checkpoint_args(t, has_eval), **sharding_args(recipe),
    )


def sharded(recipe) -> bool:
    """Whether several devices split this run's model (FSDP or DeepSpeed ZeRO) rather than each hold it whole."""
    res = getattr(recipe, "resources", None)
    return res is not None and res.world_size > 1 and res.strategy != "ddp"


def sharding_args(recipe) -> dict:
    """The Trainer arguments of `resources.strategy` when it splits the model between devices (DDP needs none: the
    Trainer sets it up itself under torchrun). Accelerate applies them; FSDP is version 2, each layer its own shard.
    Not yet run on GPUs here (see the README)."""
    if not sharded(recipe):
        return {}
    strategy = recipe.resources.strategy
    if strategy == "fsdp":
        return {"fsdp": True, "fsdp_config": {"version": 2, "reshard_after_forward": True}}
    stage = 3 if strategy == "deepspeed-zero3" else 2
    return {"deepspeed": {"zero_optimization": {"stage": stage, "overlap_comm": True, "contiguous_gradients": True},
                          "bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"}, "gradient_clipping": "auto",
                          "train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto",
                          "gradient_accumulation_steps": "auto"}}


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


def best_checkpoint_args(t, has_eval: bool) -> dict:
    """Trainer arguments for keep-best and early stopping (both need evaluations to compare)."""
    if not has_eval or not (t.keep_best or t.early_stopping_patience):
        return {}
    metric = t.metric_for_best if t.metric_for_best.startswith("eval_") else f"eval_{t.metric_for_best}"
    return {"load_best_model_at_end": True, "metric_for_best_model": metric,
            "greater_is_better": not metric.endswith(("loss", "perplexity"))}


def run_callbacks(ctx: TrainContext, has_eval: bool) -> list:
    """The callbacks every stage adds after its own: early stopping when asked for, and the experiment tracker of
    `train.report_to` (its destination goes to the run's log)."""
    from transformers import EarlyStoppingCallback

    from studio import tracking

    t = ctx.recipe.train
    stopping = [EarlyStoppingCallback(t.early_stopping_patience)] if has_eval and t.early_stopping_patience else []
    trackers, where = tracking.callbacks(t.report_to, ctx.run_dir, ctx.home)
    if where:
        ctx.emit({"type": "log", "message": where})
    return stopping + trackers


def planned_steps(recipe, n_examples: int) -> int:
    """Optimiser steps the run will take: max_steps, or epochs over the examples."""
    t = recipe.train
    if t.max_steps > 0:
        return t.max_steps
    return max(1, math.ceil(n_examples / (t.batch_size * t.grad_accum)) * math.ceil(t.epochs))


def quiet_datasets() -> None:
    import datasets

    datasets.disable_progress_bars()


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
    if groups and sharded(recipe):  # the optimizer must see the split weights: the Trainer builds it after the split
        emit({"type": "log", "message": f"{recipe.resources.strategy} splits the model: the Trainer's AdamW trains it "
                                        "with one learning rate for every trained weight"})
        groups = None
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
    if not trainer.is_world_process_zero():  # one of several processes: rank 0 saves the one result
        return {"result_dir": None, "final_loss": final_loss, "stopped": False}
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
