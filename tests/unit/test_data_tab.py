"""The Data tab's pure helpers, without a browser or an engine: widgets -> ImportRequest, rows -> preview."""
from __future__ import annotations

import pytest

from studio.data.builder import inspect_source
from studio.data.formats import FORMATS
from studio.errors import StudioError
from studio.ui import data_forms as forms


@pytest.fixture
def semicolon_csv(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text("question;answer;notes\nWhat is 2+2?;4;x\nCapital of France?;Paris;y\nSky colour?;;z\n"
                    "Best fruit?;Mango;w\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", FORMATS.names())
def test_mapping_slots_show_every_field_of_the_format_and_hide_the_rest(fmt):
    spec = FORMATS.get(fmt)
    slots = forms.mapping_slots(fmt, ["a", "b"], {spec.fields[-1]: "missing", spec.fields[0]: "b"})
    assert len(slots) == forms.MAX_FIELDS
    assert [s["field"] for s in slots if s["visible"]] == list(spec.fields)
    assert slots[0]["value"] == "b" and slots[0]["choices"] == ["", "a", "b"]
    if len(spec.fields) > 1:
        assert slots[len(spec.fields) - 1]["value"] == ""  # a column the file lacks is not offered


def test_guessed_mapping_of_a_semicolon_csv_presets_the_widgets(semicolon_csv):
    found = inspect_source(str(semicolon_csv))
    assert found.info["delimiter"] == ";" and found.guess.format == "instruction"
    guess = {"format": found.guess.format, "mapping": found.guess.mapping}
    mapping = forms.guess_mapping("instruction", found.columns, guess)
    assert mapping == {"instruction": "question", "output": "answer"}
    values = [s["value"] for s in forms.mapping_slots("instruction", found.columns, mapping)]
    assert forms.mapping_from_slots("instruction", values) == mapping


def test_another_format_is_mapped_by_column_aliases():
    assert forms.guess_mapping("preference", ["Question", "chosen", "rejected"], {"format": "text"}) == \
        {"prompt": "Question", "chosen": "chosen", "rejected": "rejected"}


def test_widget_values_become_an_import_request_with_typed_settings():
    request = forms.import_request("/tmp/x.csv", "  qa  ", "instruction", ["question", "answer", "", None],
                                   "alpaca", "Be brief.", {"min_chars": 3.0, "drop_duplicates": "normalized"},
                                   {"validation": 0.2, "test": 0.0, "seed": 7.0})
    assert request.name == "qa" and request.format == "instruction" and request.template == "alpaca"
    assert request.mapping == {"instruction": "question", "output": "answer"}
    assert request.cleaning.min_chars == 3 and isinstance(request.cleaning.min_chars, int)
    assert request.cleaning.drop_duplicates == "normalized"
    assert request.split.validation == 0.2 and request.split.seed == 7


def test_a_bad_split_share_is_refused_naming_the_field():
    with pytest.raises(StudioError, match="'validation'"):
        forms.import_request("/tmp/x.csv", "qa", "instruction", ["q", "a"], "chat", "", {}, {"validation": 1.5})


def test_preview_records_skip_bad_rows_and_keep_the_first_three(semicolon_csv):
    found = inspect_source(str(semicolon_csv))
    records, problems = forms.preview_records(found.rows, "instruction", {"instruction": "question", "output": "answer"})
    assert [r["output"] for r in records] == ["4", "Paris", "Mango"]
    assert problems == [(3, "'output' is empty")]


class CharTokenizer:
    """One token per character; enough for preview_spans with a text template."""

    bos_token_id = None
    eos_token_id = 0

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [ord(c) for c in text]}

    def decode(self, ids, clean_up_tokenization_spaces=False):
        return "".join("</s>" if i == 0 else chr(i) for i in ids)


def test_highlight_marks_only_the_answer_unless_training_on_the_prompt():
    from studio.data.template_store import get_template

    records = [{"instruction": "Hi?", "output": "Hello", "input": "", "system": ""}] * 2
    spans = forms.highlight(CharTokenizer(), get_template("flan"), records, "", False, "loss")
    counted = "".join(text for text, label in spans if label == "loss")
    assert counted == "Hello</s>Hello</s>"
    assert any(label is None and "Hi?" in text for text, label in spans)
    spans = forms.highlight(CharTokenizer(), get_template("flan"), records[:1], "", True, "loss")
    assert all(label == "loss" for _, label in spans)


