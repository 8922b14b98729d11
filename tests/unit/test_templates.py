"""Prompt templates: rendering, sandboxing, saving, and the exact loss masks on the real SmolLM2 tokenizer."""
from __future__ import annotations

import pytest

from studio.data import templates as T
from studio.data.template_store import get_template, list_templates, load_template, save_template
from studio.errors import StudioError

RECORD = {"instruction": "Add the two numbers.", "input": "2 and 3", "output": "The sum is 5."}
NO_INPUT = {"instruction": "Name a primary colour.", "input": "", "output": "Red."}
TEXT_TEMPLATES = [name for name, t in T.BUILTIN_TEMPLATES.items() if t.kind == "text"]


@pytest.fixture(scope="module")
def tok(smollm2_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)


def _loss_positions(row):
    return [i for i, label in enumerate(row["labels"]) if label != T.IGNORE_INDEX]


@pytest.mark.parametrize("name", TEXT_TEMPLATES)
@pytest.mark.parametrize("record", [RECORD, NO_INPUT], ids=["input", "no-input"])
def test_text_templates_learn_exactly_the_response_and_eos(tok, name, record):
    rendered = T.render_example(get_template(name), record, system_prompt="Be brief.")
    prompt_ids = tok(rendered["prompt"], add_special_tokens=False)["input_ids"]
    row = T.tokenize_rendered(tok, rendered, max_length=512)
    # The loss starts at the first token after the prompt and runs to the end.
    assert _loss_positions(row) == list(range(len(prompt_ids), len(row["input_ids"])))
    assert row["input_ids"][: len(prompt_ids)] == prompt_ids
    assert row["input_ids"][-1] == tok.eos_token_id and row["n_loss_tokens"] == len(_loss_positions(row))
    learnt = tok.decode([row["input_ids"][i] for i in _loss_positions(row)])
    assert learnt == record["output"] + tok.eos_token  # chatml's own <|im_end|> is SmolLM2's eos: not doubled
    assert not row["truncated"]


def test_alpaca_and_dolly_wordings(tok):
    alpaca = T.render_example(get_template("alpaca"), RECORD)["prompt"]
    assert alpaca.startswith("Below is an instruction that describes a task, paired with an input")
    assert "### Input:\n2 and 3\n\n### Response:\n" in alpaca
    alpaca_short = T.render_example(get_template("alpaca"), NO_INPUT)["prompt"]
    assert "### Input" not in alpaca_short and alpaca_short.endswith("### Response:\n")
    dolly = T.render_example(get_template("dolly"), RECORD)["prompt"]
    assert "### Instruction:\nAdd the two numbers.\n\nInput:\n2 and 3\n\n### Response:\n" in dolly
    chatml = T.render_example(get_template("chatml"), RECORD, system_prompt="Be brief.")
    assert chatml["prompt"] == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nAdd the two numbers."
                                "\n\n2 and 3<|im_end|>\n<|im_start|>assistant\n")


def test_system_prompt_applies_and_the_records_own_wins():
    assert T.render_example(get_template("alpaca"), NO_INPUT, system_prompt="Be brief.")["prompt"].startswith(
        "Be brief.\n\nBelow")
    own = T.render_example(get_template("chat"), {**NO_INPUT, "system": "Own."}, system_prompt="Ignored.")
    assert own["messages"][0] == {"role": "system", "content": "Own."}


def test_train_on_prompt_makes_every_token_count(tok):
    for name in [*TEXT_TEMPLATES, "chat"]:
        rendered = T.render_example(get_template(name), RECORD)
        row = T.tokenize_rendered(tok, rendered, max_length=512, train_on_prompt=True)
        assert row["labels"] == row["input_ids"], name


