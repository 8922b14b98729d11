"""Recipe parsing: strict keys, types and ranges, each refusal naming the field."""
import pytest

from studio.config import apply_overrides, load_recipe, parse_recipe, parse_recipe_yaml, recipe_to_yaml
from studio.errors import StudioError

BASE = {"name": "t", "data": {"dataset": "sample-format-tutor"}}


def with_(**sections):
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key].update(value)
        else:
            out[key] = value
    return out


def test_defaults_fill_a_minimal_recipe():
    r = parse_recipe(BASE)
    assert r.model == "smollm2-135m-instruct" and r.stage == "sft"
    assert r.method.name == "lora" and r.method.r == 16
    assert r.train.lr == 2e-4 and r.data.max_length == 512


def test_recipe_round_trips_through_yaml():
    r = parse_recipe(with_(method={"name": "lora", "r": 4, "target_modules": "attention"},
                           train={"max_steps": 7}))
    again = parse_recipe_yaml(recipe_to_yaml(r))
    assert again == r


@pytest.mark.parametrize("recipe, field", [
    (with_(bogus=1), "bogus"),
    (with_(train={"lrr": 1}), "train.lrr"),
    (with_(train={"lr": 0}), "train.lr"),
    (with_(train={"lr": -1e-4}), "train.lr"),
    (with_(train={"batch_size": 0}), "train.batch_size"),
    (with_(train={"batch_size": "eight"}), "train.batch_size"),
    (with_(train={"epochs": 1.5, "max_steps": 2.5}), "train.max_steps"),
    (with_(train={"precision": "int3"}), "train.precision"),
    (with_(data={"validation": 0.9}), "data.validation"),
    (with_(method={"name": "lora", "r": 0}), "method.r"),
    (with_(method={"name": "lora", "rank": 8}), "method.rank"),
    (with_(method={"name": "magic"}), "method.name"),
    (with_(stage="dance"), "stage"),
    ({"name": "t"}, "data"),
])
def test_bad_values_name_their_field(recipe, field):
    with pytest.raises(StudioError) as exc:
        parse_recipe(recipe)
    assert exc.value.field == field
    assert f"'{field}'" in str(exc.value) or field in str(exc.value)


def test_malformed_yaml_says_where():
    with pytest.raises(StudioError, match=r"not valid YAML at line \d+, column \d+"):
        parse_recipe_yaml("name: x\ndata: {dataset: [unclosed\n")


def test_not_a_mapping_is_refused():
    with pytest.raises(StudioError, match="mapping"):
        parse_recipe_yaml("- just\n- a list\n")


def test_overrides_set_nested_values_with_yaml_types(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: t\nmethod: lora\ndata: {dataset: x.jsonl}\n")
    r = load_recipe(path, ["train.max_steps=20", "method.r=8", "data.packing=true", "train.lr=1e-4"])
    assert r.train.max_steps == 20 and r.method.r == 8 and r.data.packing is True and r.train.lr == 1e-4


def test_override_without_equals_is_refused():
    with pytest.raises(StudioError, match="key.path=value"):
        apply_overrides({}, ["train.max_steps"])


def test_missing_recipe_file_is_named(tmp_path):
    with pytest.raises(StudioError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