def test_tables_show_nested_values_as_json_and_datasets_one_per_line():
    assert forms.table_rows(["a", "b"], [{"a": [1], "b": None}]) == [["[1]", ""]]
    line = forms.dataset_rows([{"name": "qa", "version": 2, "format": "instruction", "rows": {"train": 3},
                                "template": "chat", "skipped": 1}])
    assert line == [["qa", 2, "instruction", 3, 0, 0, "chat", 1]]
    assert forms.source_facts({"encoding": "utf-8", "delimiter": ";"}, [(1, "x")], 4) == \
        {"encoding": "utf-8", "delimiter": "';'", "rows": 4, "problems": 1}


def test_mix_sources_parse_shares_and_counts():
    import pytest

    from studio.errors import StudioError
    from studio.ui.data_library import parse_sources

    assert parse_sources("tutor=0.7, faq=200\nother=1") == [("tutor", 0.7), ("faq", 200), ("other", 1)]
    with pytest.raises(StudioError, match="name=0.3"):
        parse_sources("tutor=lots")
    with pytest.raises(StudioError, match="empty"):
        parse_sources(" , ")


def test_record_pages_hold_25_rows_and_clamp_the_page_number():
    from studio.ui.data_library import page_of

    records = [{"instruction": f"q{i}", "messages": [{"role": "user", "content": "x"}]} for i in range(60)]
    table, pages = page_of(records, 3)
    assert pages == 3 and [r[0] for r in table["data"]] == [f"q{i}" for i in range(50, 60)]
    assert table["data"][0][1].startswith("[{")  # nested values shown as JSON text
    assert page_of(records, 99)[0]["data"][0][0] == "q50" and page_of([], 1) == ({"headers": ["(empty)"], "data": []}, 1)


def test_the_preview_reads_chat_markers_as_roles_and_names_the_templates_own_system_prompt(smollm2_tokenizer_dir):
    from transformers import AutoTokenizer

    from studio.data.library import DataLibrary

    raw = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>"
    assert forms.readable(raw, {"user": "Usuario"}) == "System: Be brief.\nUsuario: Hi\nAssistant: Hello"
    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    chat = DataLibrary(None).template("chat")
    records = [{"instruction": "Capital of France?", "output": "Paris"}]
    spans = forms.highlight(tok, chat, records, "", False, "loss")
    assert "<|im_start|>" not in "".join(t for t, _ in spans) and ("Paris", "loss") in spans
    assert "SmolLM" in forms.default_system(tok, chat, records, "")  # SmolLM2's template names itself
    assert forms.default_system(tok, chat, records, "Answer in one word.") is None


def test_the_column_table_and_length_histogram_speak_the_pages_language():
    from studio.data.stats import histogram_figure, length_report
    from studio.ui.i18n import Texts

    texts = Texts.load()
    report = {"columns": [{"name": "output", "kind": "text", "non_empty": 3, "empty": 1, "distinct": 3,
                           "min_chars": 4, "max_chars": 9, "top": []},
                          {"name": "label", "kind": "bool", "non_empty": 4, "empty": 0, "distinct": 2, "top": [(True, 3)]}]}
    table = forms.column_rows(report, texts, "es")
    assert table["headers"][:2] == ["columna", "tipo"] and table["data"][0][1] == "texto"
    assert table["data"][1][1:5] == ["sí/no", 4, 0, 2] and table["data"][1][6] == "True (3)"
    lengths = length_report([10, 20, 100, 101, 300], [1] * 5, max_length=100)
    fig = histogram_figure(lengths, forms.histogram_words(texts, "es"))
    assert fig.layout.title.text == "Longitud en tokens: 40.0% de 5 ejemplos supera 100 (2 se recortarían)"
    assert fig.layout.xaxis.title.text == "tokens por ejemplo" and "tokens:" in fig.data[0].hovertext[0]
    english = histogram_figure(lengths, forms.histogram_words(texts, "en"))
    assert english.layout.title.text == histogram_figure(lengths).layout.title.text
