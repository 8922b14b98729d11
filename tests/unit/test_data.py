"""Data loading, the validation split, the sample's answer format, and loss masks on the real SmolLM2 tokenizer."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.data import (IGNORE_INDEX, SAMPLES, format_score, load_examples, render_preview, render_prompt,
                         split_examples, tokenize_chat, tokenize_examples)
from studio.data.sample import SAMPLE_NAME, card_problems
from studio.errors import StudioError

DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------- loaders

def test_instruction_rows_become_user_and_assistant_turns(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
        {"instruction": "Say hi.", "input": "", "output": "Hi!", "system": "Be terse."},
    ])
    examples = load_examples(str(path))
    assert examples[0]["messages"] == [{"role": "user", "content": "Translate to French.\n\nGood morning"},
                                       {"role": "assistant", "content": "Bonjour"}]
    assert examples[1]["messages"][0] == {"role": "system", "content": "Be terse."}
    assert examples[1]["messages"][1] == {"role": "user", "content": "Say hi."}
    assert examples.skipped == [] and examples.source == path


def test_chat_rows_keep_every_turn(tmp_path):
    turns = [{"role": "system", "content": "S"}, {"role": "user", "content": "a"},
             {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"},
             {"role": "assistant", "content": "d"}]
    path = tmp_path / "chat.json"
    path.write_text(json.dumps([{"messages": turns, "id": 7}]), encoding="utf-8")  # a JSON array file
    assert load_examples(str(path)) == [{"messages": turns}]


def test_malformed_lines_are_skipped_and_reported_by_line(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"instruction": "q1", "output": "a1"},
        "{not json",
        {"messages": [{"role": "assistant", "content": "no user first"}]},
        {"instruction": "q2", "output": "a2"},
    ])
    examples = load_examples(str(path))
    assert len(examples) == 2
    assert [line for line, _ in examples.skipped] == [2, 3]
    assert "not valid JSON" in examples.skipped[0][1]


def test_file_with_only_bad_lines_is_refused_naming_the_line(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ["", "{oops", "[1, 2"])
    with pytest.raises(StudioError, match="line 2") as info:
        load_examples(str(path))
    assert info.value.field == "data.dataset"


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(StudioError, match="neither an existing file nor a built-in sample") as info:
        load_examples(str(tmp_path / "nope.jsonl"))
    assert info.value.field == "data.dataset"


def test_empty_file_is_a_clear_error(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n  \n", encoding="utf-8")
    with pytest.raises(StudioError, match="is empty"):
        load_examples(str(tmp_path / "empty.jsonl"))


def test_missing_columns_message_lists_existing_and_needed_columns(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": "a"}, {"question": "q2", "label": 1}])
    with pytest.raises(StudioError) as info:
        load_examples(str(path))
    message = str(info.value)
    for column in ("'answer'", "'label'", "'question'", "'instruction'", "'output'", "'messages'"):
        assert column in message
    assert info.value.field == "data.dataset"


def test_sample_has_240_rows_in_both_languages():
    rows = [json.loads(line) for line in SAMPLES[SAMPLE_NAME].read_text(encoding="utf-8").splitlines()]
    examples = load_examples(SAMPLE_NAME)
    assert len(examples) == len(rows) >= 240 and not examples.skipped
    english = sum(r["output"].startswith("TL;DR:") for r in rows)
    spanish = sum(r["output"].startswith("Resumen:") for r in rows)
    assert english + spanish == len(rows) and min(english, spanish) >= 0.4 * len(rows)
    assert max(len(r["output"].split()) for r in rows) < 80
    assert len({r["instruction"] + r["input"] for r in rows}) == len(rows)


# ---------------------------------------------------------------- split

def test_split_is_seeded_disjoint_and_complete():
    items = list(range(100))
    train, val = split_examples(items, 0.1, seed=3)
    assert len(val) == 10 and sorted(train + val) == items
    assert split_examples(items, 0.1, seed=3) == (train, val)
    assert split_examples(items, 0.1, seed=4)[1] != val


def test_split_edges():
    assert split_examples([1, 2, 3], 0.0, seed=0) == ([1, 2, 3], [])
    train, val = split_examples([1, 2, 3], 0.1, seed=0)  # 0.3 rounds to 0: keep one held out
    assert len(val) == 1 and len(train) == 2
    assert split_examples([1], 0.5, seed=0) == ([1], [])
    assert len(split_examples([1, 2], 0.5, seed=0)[0]) == 1


# ---------------------------------------------------------------- format_score

def test_format_score_is_one_on_the_sample_and_low_on_free_text():
    outputs = [json.loads(line)["output"] for line in SAMPLES[SAMPLE_NAME].read_text(encoding="utf-8").splitlines()]
    assert format_score(outputs) == 1.0
    free = ["Photosynthesis is the process by which plants make food from sunlight. It happens in leaves.",
            "TL;DR: short.\n• one\n• two\nLevel: basic",                   # two points only
            "TL;DR: short.\n• one\n• two\n• three\nLevel: expert",         # unknown level
            "Resumen: corto.\n• uno\n• dos\n• tres\nLevel: basic",         # mixed languages
            "Sure! Here is a study card:\nTL;DR: x\n• a\n• b\n• c\nLevel: basic"]
    assert format_score(free) == 0.0
    assert format_score(outputs[:1] + free[:1]) == 0.5
    card = "Resumen: Una frase.\n• uno\n• dos\n• tres\nNivel: intermedio"
    assert format_score(card) == 1.0 and format_score(card, lang="es") == 1.0 and format_score(card, lang="en") == 0.0
    assert card_problems(free[1])


# ---------------------------------------------------------------- masking on the real tokenizer

@pytest.fixture(scope="module")
def tok(smollm2_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smollm2_tokenizer_dir))


def ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def loss_spans(tok, row):
    """Decoded runs of consecutive tokens that count for the loss."""
    spans, current = [], []
    for token, label in zip(row["input_ids"], row["labels"]):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            spans.append(tok.decode(current))
            current = []
    return spans + ([tok.decode(current)] if current else [])


SINGLE = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "It is 4."}]
MULTI = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"},
         {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]


def test_single_turn_learns_only_the_answer_and_its_end_token(tok):
    row = tokenize_chat(tok, SINGLE, max_length=512)
    full = tok.apply_chat_template(SINGLE, tokenize=False)
    assert row["input_ids"] == ids(tok, full)  # piecewise tokenization equals tokenizing the whole render
    prompt = ids(tok, tok.apply_chat_template(SINGLE[:1], tokenize=False, add_generation_prompt=True))
    answer = ids(tok, "It is 4.") + [tok.convert_tokens_to_ids("<|im_end|>")]
    assert row["labels"] == [IGNORE_INDEX] * len(prompt) + answer + [IGNORE_INDEX]  # the trailing "\n" is masked
    assert tok.decode(row["input_ids"][:len(prompt)]).endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert row["n_loss_tokens"] == len(answer) and not row["truncated"]
    assert DEFAULT_SYSTEM in tok.decode(row["input_ids"][:len(prompt)])


def test_every_assistant_turn_counts_in_multi_turn(tok):
    row = tokenize_chat(tok, MULTI, max_length=512)
    assert loss_spans(tok, row) == ["Hello!<|im_end|>", "Blue.<|im_end|>"]
    first = row["labels"].index(next(label for label in row["labels"] if label != IGNORE_INDEX))
    head = ids(tok, tok.apply_chat_template(MULTI[:1], tokenize=False, add_generation_prompt=True))
    assert first == len(head)
    head2 = ids(tok, tok.apply_chat_template(MULTI[:3], tokenize=False, add_generation_prompt=True))
    assert row["labels"][len(head2) - 1] == IGNORE_INDEX and row["labels"][len(head2)] != IGNORE_INDEX


def test_train_on_prompt_counts_every_token(tok):
    row = tokenize_chat(tok, MULTI, max_length=512, train_on_prompt=True)
    assert row["labels"] == row["input_ids"] and row["n_loss_tokens"] == len(row["input_ids"])


def test_truncation_cuts_the_end_and_drops_examples_without_answers(tok):
    prompt_len = len(ids(tok, tok.apply_chat_template(SINGLE[:1], tokenize=False, add_generation_prompt=True)))
    row = tokenize_chat(tok, SINGLE, max_length=prompt_len + 2)
    assert len(row["input_ids"]) == prompt_len + 2 and row["n_loss_tokens"] == 2 and row["truncated"]
    cut = tokenize_chat(tok, SINGLE, max_length=prompt_len)
    assert cut["n_loss_tokens"] == 0
    rows, stats = tokenize_examples(tok, [{"messages": SINGLE}] * 2, max_length=prompt_len)
    assert rows == [] and stats == {"examples": 0, "truncated": 2, "dropped": 2}


def test_system_prompt_replaces_the_default_unless_the_example_has_one(tok):
    given = tokenize_chat(tok, SINGLE, 512, system_prompt="Answer with a study card.")
    text = tok.decode(given["input_ids"])
    assert "Answer with a study card." in text and DEFAULT_SYSTEM not in text
    own = [{"role": "system", "content": "Own."}, *SINGLE]
    assert "Own." in tok.decode(tokenize_chat(tok, own, 512, system_prompt="Other.")["input_ids"])
    # the playground prompt is the training prompt up to where the answer starts
    prompt = render_prompt(tok, SINGLE[:1], system_prompt="Answer with a study card.")
    assert text.startswith(prompt) and text[len(prompt):].startswith("It is 4.")
    assert render_prompt(tok, SINGLE[:1]).startswith(f"<|im_start|>system\n{DEFAULT_SYSTEM}")


def test_render_preview_marks_answers_and_adds_up_to_the_render(tok):
    spans = render_preview(tok, MULTI)
    assert "".join(text for text, _ in spans) == tok.apply_chat_template(MULTI, tokenize=False)
    assert [text for text, counts in spans if counts] == ["Hello!<|im_end|>", "Blue.<|im_end|>"]
    short = render_preview(tok, MULTI, max_length=4)
    assert short == [("<|im_start|>system\nYou", False)]


def test_uploaded_file_becomes_a_named_versioned_dataset(workspace, tmp_path):
    from studio.data import dataset_names, import_file
    from studio.data.builder import dataset_card, load_split

    src = tmp_path / "My Notes.jsonl"
    src.write_text("".join(f'{{"instruction": "q{i}", "output": "a{i}"}}\n' for i in range(20)) + "not json\n")
    name = import_file(workspace, src)
    assert name == "my-notes" and name in dataset_names(workspace)
    card = dataset_card(workspace, name)
    assert card["format"] == "instruction" and card["skipped"] == 1 and card["problems"][0][0] == 21
    assert len(load_split(workspace, name, "train")) == 20
    src.write_text('{"instruction": "e", "output": "f"}\n{"instruction": "g", "output": "h"}\n')
    assert import_file(workspace, src) == name
    assert dataset_card(workspace, name)["version"] == 2  # the name points at the newest version
    with workspace.db() as conn:
        assert [r["version"] for r in conn.execute("SELECT version FROM datasets ORDER BY version")] == [1, 2]


def test_upload_of_a_bad_file_saves_nothing(workspace, tmp_path):
    from studio.data import dataset_names, import_file
    from studio.errors import StudioError

    src = tmp_path / "empty.jsonl"
    src.write_text("")
    with pytest.raises(StudioError):
        import_file(workspace, src)
    assert dataset_names(workspace) == list(SAMPLES)  # only the built-in samples
