"""Presets for real tasks (`presets/*.yaml`) and the guided path over them (`studio.guide`); running each preset on
the embedded models is `tests/engine/test_presets_run.py`."""
from __future__ import annotations

import importlib.util

import pytest

from studio.config import load_recipe
from studio.data import SAMPLES
from studio.errors import StudioError
from studio.guide import GOALS, PRESETS_DIR, load_preset, plan_guided, presets
from studio.memory import GiB

ROOT = PRESETS_DIR.parent
ROOMY = {"kind": "cpu", "total_bytes": 24 * GiB, "free_bytes": 20 * GiB}


def test_every_goal_has_one_preset_that_parses_and_speaks_both_languages():
    found = presets()
    assert list(found) == list(GOALS)
    files = sorted(PRESETS_DIR.glob("*.yaml"))
    assert len(files) == len(GOALS)  # no preset without a goal, no goal with two
    for goal, preset in found.items():
        recipe = load_recipe(preset.path)  # `studio train presets/x.yaml` reads it as it is
        assert recipe.data.dataset in SAMPLES and SAMPLES[recipe.data.dataset].is_file(), goal
        assert recipe.model in ("smollm2-135m-instruct", "all-minilm-l6-v2"), goal  # the embedded models
        for lang in ("en", "es"):
            assert preset.title[lang] and preset.why[lang].endswith("."), (goal, lang)
        assert preset.title["en"] != preset.title["es"]


def test_the_committed_samples_are_what_the_generator_writes():
    spec = importlib.util.spec_from_file_location("make_samples", ROOT / "assets" / "make_samples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, text in module.outputs().items():
        assert (ROOT / "assets" / name).read_text(encoding="utf-8") == text, name


def test_a_preset_without_its_guide_block_is_refused_by_name(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: smollm2-135m-instruct\nguide: {goal: fly}\n", encoding="utf-8")
    with pytest.raises(StudioError) as error:
        load_preset(bad)
    assert error.value.field == "guide.goal" and "bad.yaml" in str(error.value)
    bad.write_text("name: x\nguide: {goal: format, title: {en: A}, why: {en: B., es: C.}}\n", encoding="utf-8")
    with pytest.raises(StudioError, match="guide.title in en and es"):
        load_preset(bad)


def test_the_guide_keeps_the_presets_method_when_it_fits_and_says_why(workspace, tiny_llama_dir, tmp_path):
    plan = plan_guided(workspace, "extract", memory=ROOMY, model=str(tiny_llama_dir))
    assert plan["method"] == "lora" and plan["switched"] is None and plan["top"][0] == "lora" and len(plan["top"]) == 3
    assert plan["recipe"]["data"]["dataset"] == "sample-extract-json" and plan["recipe"]["stage"] == "sft"
    assert plan["why"].startswith("Extraction is a format to learn") and "of the 20.0 GB free here." in plan["why"]
    assert plan["why_key"] == "guide.fits" and plan["why_params"]["peak"] == plan["peak"]
    faq = tmp_path / "faq.jsonl"
    faq.write_text('{"instruction": "q", "output": "a"}\n', encoding="utf-8")
    mine = plan_guided(workspace, "format", dataset=str(faq), memory=ROOMY, model=str(tiny_llama_dir))
    assert mine["recipe"]["data"]["dataset"] == str(faq)


def test_the_guide_picks_another_method_when_the_presets_does_not_fit(workspace, tiny_llama_dir):
    from studio.memory_picker import method_table

    recipe = load_recipe(presets()["format"].path)
    recipe.model = str(tiny_llama_dir)
    smallest = {**ROOMY, "free_bytes": 1}  # each method planned at its smallest (one row per pass, checkpointing)
    peaks = {r["name"]: r["estimated_total"] for r in
             method_table(recipe.model, workspace, recipe, memory=smallest, only=("lora", "ia3"))}
    assert peaks["ia3"] < peaks["lora"]
    tight = {**ROOMY, "free_bytes": int((peaks["ia3"] + peaks["lora"]) / 2 / 0.9)}  # fits ia3, not LoRA
    plan = plan_guided(workspace, "format", memory=tight, model=str(tiny_llama_dir))
    assert plan["switched"] == "lora" and plan["method"] != "lora" and plan["why_key"] == "guide.switched"
    assert plan["recipe"]["method"] == {"name": plan["method"]}
    none = plan_guided(workspace, "format", memory={**ROOMY, "free_bytes": 1}, model=str(tiny_llama_dir))
    assert none["why_key"] == "guide.no_fit" and "lower the batch size" in none["why"]


def test_an_unknown_goal_names_the_field_and_the_choices(workspace):
    with pytest.raises(StudioError) as error:
        plan_guided(workspace, "fly")
    assert error.value.field == "goal" and "format, extract" in str(error.value)


def test_studio_guide_lists_the_goals_and_refuses_an_unknown_one_as_json(workspace, capsys):
    import json

    from studio.cli import main

    assert main(["guide", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["goal"] for r in rows] == list(GOALS) and rows[2]["stage"] == "classify"
    assert rows[0]["preset"] == "presets/quickstart-sft-lora.yaml"
    assert main(["guide", "fly", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["field"] == "goal"
    assert main(["guide", "format", "--data", "nothing-here"]) == 1
    assert "'data.dataset' is 'nothing-here'" in capsys.readouterr().err


def test_a_smaller_student_is_guided_with_full_only_and_the_teacher_counted(workspace):
    preset = presets()["smaller"]
    assert preset.methods == ("full",) and preset.recipe["distill"]["student_layers"] == 15
    plan = plan_guided(workspace, "smaller", memory=ROOMY)
    assert plan["method"] == "full" and plan["top"] == ["full"] and plan["why_key"] == "guide.fits"
    assert plan["recipe"]["stage"] == "distill" and "15 of its 30 layers" in plan["why"]
