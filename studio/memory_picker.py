"""The Train tab's method picker: one row per registered method, a fits verdict, and a recommendation.

`method_table` asks every method in the registry whether it can serve the recipe's stage and
model, counts what it would train (`memory.count_parameters`) and estimates its peak memory
(`memory.estimate_training_memory`) with the recipe's batch, max length, precision and
checkpointing; when a plan does not fit, it re-estimates with one change at a time (smaller
batch, gradient checkpointing, QLoRA, shorter max length) and says which would fit.
`recommend` follows the seeds' practical advice. Rendering the rows is the UI's business.
"""
from __future__ import annotations

from typing import Any

from studio.errors import StudioError
from studio.memory import (FIT_MARGIN, GOALS, GiB, count_parameters, device_memory, estimate_training_memory, task_of,
                           load_config)

SAVED_BYTES = 4  # results are saved in the dtype they trained in: float32


def _model_config(model_spec: Any, ws: Any) -> Any:
    if hasattr(model_spec, "model_type"):
        return model_spec
    from studio.models.catalogue import resolve_model

    return load_config(resolve_model(str(model_spec), ws))


def gb_text(n: float) -> str:
    return f"{n / GiB:.1f} GB"


def _gpu_count() -> int:
    from studio.distributed import gpu_count

    return gpu_count()


def sharing_strategies() -> list[str]:
    """The strategies that split a model between GPUs, in the order the advice tries them (DeepSpeed when
    installed: ZeRO-2 keeps whole weights, so it is tried before the splits of ZeRO-3 and FSDP)."""
    import importlib.util

    deepspeed = importlib.util.find_spec("deepspeed") is not None
    return (["deepspeed-zero2"] if deepspeed else []) + ["fsdp"] + (["deepspeed-zero3"] if deepspeed else [])


def _advice(config: Any, name: str, settings: Any, plan: dict, counts: dict, budget: float,
            qlora_counts: dict | None) -> tuple[str, list[tuple[str, Any]]]:
    """Which single change would make this plan fit, found by re-estimating with it.

    Returns the sentence and the changes as (kind, value) pairs, kind one of batch_size,
    gradient_checkpointing, qlora, max_length, so a UI can word them in its own language."""
    def total(**change: Any) -> int:
        p = {**plan, **change}
        name_, settings_, counts_ = p.pop("method"), p.pop("settings"), p.pop("counts")
        return estimate_training_memory(config, name_, settings_, counts=counts_, **p)["total"]

    ways, fixes = [], []
    batch = plan["batch_size"] // 2
    while batch >= 1 and total(batch_size=batch) > budget:
        batch //= 2
    if batch >= 1:
        ways.append(f"batch size {batch}")
        fixes.append(("batch_size", batch))
    if not plan["gradient_checkpointing"] and total(gradient_checkpointing=True) <= budget:
        ways.append("gradient checkpointing")
        fixes.append(("gradient_checkpointing", True))
    if qlora_counts is not None and name != "qlora":
        from studio.methods import METHODS

        if total(method="qlora", settings=METHODS.get("qlora").settings_cls(), counts=qlora_counts) <= budget:
            ways.append("QLoRA")
            fixes.append(("qlora", True))
    gpus = _gpu_count() if plan["device_kind"] == "cuda" else 0
    if gpus > 1 and plan.get("world", 1) == 1:  # one GPU is not enough: split the run between all of them
        for strategy in sharing_strategies():
            if total(strategy=strategy, world=gpus) <= budget:
                ways.append(f"{strategy} on {gpus} GPUs")
                fixes.append(("strategy", f"{strategy} x {gpus}"))
                break
    seq = plan["seq_len"] // 2
    while seq >= 64 and total(seq_len=seq) > budget:
        seq //= 2
    if seq >= 64:
        ways.append(f"max length {seq}")
        fixes.append(("max_length", seq))
    need = f"Needs about {gb_text(total())} but {gb_text(budget)} is usable."
    if ways:
        return f"{need} It would fit with any one of: {', '.join(ways)}.", fixes
    return (f"{need} No single change (smaller batch, gradient checkpointing, QLoRA, shorter max length) is "
            "enough; combine them or pick a smaller model.", fixes)


