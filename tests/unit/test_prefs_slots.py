"""`studio.prefs.slots.slot_plan`: one model and one GenerationSettings per candidate slot, from the picked models,
the defaults and per-slot overrides given as dicts (the Create form) or "key=value,..." text (`--slot`)."""
from __future__ import annotations

import pytest

from studio.errors import StudioError
from studio.prefs.slots import candidate_settings, parse_slot, slot_plan


def test_without_overrides_slots_rotate_models_and_keep_the_default_settings():
    models, settings = slot_plan(3, ["a", " b ", ""], base=candidate_settings(3, "0.5,1.2", 64))
    assert models == ["a", "b", "a"]
    assert settings == candidate_settings(3, "0.5,1.2", 64)


def test_text_and_dict_overrides_set_each_slot_on_its_own():
    models, settings = slot_plan(3, ["a", "b"], ["temperature=0.2, top_p=0.8,max-new-tokens=16,seed=7",
                                                 {"model": "run:x", "top_k": 5, "temperature": None}, ""])
    assert models == ["a", "run:x", "a"]
    first, second, third = settings
    assert (first.temperature, first.top_p, first.max_new_tokens, first.seed) == (0.2, 0.8, 16, 7)
    assert (second.temperature, second.top_k, second.seed) == (1.0, 5, 1)  # None keeps the default
    assert (third.temperature, third.seed, third.max_new_tokens) == (0.7, 2, 128)
    assert all(s.do_sample for s in settings)


def test_parse_slot_reads_key_value_text():
    assert parse_slot(" temperature=0.7 ,seed=3,", 1) == {"temperature": "0.7", "seed": "3"}
    assert parse_slot("", 2) == {}


@pytest.mark.parametrize("slots, key, words", [
    (["seed=1", "seed=2", "seed=3"], "prefs.slots.too_many", "3 slot settings were given for K=2"),
    (["temperature"], "prefs.slots.not_key_value", "Slot 1: 'temperature' is not key=value"),
    (["", "colour=red"], "prefs.slots.unknown_key", "Slot 2: 'colour' is not a candidate setting"),
    (["temperature=3"], "setting.too_large", "'slot 1.temperature' must be at most 2.0"),
    (["", "max_new_tokens=lots"], "setting.not_int", "'slot 2.max_new_tokens' must be a whole number"),
])
def test_bad_slot_settings_name_the_slot(slots, key, words):
    with pytest.raises(StudioError) as info:
        slot_plan(2, ["a"], slots)
    assert info.value.key == key and words in info.value.message


def test_a_slot_without_any_model_is_refused():
    with pytest.raises(StudioError) as info:
        slot_plan(2, [], ["model=a"])
    assert info.value.key == "prefs.service.no_models"
