"""Recipe hardening: every number has a floor and a ceiling, duplicate YAML keys are refused with their
line, and a huge name is never echoed back whole in an error."""
from __future__ import annotations

import dataclasses
import importlib
import json
import math
import pkgutil
import types
import typing

import pytest

import studio
from studio.config import DataConfig, TrainConfig, load_recipe, parse_recipe, parse_recipe_yaml
from studio.errors import StudioError, shorten
from studio.settings import field_help
from tests.conftest import ROOT

MINIMAL = "name: t\ndata: {dataset: sample-format-tutor}\n"
SPANISH = {}
for part in sorted((ROOT / "studio/locales/es").glob("errors-*.json")):
    SPANISH.update(json.loads(part.read_text(encoding="utf-8")))


def refusal(call, *args) -> StudioError:
    """The StudioError `call(*args)` raises, checked to have a Spanish sentence its params fill."""
    with pytest.raises(StudioError) as info:
        call(*args)
    error = info.value
    assert SPANISH[f"error.{error.key}"].format(**error.params)
    return error


# --- numeric bounds -------------------------------------------------------------------------------

def test_a_huge_max_steps_is_refused_naming_the_field():
    error = refusal(parse_recipe_yaml, MINIMAL + "train: {max_steps: 99999999999999999999999}\n")
    assert error.field == "train.max_steps" and error.key == "setting.too_large"
    assert "'train.max_steps' must be at most 10000000, got 99999999999999999999999." == error.message


@pytest.mark.parametrize("section, field, value", [
    ("train", "seed", 2**32), ("train", "seed", -1), ("train", "eval_every", 10**12), ("train", "save_every", 10**12),
    ("train", "early_stopping_patience", 10**9), ("train", "max_grad_norm", 1e300), ("data", "max_length", 2**40),
    ("method", "alpha", 1e30), ("train", "lr", float("inf")),
])
def test_values_past_a_bound_are_refused(section, field, value):
    method = {"name": "lora"}
    recipe = {"name": "t", "data": {"dataset": "x.jsonl"}, "method": method}
    (method if section == "method" else recipe.setdefault(section, {})).update({field: value})
    assert refusal(parse_recipe, recipe).field == f"{section}.{field}"


def test_the_edges_of_each_range_are_accepted():
    recipe = parse_recipe({"name": "t", "data": {"dataset": "x.jsonl", "max_length": 1_048_576},
                           "train": {"seed": 2**32 - 1, "max_steps": 10_000_000}})
    assert recipe.train.seed == 2**32 - 1 and recipe.train.max_steps == 10_000_000


@pytest.mark.parametrize("text", ["train: {lr: .nan}", "method: {name: lora, dropout: .nan}",
                                  "train: {epochs: .inf}"])
def test_not_a_number_and_infinity_are_refused(text):
    error = refusal(parse_recipe_yaml, MINIMAL + text + "\n")
    assert error.key in ("setting.not_finite", "setting.not_greater", "setting.too_large")


def test_an_integer_too_long_to_read_is_refused_with_its_line():
    error = refusal(parse_recipe_yaml, MINIMAL + "train:\n  max_steps: " + "9" * 5000 + "\n")
    assert error.key == "recipe.bad_yaml_at" and error.params["line"] == 4
    assert len(error.message) < 300


def test_a_python_int_beyond_float_range_is_refused_not_crashed():
    error = refusal(parse_recipe, {"name": "t", "data": {"dataset": "x.jsonl"}, "train": {"lr": 10**400}})
    assert error.field == "train.lr"
    error = refusal(parse_recipe, {"name": "t", "data": {"dataset": "x.jsonl"}, "train": {"max_steps": 10**5000}})
    assert error.field == "train.max_steps" and len(error.message) < 300


def _studio_modules():
    """Every studio module except the UI's (widgets drawn from settings, none of its own)."""
    for info in pkgutil.walk_packages(studio.__path__, "studio."):
        if info.name.startswith("studio.ui"):
            continue
        yield importlib.import_module(info.name)


def _settings_classes() -> list[type]:
    """Dataclasses declared with `setting(...)` fields (help metadata) or none at all (a method without options),
    found by walking the package."""
    found = {}
    for module in _studio_modules():
        for obj in vars(module).values():
            if (isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == module.__name__
                    and (not dataclasses.fields(obj) or any("help" in f.metadata for f in dataclasses.fields(obj)))):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return [found[name] for name in sorted(found)]


def _numeric(tp) -> bool:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_numeric(a) for a in typing.get_args(tp) if a is not type(None))
    return tp in (int, float)


SETTINGS_CLASSES = _settings_classes()


def test_the_walk_finds_the_recipe_methods_and_stages():
    from studio.methods import METHODS

    names = {cls.__name__ for cls in SETTINGS_CLASSES}
    assert {"TrainConfig", "DataConfig", "DpoConfig", "RlConfig", "DistillConfig"} <= names
    assert all(method.settings_cls in SETTINGS_CLASSES for _, method in METHODS.items())