def method_table(model_spec: Any, ws: Any, recipe_like: Any, memory: dict | None = None,
                 only: str | tuple | None = None) -> list[dict]:
    """One row per registered method (or just the `only` one, or those named in an `only` tuple) for the recipe's model, stage and settings.

    `recipe_like` needs .stage, .method (the chosen method's settings), .train (batch_size, precision,
    gradient_checkpointing) and .data.max_length; `memory` overrides `device_memory()`. Rows that do
    not fit carry `advice` (a sentence) and `fixes` ((kind, value) pairs, see `_advice`)."""
    from studio.memory_plan import plan_memory, sharing, stage_models  # imports studio.memory, which re-exports this module
    from studio.methods import METHODS

    config = _model_config(model_spec, ws)
    task = task_of(recipe_like.stage)
    memory = memory or device_memory()
    config, frozen = stage_models(recipe_like, ws, config, memory)
    if frozen:  # the frozen models' weights come out of the memory the trained one may plan with
        memory = {**memory, "free_bytes": memory["free_bytes"] - frozen / FIT_MARGIN}
    budget = memory["free_bytes"] * FIT_MARGIN
    train = recipe_like.train
    chosen = getattr(recipe_like, "method", None)
    counted: dict[str, dict | None] = {}

    def settings_for(name: str, cls: Any) -> Any:
        return chosen if getattr(chosen, "name", None) == name else cls.settings_cls()

    def counts_for(name: str, cls: Any) -> dict:
        if name not in counted:
            counted[name] = count_parameters(config, name, settings_for(name, cls), task)
        return counted[name]

    rows = []
    for name, cls in METHODS.items():
        if only is not None and name not in ((only,) if isinstance(only, str) else only):
            continue
        settings = settings_for(name, cls)
        row = {"name": name, "title": cls.title or name, "applicable": True, "reason": "", "reason_key": None,
               "reason_params": {},
               "mergeable": bool(cls.mergeable), "trainable": None, "percent": None, "estimated_total": None,
               "adapter_size_on_disk": None, "fits": None, "advice": "", "fixes": []}
        try:
            cls.check(settings, recipe_like.stage, getattr(config, "model_type", None))
            counts = counts_for(name, cls)
        except StudioError as error:
            rows.append({**row, "applicable": False, "reason": str(error), "reason_key": error.key,
                         "reason_params": error.params})
            continue
        except Exception as error:  # e.g. peft refusing an architecture it does not know
            rows.append({**row, "applicable": False,
                         "reason": f"{cls.title or name} cannot be applied to this model ({error})."})
            continue
        # The passes a run of this method would take here (studio.memory_plan): the estimate is of one pass.
        passes = plan_memory(config, recipe_like, memory, counts, name, settings)
        plan = {"method": name, "settings": settings, "counts": counts, "batch_size": passes["micro_batch_size"],
                "seq_len": recipe_like.data.max_length, "precision": train.precision,
                "gradient_checkpointing": passes["gradient_checkpointing"], "device_kind": memory["kind"],
                "task": task, "lean_logits": passes["lean_logits"], **sharing(recipe_like)}
        saved = counts["total"] if cls.result_kind == "model" else counts["trainable"]
        row.update(trainable=counts["trainable"], percent=counts["percent"],
                   estimated_total=passes["estimate_bytes"] + frozen, frozen_bytes=frozen,
                   adapter_size_on_disk=saved * SAVED_BYTES, fits=passes["fits"],
                   micro_batch_size=passes["micro_batch_size"], passes=passes["passes"],
                   auto_checkpointing=passes["auto_checkpointing"])
        if not row["fits"]:
            qlora = _qlora_counts(config, recipe_like.stage, counts_for)
            row["advice"], row["fixes"] = _advice(config, name, settings, plan, counts, budget, qlora)
        rows.append(row)
    return rows


def _qlora_counts(config: Any, stage: str, counts_for: Any) -> dict | None:
    from studio.methods import METHODS

    if "qlora" not in METHODS:
        return None
    cls = METHODS.get("qlora")
    try:
        cls.check(cls.settings_cls(), stage, getattr(config, "model_type", None))
        return counts_for("qlora", cls)
    except StudioError:
        return None


FALLBACK_ROWS = 1000  # dataset size assumed when counting the selected dataset is not cheap
MAX_COUNTED_BYTES = 50 * 1024 * 1024


def dataset_rows(spec: str, ws: Any) -> int:
    """Rows in the selected dataset when it is a local JSONL small enough to count, else FALLBACK_ROWS."""
    from studio.data.loaders import resolve_dataset

    try:
        path = resolve_dataset(spec, ws)
        if path.suffix != ".jsonl" or path.stat().st_size > MAX_COUNTED_BYTES:
            return FALLBACK_ROWS
        with open(path, encoding="utf-8") as lines:
            return sum(1 for line in lines if line.strip()) or FALLBACK_ROWS
    except (StudioError, OSError):
        return FALLBACK_ROWS


