"""Cleaning counts, normalised duplicates, stratified and refused splits, and seeded mixing."""
from __future__ import annotations

from collections import Counter

import pytest

from studio.data.cleaning import CleaningConfig, SplitConfig, clean, mix, normalize_text, split
from studio.errors import StudioError
from studio.settings import field_help, parse_settings


def instr(instruction: str, output: str = "answer", input: str = "") -> dict:
    return {"instruction": instruction, "input": input, "output": output, "system": ""}


def test_each_cleaning_step_is_counted():
    records = [instr("  Add 2 and 2. ", "4\n"), instr("Add 2 and 2.", "4"), instr("   ", "x"), instr("q", ""),
               instr("short", "a"), instr("long " * 20, "b"), instr("Keep me", "ok")]
    config = CleaningConfig(min_chars=7, max_chars=50, shuffle=False)
    kept, report = clean(records, "instruction", config)
    assert report == {"trimmed": 3, "dropped_empty": 2, "dropped_duplicates": 1, "dropped_too_short": 1,
                      "dropped_too_long": 1, "dropped_language": 0, "kept": 2}
    assert kept == [instr("Add 2 and 2.", "4"), instr("Keep me", "ok")]
    assert records[0]["instruction"] == "  Add 2 and 2. "  # the input is not modified; "long ... " was trimmed too


def test_switched_off_steps_keep_everything():
    records = [instr(" a ", "b"), instr(" a ", "b"), instr("", "b")]
    config = CleaningConfig(trim_whitespace=False, drop_empty=False, drop_duplicates="none", shuffle=False)
    kept, report = clean(records, "instruction", config)
    assert kept == records and report["kept"] == 3 and sum(v for k, v in report.items() if k != "kept") == 0


def test_normalized_duplicates_ignore_case_spacing_and_end_punctuation():
    assert normalize_text("  Hello,   WORLD!! ") == "hello, world"
    records = [{"text": "Hello world."}, {"text": "hello   WORLD"}, {"text": "Hello world!"}, {"text": "Bye"}]
    exact, exact_report = clean(records, "text", CleaningConfig(shuffle=False))
    normalized, report = clean(records, "text", CleaningConfig(drop_duplicates="normalized", shuffle=False))
    assert exact_report["dropped_duplicates"] == 0 and len(exact) == 4
    assert report["dropped_duplicates"] == 2 and normalized == [{"text": "Hello world."}, {"text": "Bye"}]


def test_chat_records_are_trimmed_and_empty_turns_dropped():
    good = {"messages": [{"role": "user", "content": " hi "}, {"role": "assistant", "content": "hey"}]}
    empty = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]}
    kept, report = clean([good, empty], "chat", CleaningConfig(shuffle=False))
    assert kept[0]["messages"][0]["content"] == "hi" and report["dropped_empty"] == 1 and report["kept"] == 1


def test_shuffle_is_reproducible_with_the_seed():
    records = [{"text": str(i)} for i in range(50)]
    first, _ = clean(records, "text", CleaningConfig(seed=1))
    again, _ = clean(records, "text", CleaningConfig(seed=1))
    other, _ = clean(records, "text", CleaningConfig(seed=2))
    assert first == again != other and sorted(first, key=lambda r: int(r["text"])) == records


def test_cleaning_config_has_help_and_refuses_bad_values():
    assert all(meta["help"] for meta in field_help(CleaningConfig).values())
    with pytest.raises(StudioError, match="drop_duplicates"):
        parse_settings(CleaningConfig, {"drop_duplicates": "fuzzy"})
    with pytest.raises(StudioError, match="'min_chars' \\(10\\) is above 'max_chars' \\(5\\)"):
        CleaningConfig(min_chars=10, max_chars=5)


def labelled(counts: dict[str, int]) -> list[dict]:
    return [{"text": f"{label} {i}", "label": label} for label, n in counts.items() for i in range(n)]


def test_stratified_split_keeps_each_labels_share():
    records = labelled({"pos": 60, "neg": 30, "neutral": 10})
    parts = split(records, "classification", SplitConfig(validation=0.2, test=0.1, seed=3))
    assert [len(parts[k]) for k in ("train", "validation", "test")] == [70, 20, 10]
    assert Counter(r["label"] for r in parts["validation"]) == {"pos": 12, "neg": 6, "neutral": 2}
    assert Counter(r["label"] for r in parts["test"]) == {"pos": 6, "neg": 3, "neutral": 1}
    assert sorted(map(str, records)) == sorted(str(r) for p in parts.values() for r in p)