@pytest.mark.parametrize("cls", SETTINGS_CLASSES, ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_every_numeric_setting_has_a_floor_and_a_ceiling(cls):
    hints = typing.get_type_hints(cls)
    unbounded = []
    for f in dataclasses.fields(cls):
        if not f.init or not _numeric(hints[f.name]) or f.metadata.get("choices"):
            continue
        meta = f.metadata
        low = meta.get("min") if meta.get("min") is not None else meta.get("gt")
        if low is None or meta.get("max") is None or not math.isfinite(meta["max"]) or low > meta["max"]:
            unbounded.append(f.name)
        elif f.default is not dataclasses.MISSING and f.default is not None:
            assert low <= f.default <= meta["max"], f"{f.name}'s default is outside its own bounds"
    assert not unbounded, f"{cls.__name__}: give {unbounded} min (or gt) and max in setting(...)"


def test_bounds_are_in_the_field_metadata_the_ui_reads():
    train = field_help(TrainConfig)
    assert (train["max_steps"]["min"], train["max_steps"]["max"]) == (-1, 10_000_000)
    assert (train["seed"]["min"], train["seed"]["max"]) == (0, 2**32 - 1)
    assert field_help(DataConfig)["max_length"]["max"] == 1_048_576


# --- duplicate keys -------------------------------------------------------------------------------

def test_a_duplicate_top_level_key_is_refused_with_its_line():
    error = refusal(parse_recipe_yaml, "name: first\ndata: {dataset: x.jsonl}\nname: second\n")
    assert error.key == "recipe.duplicate_key"
    assert error.params["name"] == "name" and error.params["line"] == 3 and error.params["first_line"] == 1
    assert error.message == "The recipe repeats the key 'name' at line 3 (first at line 1); keep one of them."


def test_a_duplicate_nested_key_is_refused_with_its_line():
    error = refusal(parse_recipe_yaml, MINIMAL + "train:\n  lr: 1.0e-4\n  batch_size: 4\n  lr: 0.5\n")
    assert error.params["name"] == "lr" and error.params["line"] == 6


def test_a_duplicate_key_in_a_flow_mapping_is_refused():
    error = refusal(parse_recipe_yaml, "name: t\ndata: {dataset: a.jsonl, dataset: b.jsonl}\n")
    assert error.params["name"] == "dataset" and error.params["line"] == 2


def test_a_recipe_file_with_a_duplicate_key_names_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(MINIMAL + "method: {name: lora, r: 8}\nmethod: {name: full}\n", encoding="utf-8")
    error = refusal(load_recipe, path)
    assert error.key == "recipe.file_duplicate_key" and error.params["line"] == 4
    assert str(path) in error.message


def test_an_override_with_a_duplicate_key_is_refused(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    error = refusal(load_recipe, path, ["method={name: lora, r: 4, r: 8}"])
    assert error.key == "recipe.override_duplicate_key" and error.params["name"] == "r"
    assert refusal(load_recipe, path, ["train.lr=[1"]).key == "recipe.override_bad_yaml"


def test_merge_keys_may_still_override_what_they_merge():
    from studio.yaml_loader import strict_load

    # Anchors and merges are YAML's own way to repeat values; a key after a merge is not a duplicate.
    assert strict_load("a: &x {k: 1, j: 2}\nb: {<<: *x, k: 3}\n")["b"] == {"k": 3, "j": 2}


@pytest.mark.parametrize("preset", sorted((ROOT / "presets").glob("*.yaml")), ids=lambda p: p.name)
def test_every_preset_still_loads(preset):
    assert load_recipe(preset).name


# --- long values in messages ----------------------------------------------------------------------

def test_shorten_keeps_both_ends_and_says_the_length():
    text = "a" * 5000 + "/the-file.pdf"
    short = shorten(text)
    assert len(short) < 120 and short.startswith("aaa") and short.endswith("the-file.pdf (5013 characters)")
    assert shorten("short") == "short"


def test_a_long_value_is_shortened_in_message_and_params_alike():
    name = "x" * 10_000
    error = StudioError(f"Unknown thing {name!r}; and '{name}' again.", key="k", name=name, choices="a, b")
    assert len(error.message) < 300 and error.message.count("10000 characters") == 2
    assert len(error.params["name"]) < 120 and error.params["choices"] == "a, b"
    assert str(error) == error.message


@pytest.mark.parametrize("recipe", [
    {"name": "t", "data": {"dataset": "x.jsonl"}, "stage": "s" * 10_000},
    {"name": "t", "data": {"dataset": "x.jsonl"}, "method": {"name": "m" * 10_000}},
    {"name": "t", "data": {"dataset": "x.jsonl"}, "train": {"lr": "l" * 10_000}},
    {"name": "t", "data": {"dataset": "x.jsonl"}, "k" * 10_000: 1},
])
def test_a_10000_character_value_is_not_echoed_whole(recipe):
    error = refusal(parse_recipe, recipe)
    assert len(error.message) < 600
    assert all(len(str(v)) < 600 for v in error.params.values())


def test_a_long_recipe_path_keeps_its_file_name(tmp_path):
    path = tmp_path / ("d" * 200) / ("e" * 200) / "my-recipe.yaml"
    error = refusal(load_recipe, path)
    assert error.key == "recipe.file_missing" and "my-recipe.yaml" in error.message
    assert str(tmp_path)[:20] in error.message and "…" in error.message and len(error.message) < 400


def test_a_path_of_ordinary_length_is_shown_whole(tmp_path):
    path = tmp_path / "projects" / "fine-tuning" / "recipes" / "2024" / "customer-support-lora-r16-long-name.yaml"
    assert str(path) in refusal(load_recipe, path).message


def test_every_new_key_has_a_spanish_sentence():
    bounds = json.loads((ROOT / "studio/locales/es/errors-bounds.json").read_text(encoding="utf-8"))
    for key in ("setting.not_finite", "recipe.duplicate_key", "recipe.file_duplicate_key",
                "recipe.override_duplicate_key", "recipe.override_bad_yaml"):
        assert f"error.{key}" in bounds
