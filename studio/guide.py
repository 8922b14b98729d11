"""The guided first path: a goal and a dataset become a ready recipe, with two sentences saying why.

Each goal has a preset in `presets/` (a recipe that runs as-is on the embedded models, plus a `guide:` block with
its goal, title and why in English and Spanish). `plan_guided` takes the goal's preset, puts the chosen dataset in
it, estimates the methods that could train it on this machine (`memory_picker.method_table`, the same estimate the
method picker's verdict and table show) and keeps the preset's method when it fits, else the one `recommend` picks.
The result names the three methods that fit this goal best, the chosen one first, so a simple form can show them
before the rest. Everything it returns is a plain recipe dict: the full form shows and edits it as any other.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.errors import StudioError
from studio.yaml_loader import strict_load

PRESETS_DIR = Path(__file__).resolve().parents[1] / "presets"
GOALS = ("format", "extract", "classify", "summarise", "prefer", "documents", "smaller")
# The method picker's goal (`studio.memory.GOALS`) each guided goal asks `recommend` for.
PICKER_GOAL = {"format": "style", "extract": "style", "summarise": "style", "prefer": "style",
               "classify": "new_task", "documents": "new_task", "smaller": "new_task"}
LANGS = ("en", "es")


@dataclass(frozen=True)
class Preset:
    name: str  # the file's stem
    path: Path
    goal: str
    title: dict  # lang -> words
    why: dict  # lang -> one sentence: why this stage and data for the goal
    recipe: dict  # the recipe as a plain dict, without the guide block
    methods: tuple = ()  # the only methods the goal can use (distillation's smaller student: full); () for any


def load_preset(path: Path) -> Preset:
    """A preset file: its recipe and its `guide:` block, checked (a goal of GOALS, title and why in every language)."""
    data = strict_load(path.read_text(encoding="utf-8"))
    guide = data.pop("guide", None) if isinstance(data, dict) else None
    if not isinstance(guide, dict) or guide.get("goal") not in GOALS:
        raise StudioError(f"Preset '{path.name}' needs a 'guide:' block whose goal is one of {', '.join(GOALS)}.",
                          field="guide.goal", key="guide.preset_goal", file=path.name, goals=", ".join(GOALS))
    for part in ("title", "why"):
        if not all(isinstance(guide.get(part), dict) and guide[part].get(lang) for lang in LANGS):
            raise StudioError(f"Preset '{path.name}' needs guide.{part} in {' and '.join(LANGS)}.",
                              field=f"guide.{part}", key="guide.preset_words", file=path.name, part=part)
    methods = guide.get("methods", [])
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
        raise StudioError(f"Preset '{path.name}': guide.methods is a list of method names.", field="guide.methods",
                          key="guide.preset_methods", file=path.name)
    return Preset(path.stem, path, guide["goal"], guide["title"], guide["why"], data, tuple(methods))


def presets(folder: Path = PRESETS_DIR) -> dict[str, Preset]:
    """Goal -> its preset, in GOALS order."""
    found = {}
    for path in sorted(folder.glob("*.yaml")):
        preset = load_preset(path)
        found[preset.goal] = preset
    return {goal: found[goal] for goal in GOALS if goal in found}


def preset_for(goal: str) -> Preset:
    found = presets()
    if goal not in found:
        raise StudioError(f"Unknown goal '{goal}'; choose one of {', '.join(found)}.", field="goal",
                          key="guide.unknown_goal", goal=goal, choices=", ".join(found))
    return found[goal]


def plan_guided(ws: Any, goal: str, dataset: str | None = None, memory: dict | None = None,
                model: str | None = None) -> dict:
    """The guided recipe for `goal` on `dataset` (the preset's sample when None), `model` (the preset's when None)
    and this machine.

    Returns {goal, preset, title, recipe (plain dict), method, top (up to 3 method names), switched (the preset's
    method when it did not fit and another was picked, else None), peak, free, passes, micro_batch_size, why (the
    two sentences in English; a UI words them from `why_key`, `why_params` and the preset's own `why`)}."""
    from studio.config import parse_recipe
    from studio.memory import device_memory, load_config, model_shape, task_of
    from studio.memory_picker import CANDIDATES, gb_text, dataset_rows, method_table, recommend
    from studio.models.catalogue import resolve_model

    preset = preset_for(goal)
    data = copy.deepcopy(preset.recipe)
    if dataset:
        from studio.data.examples import is_studio_dataset
        from studio.data.loaders import resolve_dataset

        if not is_studio_dataset(ws, dataset):
            resolve_dataset(dataset, ws)  # a sentence naming data.dataset when it is neither a sample nor a file
        data.setdefault("data", {})["dataset"] = dataset
    if model:
        data["model"] = model
    recipe = parse_recipe(data)
    memory = memory or device_memory()
    wanted = recipe.method.name
    config = load_config(resolve_model(recipe.model, ws))  # read once: the table takes the config itself
    rows = method_table(config, ws, recipe, memory=memory,
                        only=tuple(dict.fromkeys((wanted, *(preset.methods or CANDIDATES)))))
    pick = recommend(rows, PICKER_GOAL[goal], dataset_rows(recipe.data.dataset, ws),
                     model_shape(config, task_of(recipe.stage))["params"], memory)
    by_name = {r["name"]: r for r in rows}
    keep = by_name.get(wanted, {}).get("fits")
    method = wanted if keep else pick["method"]
    if method != wanted:
        data["method"] = {"name": method}
    row = by_name.get(method) or {}
    peak = gb_text(row["estimated_total"]) if row.get("estimated_total") else "?"
    params = {"method": row.get("title") or method, "wanted": by_name.get(wanted, {}).get("title") or wanted,
              "peak": peak, "free": gb_text(memory["free_bytes"])}
    if keep:
        key, second = "guide.fits", f"{params['method']} needs about {peak} of the {params['free']} free here."
    elif row.get("fits"):
        key = "guide.switched"
        second = (f"{params['wanted']} would not fit in the {params['free']} free here, so the studio picked "
                  f"{params['method']}: about {peak}.")
    else:
        key = "guide.no_fit"
        second = (f"No method fits in the {params['free']} free here with these settings ({params['method']} needs "
                  f"about {peak}); lower the batch size or max length in All settings.")
    top = [method] + [m for m in pick["top"] if m != method]
    return {"goal": goal, "preset": preset.name, "title": preset.title, "recipe": data, "method": method,
            "top": top[:3], "switched": None if keep else wanted, "peak": peak, "free": params["free"],
            "passes": row.get("passes", 1), "micro_batch_size": row.get("micro_batch_size"),
            "why": f"{preset.why['en']} {second}", "why_key": key, "why_params": params, "preset_why": preset.why}


__all__ = ["GOALS", "PRESETS_DIR", "Preset", "load_preset", "plan_guided", "preset_for", "presets"]
