"""Task formats: detection on realistic column sets, mapping errors, row problems, records as chat turns."""
from __future__ import annotations

import json

import pytest

from studio.data.formats import FORMATS, check_mapping, guess_format, iter_records, record_to_messages, to_records
from studio.errors import StudioError


def rows(*dicts: dict) -> list[tuple[int, dict]]:
    return list(enumerate(dicts, start=1))


SHAREGPT = [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"},
            {"from": "gpt", "value": "Hello!"}]
OPENAI = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]

DETECTION_CASES = {
    "alpaca": ({"instruction": "Add.", "input": "2 and 2", "output": "4"}, "instruction",
               {"instruction": "instruction", "input": "input", "output": "output"}),
    "dolly": ({"instruction": "Who?", "context": "Ada wrote it.", "response": "Ada", "category": "closed_qa"},
              "instruction", {"instruction": "instruction", "input": "context", "output": "response"}),
    "question_answer_mixed_case": ({"Question": "Why?", "Answer": "Because."}, "instruction",
                                   {"instruction": "Question", "output": "Answer"}),
    "sharegpt": ({"id": "a1", "conversations": SHAREGPT}, "chat", {"messages": "conversations"}),
    "openai_messages": ({"messages": OPENAI}, "chat", {"messages": "messages"}),
    "messages_json_in_csv_cell": ({"dialog": json.dumps(OPENAI)}, "chat", {"messages": "dialog"}),
    "dialogue_summary": ({"id": "1", "dialogue": "A: hi\nB: hey", "summary": "They greet."}, "seq2seq",
                         {"source": "dialogue", "target": "summary"}),
    "preference": ({"prompt": "Q", "chosen": "good", "rejected": "bad"}, "preference",
                   {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"}),
    "kto": ({"prompt": "Q", "completion": "A", "label": True}, "feedback",
            {"prompt": "prompt", "completion": "completion", "label": "label"}),
    "text_label": ({"text": "Great film", "label": "pos"}, "classification", {"text": "text", "label": "label"}),
    "raw_text": ({"text": "Once upon a time."}, "text", {"text": "text"}),
}


@pytest.mark.parametrize("case", list(DETECTION_CASES))
def test_guess_picks_the_format_and_mapping_of_common_datasets(case):
    row, expected_format, expected_mapping = DETECTION_CASES[case]
    sample = [row, dict(row), dict(row), dict(row)]
    if expected_format == "classification":
        sample[1] = {**row, "label": "neg"}
    guess = guess_format(list(row), sample)
    assert guess.format == expected_format, guess.reason
    assert {k: v for k, v in guess.mapping.items() if k in expected_mapping} == expected_mapping
    assert 0 < guess.confidence <= 1 and guess.reason


def test_prompt_completion_without_boolean_label_is_not_feedback():
    sample = [{"prompt": "Q", "completion": "A", "label": "maybe"}]
    assert guess_format(["prompt", "completion", "label"], sample).format == "instruction"


def test_label_with_many_distinct_values_is_not_classification():
    sample = [{"text": f"t{i}", "label": f"unique {i}"} for i in range(10)]
    assert guess_format(["text", "label"], sample).format == "text"


def test_unknown_columns_fall_back_to_the_longest_text_with_low_confidence():
    guess = guess_format(["a", "b"], [{"a": "x", "b": "a much longer paragraph"}])
    assert (guess.format, guess.mapping, guess.confidence < 0.5) == ("text", {"text": "b"}, True)


def test_every_registered_format_lists_its_fields_and_description():
    assert set(FORMATS.names()) == {"instruction", "chat", "text", "classification", "seq2seq", "preference",
                                    "feedback"}
    for _, spec in FORMATS.items():
        assert spec.required and spec.description and set(spec.required) <= set(spec.aliases)


def test_missing_required_field_names_it_and_the_existing_columns():
    with pytest.raises(StudioError) as err:
        check_mapping("instruction", {"instruction": "question"}, ["question", "answer"])
    assert str(err.value) == ("'output' is not mapped: the file has columns question, answer; map one of them with "
                              "--map output=COLUMN.")
    assert err.value.field == "map.output"


def test_mapping_to_a_column_the_file_lacks_is_refused():
    with pytest.raises(StudioError, match="'resp'.*its columns are question, answer"):
        check_mapping("instruction", {"instruction": "question", "output": "resp"}, ["question", "answer"])
    with pytest.raises(StudioError, match="not a field of the instruction format"):
        check_mapping("instruction", {"instruction": "question", "output": "answer", "label": "x"},
                      ["question", "answer", "x"])
    check_mapping("instruction", {"instruction": "question", "output": "answer"}, ["question", "answer"])


def test_row_problems_carry_row_numbers_and_valid_rows_still_import():
    data = [(2, {"q": "Hi", "a": "Hello"}), (7, {"q": "Bye", "a": ""}), (9, {"q": "Yo"}),
            (11, {"q": 3, "a": 4.5}), (12, {"q": "x", "a": ["list"]})]
    records, problems = to_records(data, "instruction", {"instruction": "q", "output": "a"})
    assert records == [{"instruction": "Hi", "output": "Hello", "input": "", "system": ""},
                       {"instruction": "3", "output": "4.5", "input": "", "system": ""}]
    assert problems == [(7, "'output' is empty"), (9, "'output' is missing"), (12, "'output' is a list, not text")]


def test_values_keep_their_whitespace_for_cleaning_to_trim():
    records, _ = to_records(rows({"text": "  padded  "}), "text", {"text": "text"})
    assert records == [{"text": "  padded  "}]


def test_chosen_equal_to_rejected_is_a_problem():
    mapping = {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"}
    records, problems = to_records(rows({"prompt": "Q", "chosen": "A", "rejected": "B"},
                                        {"prompt": "Q", "chosen": "same", "rejected": "same "}), "preference", mapping)
    assert len(records) == 1 and problems == [(2, "'chosen' and 'rejected' are the same answer")]


def test_feedback_labels_become_booleans_and_unknown_ones_are_problems():
    mapping = {"prompt": "p", "completion": "c", "label": "l"}
    data = rows({"p": "Q", "c": "A", "l": "yes"}, {"p": "Q", "c": "B", "l": 0}, {"p": "Q", "c": "C", "l": "maybe"},
                {"p": "Q", "c": "D", "l": False})
    records, problems = to_records(data, "feedback", mapping)
    assert [r["label"] for r in records] == [True, False, False]
    assert problems == [(3, "'label' is 'maybe', not true/false (or yes/no, 1/0)")]


def test_classification_rows_with_an_unknown_label_are_problems():
    data = rows({"text": "a", "label": "pos"}, {"text": "b", "label": "meh"}, {"text": "c", "label": 1})
    records, problems = to_records(data, "classification", {"text": "text", "label": "label"}, labels=["pos", "neg", 1])
    assert [r["label"] for r in records] == ["pos", "1"]
    assert problems == [(2, "'label' is 'meh', not one of 1, neg, pos")]


def test_sharegpt_turns_become_role_content_messages():
    records, problems = to_records(rows({"conversations": SHAREGPT}), "chat", {"messages": "conversations"})
    assert problems == []
    assert records[0]["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                                      {"role": "assistant", "content": "Hello!"}]


def test_messages_in_a_json_string_cell_are_parsed_and_a_system_column_is_prepended():
    records, _ = to_records(rows({"m": json.dumps(OPENAI), "sys": "Be exact."}), "chat",
                            {"messages": "m", "system": "sys"})
    assert records[0]["messages"][0] == {"role": "system", "content": "Be exact."}
    assert records[0]["messages"][1:] == OPENAI


def test_malformed_chat_rows_are_problems_with_reasons():
    data = rows({"m": "not json"}, {"m": [{"role": "narrator", "content": "x"}]},
                {"m": [{"role": "user", "content": "only a question"}]}, {"m": [OPENAI[1], OPENAI[0]]},
                {"m": [OPENAI[0], {"role": "assistant"}]}, {"m": OPENAI}, {"other": 1})
    reasons = dict(to_records(data, "chat", {"messages": "m"})[1])
    assert reasons == {1: "'messages' is not a list of turns",
                       2: "turn 1 of 'messages' has role 'narrator'; use system, user or assistant (ShareGPT: "
                          "system, human, gpt)",
                       3: "'messages' has no assistant turn to learn from",
                       4: "'messages' does not start with a user turn",
                       5: "turn 2 of 'messages' has no text content",
                       7: "'messages' is missing"}


def test_iter_records_streams_one_result_per_row():
    stream = iter_records(iter(rows({"text": "a"}, {"text": ""})), "text", {"text": "text"})
    assert next(stream) == (1, {"text": "a"}, None)
    assert next(stream) == (2, None, "'text' is empty")


def test_records_become_chat_turns_for_training():
    instruction = {"instruction": "Translate.", "input": "Hi", "output": "Salut", "system": "Be terse."}
    assert record_to_messages(instruction, "instruction") == [
        {"role": "system", "content": "Be terse."}, {"role": "user", "content": "Translate.\n\nHi"},
        {"role": "assistant", "content": "Salut"}]
    assert record_to_messages({"instruction": "Say hi.", "input": "", "output": "Hi"}, "instruction")[0] == {
        "role": "user", "content": "Say hi."}
    assert record_to_messages({"source": "long", "target": "short"}, "seq2seq")[1]["content"] == "short"
    assert record_to_messages({"text": "Great", "label": "pos"}, "classification") == [
        {"role": "user", "content": "Great"}, {"role": "assistant", "content": "pos"}]
    assert record_to_messages({"messages": OPENAI}, "chat") == OPENAI
    with pytest.raises(StudioError, match="preference format"):
        record_to_messages({"prompt": "Q", "chosen": "a", "rejected": "b"}, "preference")


def test_unknown_format_names_the_known_ones():
    with pytest.raises(StudioError, match="Unknown format 'alpaca'.*instruction, chat"):
        to_records([], "alpaca", {})
