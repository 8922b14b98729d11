"""Merge the LoRA adapters of several finished runs on one base into a new run (a "model soup" of tasks).

peft's `add_weighted_adapter` does the merging: 'linear' adds the weighted adapters (same rank), 'cat' stacks
them (exact; the rank is the sum), 'ties' and 'dare_ties' / 'dare_linear' first keep the largest share
(`density`) of each adapter's change and resolve sign conflicts (TIES) or drop and rescale at random (DARE),
which keeps each task better when tasks pull weights apart. Measured (`bench/merge.py`, two SmolLM2 LoRA runs,
weights 1 and 1): 'cat' kept 100% of both tasks' ROUGE-L, 'ties' 81% of one and 99% of the other, so 'cat' is
the default. The result is a run like any other (method lora, an `adapter/` folder, a recipe and a summary naming
its sources), so the playground, evaluation, serving and export take it as they take a trained one. `merge.json`
in its folder says what went in.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

from studio.errors import StudioError

COMBINATIONS = ("cat", "ties", "dare_ties", "dare_linear", "linear")
DEFAULT_COMBINATION = "cat"  # measured best at keeping both tasks (module docstring)
DENSITY_COMBINATIONS = ("ties", "dare_ties", "dare_linear")
SAME_RANK = ("linear", "ties", "dare_ties", "dare_linear")
ADAPTER_METHODS = ("lora", "qlora")
FIELD = "runs"


def _sources(ws, run_ids: list[str]) -> list[dict]:
    from studio.models.refs import parse

    ids = [parse(r, ws).run_id or r for r in dict.fromkeys(r.strip() for r in run_ids if r and r.strip())]
    if len(ids) < 2:
        raise StudioError("Pick at least two finished LoRA runs to merge.", field=FIELD, key="merge.too_few")
    runs = []
    for run_id in ids:
        run = ws.get_run(run_id)
        if run is None:
            raise StudioError(f"Run '{run_id}' does not exist; pick runs from `studio runs`.", field=FIELD,
                              key="merge.no_run", run_id=run_id)
        if run["status"] != "completed" or not run.get("result_dir") or not Path(run["result_dir"]).is_dir():
            raise StudioError(f"Run '{run['name']}' is {run['status']} without a saved result; only completed runs "
                              "merge.", field=FIELD, key="merge.not_completed", name=run["name"],
                              status=run["status"])
        if run["method"] not in ADAPTER_METHODS:
            raise StudioError(f"Run '{run['name']}' trained with {run['method']}; only LoRA adapters (lora, qlora) "
                              "merge with each other.", field=FIELD, key="merge.not_lora", name=run["name"],
                              method=run["method"])
        runs.append(run)
    bases = {r["model"] for r in runs}
    if len(bases) > 1:
        raise StudioError(f"The runs start from different base models ({', '.join(sorted(bases))}); adapters merge "
                          "only on the base they were trained on.", field=FIELD, key="merge.bases",
                          bases=", ".join(sorted(bases)))
    return runs


def _check_settings(runs: list[dict], combination: str, weights: list[float], density: float) -> None:
    if combination not in COMBINATIONS:
        raise StudioError(f"Merge '{combination}' does not exist; choose {', '.join(COMBINATIONS)}.",
                          field="combination", key="merge.bad_combination", combination=combination,
                          choices=", ".join(COMBINATIONS))
    if len(weights) != len(runs):
        raise StudioError(f"Give one weight per run: {len(runs)} runs, {len(weights)} weights.", field="weights",
                          key="merge.weights_count", runs=len(runs), weights=len(weights))
    if combination in DENSITY_COMBINATIONS and not 0 < density <= 1:
        raise StudioError(f"'density' is {density}; give the share of each adapter's change to keep, above 0 and at "
                          "most 1 (e.g. 0.5).", field="density", key="merge.density", density=density)
    if combination in SAME_RANK:
        ranks = [json.loads((Path(r["result_dir"]) / "adapter_config.json").read_text())["r"] for r in runs]
        if len(set(ranks)) > 1:
            listed = ", ".join(f"{r['name']} ({r['id'][-4:]}): r={v}" for r, v in zip(runs, ranks))
            raise StudioError(f"'{combination}' needs adapters of one rank and these differ ({listed}); use 'cat', "
                              "which stacks them.", field="combination", key="merge.ranks", ranks=listed,
                              combination=combination)


def merge_runs(ws, run_ids: list[str], combination: str = DEFAULT_COMBINATION, weights: list[float] | None = None,
               density: float = 0.5, name: str | None = None, progress=lambda message: None) -> str:
    """Merge the runs' adapters into a new completed run; returns its id."""
    from peft import PeftModel

    from studio.models.loading import load_causal_lm

    runs = _sources(ws, run_ids)
    weights = [float(w) for w in weights] if weights else [1.0 / len(runs)] * len(runs)
    _check_settings(runs, combination, weights, density)
    name = (name or "").strip() or "merge-" + "-".join(r["name"] for r in runs)[:60]
    progress(f"loading {runs[0]['model']}")
    base, tokenizer = load_causal_lm(runs[0]["model"], ws, precision="fp32", for_training=False)
    names = [f"task{i}" for i in range(len(runs))]
    model = PeftModel.from_pretrained(base, runs[0]["result_dir"], adapter_name=names[0])
    for adapter, run in zip(names[1:], runs[1:]):
        progress(f"loading {run['name']}")
        model.load_adapter(run["result_dir"], adapter_name=adapter)
    progress(f"merging ({combination})")
    extra = {"density": density} if combination in DENSITY_COMBINATIONS else {}
    model.add_weighted_adapter(names, weights, "merged", combination_type=combination, **extra)
    model.set_adapter("merged")
    for adapter in names:
        model.delete_adapter(adapter)

    run_id = ws.new_run_id(name)
    run_dir = ws.runs_dir / run_id
    tmp = ws.runs_dir / f".{run_id}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp / "saved", selected_adapters=["merged"])
    saved = tmp / "saved" / "merged" if (tmp / "saved" / "merged").is_dir() else tmp / "saved"
    saved.rename(tmp / "adapter")
    shutil.rmtree(tmp / "saved", ignore_errors=True)
    tokenizer.save_pretrained(tmp / "adapter")
    (tmp / "recipe.yaml").write_text(_recipe_yaml(runs[0], name), encoding="utf-8")
    sources = [{"run_id": r["id"], "name": r["name"], "dataset": r["dataset"], "weight": w}
               for r, w in zip(runs, weights)]
    (tmp / "merge.json").write_text(json.dumps({"combination": combination, "density": extra.get("density"),
                                                "sources": sources}, indent=2), encoding="utf-8")
    (tmp / "summary.json").write_text(json.dumps({"result_dir": str(run_dir / "adapter"), "merged_from": sources},
                                                 indent=2), encoding="utf-8")
    tmp.rename(run_dir)
    now = time.time()
    ws.insert_run({"id": run_id, "name": name, "model": runs[0]["model"], "stage": runs[0]["stage"],
                   "method": "lora", "dataset": " + ".join(r["dataset"] for r in runs), "status": "completed",
                   "run_dir": str(run_dir), "created_at": now, "finished_at": now,
                   "result_dir": str(run_dir / "adapter")})
    return run_id