def test_truncation_cuts_ids_and_labels_together(tok):
    rendered = T.render_example(get_template("alpaca"), RECORD)
    full = T.tokenize_rendered(tok, rendered, max_length=512)
    prompt_len = len(full["input_ids"]) - full["n_loss_tokens"]
    cut = T.tokenize_rendered(tok, rendered, max_length=prompt_len + 2)
    assert cut["truncated"] and len(cut["input_ids"]) == len(cut["labels"]) == prompt_len + 2
    assert cut["n_loss_tokens"] == 2 and cut["input_ids"] == full["input_ids"][: prompt_len + 2]
    assert T.tokenize_rendered(tok, rendered, max_length=prompt_len)["n_loss_tokens"] == 0


def test_chat_template_masks_match_studio_data_chat(tok):
    rendered = T.render_example(get_template("chat"), RECORD)
    row = T.tokenize_rendered(tok, rendered, max_length=512)
    assert tok.decode([row["input_ids"][i] for i in _loss_positions(row)]) == "The sum is 5.<|im_end|>"
    spans = T.preview_spans(tok, rendered)
    assert [text for text, counts in spans if counts] == ["The sum is 5.<|im_end|>"]


CONVERSATION = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."},
                             {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Goodbye."}]}


def test_multi_turn_last_masks_earlier_assistant_turns(tok):
    rendered = T.render_example(get_template("chat"), CONVERSATION)
    every = T.tokenize_rendered(tok, rendered, 512, multi_turn="all")
    last = T.tokenize_rendered(tok, rendered, 512, multi_turn="last")
    assert every["input_ids"] == last["input_ids"]
    learnt = lambda row: tok.decode([row["input_ids"][i] for i in _loss_positions(row)])  # noqa: E731
    assert learnt(every) == "Hello there.<|im_end|>Goodbye.<|im_end|>"
    assert learnt(last) == "Goodbye.<|im_end|>"
    assert [t for t, c in T.preview_spans(tok, rendered, multi_turn="last") if c] == ["Goodbye.<|im_end|>"]
    assert T.tokenize_rendered(tok, rendered, 512, True, "last")["labels"] == every["input_ids"]
    with pytest.raises(StudioError, match="multi_turn"):
        T.tokenize_rendered(tok, rendered, 512, multi_turn="first")


def test_preview_spans_add_up_to_what_the_trainer_sees(tok):
    rendered = T.render_example(get_template("dolly"), RECORD)
    spans = T.preview_spans(tok, rendered)
    assert spans == [(rendered["prompt"], False), (rendered["response"] + tok.eos_token, True)]
    assert T.preview_spans(tok, rendered, train_on_prompt=True) == [(rendered["prompt"] + "The sum is 5.<|im_end|>",
                                                                     True)]
    short = T.preview_spans(tok, rendered, max_length=3)
    assert len(short) == 1 and not short[0][1]


def test_flan_phrasing_is_deterministic_per_seed_and_index_and_varies():
    flan = get_template("flan")
    doc = {"source": "A long article about tides.", "target": "Tides explained."}
    prompts = [T.render_example(flan, doc, seed=7, index=i)["prompt"] for i in range(40)]
    assert prompts == [T.render_example(flan, doc, seed=7, index=i)["prompt"] for i in range(40)]
    assert len(set(prompts)) >= 4 and all("A long article about tides." in p for p in prompts)
    assert prompts != [T.render_example(flan, doc, seed=8, index=i)["prompt"] for i in range(40)]
    assert {T.render_example(flan, doc, seed=7, index=i)["response"] for i in range(5)} == {"Tides explained."}
    instruct = {T.render_example(flan, RECORD, seed=0, index=i)["prompt"] for i in range(40)}
    assert len(instruct) >= 4 and all("Add the two numbers." in p and "2 and 3" in p for p in instruct)
    assert all(len(phrasings) >= 4 for _, phrasings in flan.variants)


def test_seq2seq_and_classification_records_render_through_aliases():
    assert T.render_example(get_template("alpaca"), {"source": "Bonjour", "target": "Hello"}) == {
        "prompt": T.render_example(get_template("alpaca"), {"instruction": "Bonjour"})["prompt"], "response": "Hello"}
    custom = T.custom_template("Review: {{ text }}\nSentiment:", "{{ label }}")
    assert T.render_example(custom, {"text": "Great", "label": "positive"}) == {"prompt": "Review: Great\nSentiment:",
                                                                                "response": "positive"}


def test_sandbox_refuses_python_internals_and_file_access():
    with pytest.raises(StudioError, match="Template line 1: access to attribute '__class__'") as exc:
        T.render_example(T.custom_template("{{ ''.__class__.__mro__ }}"), RECORD)
    assert exc.value.field == "data.template"
    with pytest.raises(StudioError, match="Template line 2: templates cannot include"):
        T.custom_template("Hello\n{% include 'x' %}")
    with pytest.raises(StudioError, match="line 1: templates cannot include"):
        T.custom_template("{% from 'x' import y %}{{ instruction }}")
    with pytest.raises(StudioError, match="cannot include"):
        T.custom_template("{{ instruction }}", "{% extends '/etc/passwd' %}")


def test_undefined_field_error_names_the_line_and_the_fields():
    template = T.custom_template("### Instruction:\n{{ instruction }}\n{{ contexto }}\n### Response:\n")
    with pytest.raises(StudioError) as exc:
        T.render_example(template, RECORD)
    assert str(exc.value) == "Template line 3: 'contexto' is undefined; the fields are instruction, input, output."
    assert exc.value.field == "data.template"
    with pytest.raises(StudioError, match="Response template line 1: 'answer' is undefined"):
        T.render_example(T.custom_template("{{ instruction }}", "{{ answer }}"), RECORD)


def test_syntax_error_names_the_line():
    with pytest.raises(StudioError, match=r"^Template line 2: .*fix the Jinja syntax") as exc:
        T.custom_template("{{ instruction }}\n{{ input + }}\n{{ output }}")
    assert exc.value.field == "data.template"
    with pytest.raises(StudioError, match="^Response template line 1"):
        T.custom_template("{{ instruction }}", "{{ output ")


def test_saved_templates_round_trip_and_resolve_by_name(workspace):
    saved = save_template(workspace, "qa-short", "Q: {{ instruction }}\nA:", description="Terse QA")
    assert (workspace.home / "templates" / "qa-short.json").is_file()
    assert load_template(workspace, "qa-short") == saved and saved.response == "{{ output }}"
    assert [t.name for t in list_templates(workspace)] == ["qa-short"]
    assert get_template("qa-short", workspace) == saved
    assert T.render_example(saved, NO_INPUT) == {"prompt": "Q: Name a primary colour.\nA:", "response": "Red."}


def test_bad_names_and_bad_templates_are_not_saved(workspace):
    for name in ("../evil", "Has Space", "", "alpaca"):
        with pytest.raises(StudioError) as exc:
            save_template(workspace, name, "{{ instruction }}")
        assert exc.value.field == "data.template_name"
    save_template(workspace, "good", "{{ instruction }}")
    with pytest.raises(StudioError, match="line 1"):
        save_template(workspace, "good", "{% if %}")
    assert load_template(workspace, "good").prompt == "{{ instruction }}"


def test_unknown_template_lists_the_names(workspace):
    save_template(workspace, "mine", "{{ instruction }}")
    with pytest.raises(StudioError, match="Unknown template 'nope'; choose one of alpaca, dolly, flan, chatml, chat, "
                                          "mine") as exc:
        get_template("nope", workspace)
    assert exc.value.field == "data.template"
    with pytest.raises(StudioError, match="No saved template 'gone'"):
        load_template(workspace, "gone")


def test_text_templates_refuse_conversations():
    with pytest.raises(StudioError, match="use the 'chat' template"):
        T.render_example(get_template("alpaca"), CONVERSATION)
