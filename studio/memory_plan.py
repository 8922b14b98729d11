"""How a run splits each step into passes so it fits the machine and runs at its best speed.

A step learns from `train.batch_size` rows (times `grad_accum`). The rows of one forward and
backward pass, the micro-batch, can be fewer: the trainer adds the gradients of the passes and
normalises the loss over every counted token of the step, so the learning is the same (to float
rounding) and the peak memory follows the micro-batch, not the batch.

`plan_memory` chooses, for the stages whose memory the estimator models (`PLANNED_STAGES`):
- the micro-batch: `train.micro_batch_size` when a recipe sets it; else on a CPU the largest
  divisor of the batch whose pass holds at most `CPU_PASS_TOKENS` tokens (measured on 2 cores with
  SmolLM2-135M, LoRA, 8 x 320: passes of 2 rows ran at 138 tokens/s and peaked at 3.2 GB, one pass
  of 8 at 106 tokens/s and 9.3 GB: small matrices stay in cache), on a GPU the whole batch; then
  the largest one not above that whose estimate fits the free memory;
- activation checkpointing, switched on only when a pass of one row does not fit without it.
Other stages keep one pass per batch unless the recipe sets the micro-batch. The plan is logged
and saved in the run's summary beside the measured peak, and the Train tab's verdict uses it.
"""
from __future__ import annotations

from typing import Any

from studio.memory import FIT_MARGIN, count_parameters, estimate_training_memory, task_of

CPU_PASS_TOKENS = 640
PLANNED_STAGES = ("sft", "cpt")
LEAN_LOSS_STAGES = ("sft", "cpt")  # their training loss never holds the full logits (studio.stages.lean_loss)


def divisors(n: int) -> list[int]:
    """Divisors of n, largest first."""
    return [d for d in range(n, 0, -1) if n % d == 0]


def sharing(recipe: Any) -> dict:
    """The recipe's devices as the estimate needs them: strategy, devices in all, processes on this machine."""
    res = getattr(recipe, "resources", None)
    if res is None:
        return {}
    return {"strategy": res.strategy, "world": res.world_size, "processes": res.per_node}


def plan_memory(config: Any, recipe: Any, memory: dict, counts: dict | None = None, method: str | None = None,
                settings: Any = None) -> dict:
    """{micro_batch_size, passes, gradient_checkpointing, auto_checkpointing, estimate_bytes, budget_bytes, fits}.

    `recipe` needs .stage, .method, .train and .data.max_length; `memory` is `device_memory()`'s dict; `method`
    and `settings` plan another method than the recipe's (the Train tab's table has a row per method)."""
    t, stage, kind = recipe.train, recipe.stage, memory["kind"]
    method = method or recipe.method.name
    settings = settings if settings is not None else recipe.method
    task = task_of(stage)
    counts = counts or count_parameters(config, method, settings, task)
    budget = memory["free_bytes"] * FIT_MARGIN
    lean = stage in LEAN_LOSS_STAGES and not getattr(t, "token_metrics", False)

    def estimate(micro: int, checkpointing: bool) -> int:
        return estimate_training_memory(config, method, settings, micro, recipe.data.max_length, t.precision,
                                        checkpointing, kind, counts, task, lean_logits=lean, **sharing(recipe))["total"]

    checkpointing, auto_checkpointing = bool(t.gradient_checkpointing), False
    if getattr(t, "micro_batch_size", 0):
        micro = t.micro_batch_size
    elif stage not in PLANNED_STAGES:
        micro = t.batch_size
    else:
        fastest = max(1, CPU_PASS_TOKENS // max(recipe.data.max_length, 1)) if kind == "cpu" else t.batch_size
        candidates = [d for d in divisors(t.batch_size) if d <= fastest]
        micro = next((d for d in candidates if estimate(d, checkpointing) <= budget), 1)
        if not checkpointing and estimate(1, False) > budget:
            checkpointing = auto_checkpointing = True
            micro = next((d for d in candidates if estimate(d, True) <= budget), 1)
    total = estimate(micro, checkpointing)
    return {"micro_batch_size": micro, "passes": t.batch_size // micro, "gradient_checkpointing": checkpointing,
            "auto_checkpointing": auto_checkpointing, "estimate_bytes": total, "budget_bytes": int(budget),
            "fits": total <= budget, "device_kind": kind, "lean_logits": lean}


def plan_for_run(recipe: Any, ws: Any) -> dict:
    """The plan for a run about to start on this machine (the model's config read from its folder or cache), with
    the memory the stage's frozen models take (a teacher) set aside."""
    from studio.memory import device_memory, load_config
    from studio.models.catalogue import resolve_model

    memory = device_memory()
    config, frozen = stage_models(recipe, ws, load_config(resolve_model(recipe.model, ws)), memory)
    if frozen:
        memory = {**memory, "free_bytes": memory["free_bytes"] - frozen / FIT_MARGIN}
    plan = plan_memory(config, recipe, memory)
    # Said whole: the frozen models' weights are part of the run's peak and of what it may use.
    return {**plan, "estimate_bytes": plan["estimate_bytes"] + frozen, "budget_bytes": plan["budget_bytes"] + frozen}


def stage_models(recipe_like: Any, ws: Any, config: Any, memory: dict) -> tuple[Any, int]:
    """(the config of the model the stage trains, bytes of the models it holds frozen): `Stage.memory_models`, with
    the frozen weights in the training precision (float32 unless bf16/fp16)."""
    from studio.stages.base import STAGES

    stage = dict(STAGES.items()).get(recipe_like.stage)
    if stage is None or not hasattr(recipe_like, "section"):
        return config, 0
    config, params = stage.memory_models(recipe_like, ws, config)
    precision = recipe_like.train.precision
    if precision == "auto":
        from studio.models.loading import resolve_precision

        precision = resolve_precision("auto", memory["kind"])
    return config, params * (2 if precision in ("bf16", "fp16") else 4)




def planned_recipe(recipe: Any, plan: dict) -> Any:
    """The recipe with the plan's micro-batch and checkpointing written into `train`."""
    import dataclasses

    train = dataclasses.replace(recipe.train, micro_batch_size=plan["micro_batch_size"],
                                gradient_checkpointing=plan["gradient_checkpointing"])
    return dataclasses.replace(recipe, train=train)


def describe_plan(plan: dict, batch_size: int) -> str:
    """One train.log line, e.g. 'Memory plan: 8 rows a step in 4 passes of 2; about 2.9 GB peak of 20.1 GB usable'."""
    gb = 1024 ** 3
    how = (f"in {plan['passes']} passes of {plan['micro_batch_size']}" if plan["passes"] > 1 else "in one pass")
    extra = ", activation checkpointing on (a pass does not fit without it)" if plan["auto_checkpointing"] else ""
    return (f"Memory plan: {batch_size} rows a step {how}{extra}; about {plan['estimate_bytes'] / gb:.1f} GB peak "
            f"of {plan['budget_bytes'] / gb:.1f} GB usable")