# Why a method was suggested: the reasons `recommend` returns (the UI words each one, locale key picker.why.<reason>).
REASONS = ("huge", "huge_head", "many_tasks", "much_data", "default", "quantise", "least_memory", "nothing_fits")
# The methods the suggestion weighs, in the order it prefers them when several fit (`Engine.suggest_method`
# estimates only these). Prompt tuning and feature extraction come last: they are the answer when LoRA cannot fit.
CANDIDATES = ("lora", "qlora", "full", "adapters", "ia3", "prompt_tuning", "feature_extraction")


def recommend(rows: list[dict], goal: str, dataset_rows: int, model_params: int, memory: dict) -> dict:
    """{method, reason, params, top}: a method for this goal from `method_table` rows, so the suggestion, the verdict
    and the table read the same estimate; `reason` is one of REASONS, `params` (size, peak, free, rows, title) fill
    its sentence, and `top` names up to three methods that fit, the suggested one first."""
    if goal not in GOALS:
        choices = ', '.join(GOALS)
        raise StudioError(f"Unknown goal '{goal}'; choose one of {choices}.", field="goal",
                          key="memory.unknown_goal", goal=goal, choices=choices)
    by_name = {r["name"]: r for r in rows if r.get("applicable")}
    fitting = [n for n in CANDIDATES if by_name.get(n, {}).get("fits")]
    fitting += [n for n, r in by_name.items() if r.get("fits") and n not in fitting]
    size = f"{model_params / 1e9:.1f}B" if model_params >= 1e9 else f"{model_params / 1e6:.0f}M"
    free = gb_text(memory["free_bytes"])

    def pick(method: str, reason: str) -> dict:
        row = by_name.get(method) or {}
        peak = gb_text(row["estimated_total"]) if row.get("estimated_total") else "?"
        rest = [n for n in (sorted(fitting, key=lambda n: by_name[n]["estimated_total"]) if reason == "least_memory"
                            else fitting) if n != method]
        return {"method": method, "reason": reason, "top": ([method] + rest)[:3],
                "params": {"size": size, "peak": peak, "free": free, "rows": f"{dataset_rows:,}",
                           "title": (row.get("title") or method)}}

    if not fitting:
        near = min(by_name, key=lambda n: by_name[n].get("estimated_total") or float("inf"), default="lora")
        return pick(near, "nothing_fits")
    if goal == "least_memory":
        return pick(min(fitting, key=lambda n: by_name[n]["estimated_total"]), "least_memory")
    lora = "lora" if "lora" in fitting else "qlora" if "qlora" in fitting else None
    if lora is None:
        for method, reason in (("prompt_tuning", "huge"), ("feature_extraction", "huge_head")):
            if method in fitting:
                return pick(method, reason)
        return pick(fitting[0], "least_memory")
    if goal == "many_tasks":
        return pick(lora, "many_tasks")
    if dataset_rows > 50_000 and goal == "new_task" and "full" in fitting:
        return pick("full", "much_data")
    return pick(lora, "default" if lora == "lora" else "quantise")


__all__ = ["CANDIDATES", "method_table", "recommend"]


FIX_FIELDS = {"batch_size": ("train", "batch_size"), "gradient_checkpointing": ("train", "gradient_checkpointing"),
              "max_length": ("data", "max_length")}


def apply_fix(recipe: dict, kind: str, value: Any) -> dict:
    """`recipe` (a plain dict, as the Train tab's form describes it) with one of `_advice`'s fixes made: the
    setting it names set to its value; QLoRA keeps the LoRA settings QLoRA shares; a strategy 'fsdp x 4'
    splits the run between 4 devices."""
    import copy
    from dataclasses import fields

    from studio.methods import METHODS

    out = copy.deepcopy(recipe)
    if kind in FIX_FIELDS:
        section, name = FIX_FIELDS[kind]
        out[section] = {**(out.get(section) or {}), name: value}
    elif kind == "qlora":
        shared = {f.name for f in fields(METHODS.get("qlora").settings_cls)}
        kept = {k: v for k, v in (out.get("method") or {}).items() if k in shared and k != "name"}
        out["method"] = {"name": "qlora", **kept}
    elif kind == "strategy":
        strategy, _, devices = str(value).partition(" x ")
        if not devices.strip().isdigit():
            raise StudioError(f"The fix 'strategy' needs 'STRATEGY x DEVICES', e.g. 'fsdp x 2'; got '{value}'.",
                              field="fix", key="picker.bad_strategy_fix", value=value)
        out["resources"] = {**(out.get("resources") or {}), "strategy": strategy.strip(), "devices": int(devices)}
    else:
        known = ", ".join([*FIX_FIELDS, "qlora", "strategy"])
        raise StudioError(f"'{kind}' is not a fix the picker knows; use one of {known}.", field="fix",
                          key="picker.unknown_fix", kind=kind, known=known)
    return out