def _recipe_yaml(run: dict, name: str) -> str:
    """The first source's recipe under the new name (what the Runs tab shows and a variation starts from)."""
    from studio.config import load_recipe, recipe_to_yaml

    recipe = load_recipe(Path(run["run_dir"]) / "recipe.yaml")
    return recipe_to_yaml(dataclasses.replace(recipe, name=name))


def merge_scores(ws, merged_id: str, split: str = "test", limit: int | None = None, emit=None,
                 max_new_tokens: int = 256) -> list[dict]:
    """Each source task's score before and after the merge: the source run and the merged run evaluated on the
    source's dataset (ROUGE-L, the Evaluate tab's measure). One row per task: {task, run, before, after, kept}."""
    from studio.evaluation import evaluate
    from studio.models.refs import run_spec

    run = ws.get_run(merged_id)
    info_path = Path(run["run_dir"]) / "merge.json" if run else None
    if info_path is None or not info_path.is_file():
        raise StudioError(f"Run '{merged_id}' is not a merge of runs; pick one that `studio runs merge` made.",
                          field=FIELD, key="merge.not_a_merge", run_id=merged_id)
    rows = []
    for source in json.loads(info_path.read_text(encoding="utf-8"))["sources"]:
        result = evaluate(ws, [run_spec(source["run_id"]), run_spec(merged_id)], source["dataset"], split=split,
                          metrics="rouge", limit=limit, emit=emit, max_new_tokens=max_new_tokens)
        before, after = (r.get("rougeL") for r in result["rows"][:2])
        rows.append({"task": source["dataset"], "run": source["name"], "before": before, "after": after,
                     "kept": after / before if before else None, "n": result["n"]})
    return rows
