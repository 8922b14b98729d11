"""Preparing a run and executing it: the bridge between a recipe and a stage.

`prepare_run` validates a recipe against the machine (the model can be found, the data loads,
the precision exists here) before anything is written, then creates the run directory with the
resolved `recipe.yaml` and inserts the run row as `queued`. `execute` is what a job's worker
process calls: it reads the run's recipe back and hands it to the registered stage. Queues,
processes and SQLite updates during training belong to `studio.jobs`.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Callable

from studio.config import Recipe, load_recipe, recipe_to_yaml
from studio.workspace import Workspace

log = logging.getLogger(__name__)


def resolve_recipe(recipe: Recipe, ws: Workspace) -> Recipe:
    """Check the recipe against this machine and fill in what 'auto' means here."""
    from studio.distributed import check_resources
    from studio.methods import METHODS
    from studio.models.catalogue import check_model
    from studio.models.loading import resolve_precision
    from studio.stages import STAGES
    from studio import tracking

    check_model(recipe.model, ws)
    check_resources(recipe)
    tracking.check(recipe.train.report_to)
    method = METHODS.get(recipe.method.name, field="method.name")
    config = model_config(recipe, ws)
    method.check(recipe.method, recipe.stage, config.get("model_type"))
    if hasattr(method, "check_schedule") and recipe.train.max_steps > 0 and config.get("num_hidden_layers"):
        method.check_schedule(recipe.method, recipe.train.max_steps, config["num_hidden_layers"])
    STAGES.get(recipe.stage, field="stage").check_data(recipe, ws)
    precision = resolve_precision(recipe.train.precision)
    data = recipe.data
    if Path(data.dataset).expanduser().is_file():
        # A file path is made absolute so the run does not depend on the directory it was started from.
        data = dataclasses.replace(data, dataset=str(Path(data.dataset).expanduser().resolve()))
    return dataclasses.replace(recipe, data=data, train=dataclasses.replace(recipe.train, precision=precision))


def model_config(recipe: Recipe, ws: Workspace) -> dict:
    """The model's config.json as a dict when it is on disk (converted aliases, local folders), else what we know."""
    from studio.models.catalogue import EMBEDDED

    folder = ws.models_dir / recipe.model if recipe.model in EMBEDDED else Path(recipe.model).expanduser()
    config = folder / "config.json"
    if config.is_file():
        return json.loads(config.read_text(encoding="utf-8"))
    if recipe.model in EMBEDDED:
        return {"model_type": "bert" if "minilm" in recipe.model else "llama"}
    return {}


def prepare_run(ws: Workspace, recipe: Recipe) -> str:
    """Validate, then create the run directory and its queued row; returns the run id. The run's log starts with
    the precision chosen and why."""
    from studio.jobs.runfiles import append_log_line
    from studio.models.loading import precision_reason

    resolved = resolve_recipe(recipe, ws)
    run_id = ws.new_run_id(recipe.name)
    run_dir = ws.runs_dir / run_id
    tmp_dir = ws.runs_dir / f".{run_id}.tmp"
    tmp_dir.mkdir(parents=True)
    try:
        (tmp_dir / "checkpoints").mkdir()
        (tmp_dir / "recipe.yaml").write_text(recipe_to_yaml(resolved), encoding="utf-8")
        tmp_dir.rename(run_dir)
        append_log_line(run_dir, precision_reason(recipe.train.precision))
        ws.insert_run({"id": run_id, "name": recipe.name, "model": recipe.model, "stage": recipe.stage,
                       "method": recipe.method.name, "dataset": recipe.data.dataset, "status": "queued",
                       "run_dir": str(run_dir), "created_at": time.time()})
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return run_id


def execute(run_dir: Path, home: Path, resume_from: Path | None, emit: Callable[[dict], None],
            should_stop: Callable[[], bool]) -> dict:
    """Worker entry: run the stage named by the run's recipe, in this process or, when its `resources` ask for
    several devices or machines, in torchrun's processes (`studio.distributed`). Returns the stage's result."""
    from studio.distributed import is_distributed, launch

    recipe = load_recipe(Path(run_dir) / "recipe.yaml")
    if is_distributed(recipe):
        return launch(recipe, Path(run_dir), Path(home), Path(resume_from) if resume_from else None, emit,
                      should_stop)
    return run_stage(run_dir, home, resume_from, emit, should_stop)


def run_stage(run_dir: Path, home: Path, resume_from: Path | None, emit: Callable[[dict], None],
              should_stop: Callable[[], bool]) -> dict:
    """Run the stage named by the run's recipe in this process (one of several under torchrun)."""
    from studio.hub_kernels import ensure_decided
    from studio.stages import STAGES, TrainContext

    kernels = ensure_decided()  # before any model is built: an offline GPU must not try to fetch kernels
    run_dir = Path(run_dir)
    recipe = load_recipe(run_dir / "recipe.yaml")
    stage = STAGES.get(recipe.stage, field="stage")
    recipe, plan = with_memory_plan(recipe, Path(home), emit)
    ctx = TrainContext(recipe=recipe, run_dir=run_dir, home=Path(home), emit=emit, should_stop=should_stop,
                       resume_from=Path(resume_from) if resume_from else None)
    result = stage.run(ctx)
    result["hub_kernels"] = kernels
    if plan is not None:
        result["memory_plan"] = plan
    result["peak_rss_mb"] = peak_rss_mb()
    gpu_peak = peak_gpu_mb()
    if gpu_peak is not None:
        result["peak_gpu_mb"] = gpu_peak
    if is_first_rank():
        (run_dir / "summary.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


def is_first_rank() -> bool:
    """True in a run's only process, and in rank 0 of several (the one that writes results)."""
    import os

    return os.environ.get("RANK", "0") == "0"


def with_memory_plan(recipe: Recipe, home: Path, emit: Callable[[dict], None]) -> tuple[Recipe, dict | None]:
    """The recipe with its micro-batch and checkpointing chosen for this machine (`studio.memory_plan`), and the plan.

    A model whose config cannot be read here (a hub id not yet downloaded) trains as the recipe says."""
    from studio.errors import StudioError
    from studio.memory_plan import describe_plan, plan_for_run, planned_recipe

    try:
        plan = plan_for_run(recipe, Workspace.open(home))
    except (StudioError, OSError, ValueError) as error:
        log.info("No memory plan (%s); one pass per batch", error)
        return recipe, None
    emit({"type": "log", "message": describe_plan(plan, recipe.train.batch_size)})
    return planned_recipe(recipe, plan), plan


def peak_gpu_mb() -> float | None:
    """Peak GPU memory PyTorch reserved in this process, in MB; None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.max_memory_reserved() / 2**20


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports ru_maxrss in KB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