def test_split_by_count_is_seeded_and_keeps_order():
    records = [{"text": str(i)} for i in range(30)]
    parts = split(records, "text", SplitConfig(validation=5, seed=7))
    assert len(parts["validation"]) == 5 and parts["test"] == [] and len(parts["train"]) == 25
    assert parts == split(records, "text", SplitConfig(validation=5.0, seed=7))
    assert parts["train"] == sorted(parts["train"], key=lambda r: int(r["text"]))
    assert parts != split(records, "text", SplitConfig(validation=5, seed=8))


def test_one_class_classification_is_refused():
    with pytest.raises(StudioError) as err:
        split(labelled({"pos": 10}), "classification", SplitConfig())
    assert str(err.value) == "'label' has only one class ('pos'); a classifier needs at least two."


def test_a_share_that_leaves_validation_empty_is_refused():
    records = [{"text": str(i)} for i in range(40)]
    with pytest.raises(StudioError) as err:
        split(records, "text", SplitConfig(validation=0.01))
    assert str(err.value) == "The validation share 0.01 of 40 rows leaves validation empty; use at least 0.025 or " \
                             "a count."
    assert len(split(records, "text", SplitConfig(validation=0.025))["validation"]) == 1


def test_splits_that_take_every_row_or_bad_values_are_refused():
    with pytest.raises(StudioError, match="leave train empty"):
        split([{"text": "a"}, {"text": "b"}], "text", SplitConfig(validation=1, test=1))
    with pytest.raises(StudioError, match="'test' is 1.5"):
        SplitConfig(test=1.5)


def test_mix_by_counts_takes_exactly_what_was_asked_and_is_seeded():
    task = [{"text": f"task {i}"} for i in range(100)]
    general = [{"text": f"general {i}"} for i in range(1000)]
    mixed, card = mix([("task", task, 100), ("general", general, 50)], seed=1)
    assert Counter(r["text"].split()[0] for r in mixed) == {"task": 100, "general": 50}
    assert [(c["name"], c["requested"], c["taken"]) for c in card] == [("task", 100, 100), ("general", 50, 50)]
    assert mixed == mix([("task", task, 100), ("general", general, 50)], seed=1)[0]
    assert mixed != mix([("task", task, 100), ("general", general, 50)], seed=2)[0]


def test_mix_shares_are_of_the_result_and_never_repeat_when_they_need_not():
    task = [{"text": f"task {i}"} for i in range(30)]
    general = [{"text": f"general {i}"} for i in range(1000)]
    mixed, card = mix([("task", task, 0.75), ("general", general, 0.25)], seed=0)
    assert [c["taken"] for c in card] == [30, 10] and len({r["text"] for r in mixed}) == 40
    with_count, card = mix([("task", task, 30), ("general", general, 0.4)], seed=0)
    assert [c["taken"] for c in card] == [30, 20]


def test_mix_repeats_a_small_source_only_past_its_size_and_refuses_bad_shares():
    small = [{"text": "a"}, {"text": "b"}]
    mixed, card = mix([("small", small, 5)], seed=0)
    assert len(mixed) == 5 and {"a", "b"} == {r["text"] for r in mixed} and card[0]["available"] == 2
    with pytest.raises(StudioError, match="add up to 0.8"):
        mix([("a", small, 0.5), ("b", small, 0.3)])
    with pytest.raises(StudioError, match="'empty' has no records"):
        mix([("empty", [], 3)])


def test_language_filter_keeps_only_the_chosen_languages():
    records = [instr("How do I bake bread at home with little time?", "Use a quick yeast dough and a hot oven."),
               instr("¿Cómo preparo pan en casa con poco tiempo?", "Usa una masa rápida y el horno muy caliente."),
               instr("Wie backe ich zu Hause schnell Brot?", "Nimm einen schnellen Hefeteig und einen heißen Ofen.")]
    kept, report = clean(records, "instruction", CleaningConfig(languages="en, es", shuffle=False))
    assert [r["instruction"][:3] for r in kept] == ["How", "¿Có"] and report["dropped_language"] == 1


def test_bad_language_codes_are_refused():
    with pytest.raises(StudioError, match="ISO codes"):
        CleaningConfig(languages="english")
