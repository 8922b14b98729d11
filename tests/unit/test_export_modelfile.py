"""The Ollama Modelfile: each chat family's template, stop words, parameters and system prompt."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from studio.errors import StudioError
from studio.export.modelfile import chat_family, modelfile_text, write_modelfile

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
LLAMA3 = ("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
          "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}")
MISTRAL = ("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
           "message['content'] + ' [/INST]' }}{% else %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}")
GEMMA = ("{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + message['role'] + '\\n' + "
         "message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}")


@dataclass
class FakeTokenizer:
    chat_template: str | None
    eos_token: str | None = None


@pytest.mark.parametrize("template, eos, family, expected_stops", [
    (CHATML, "<|im_end|>", "chatml", ["<|im_end|>"]),
    (LLAMA3, "<|eot_id|>", "llama3", ["<|eot_id|>", "<|start_header_id|>"]),
    (MISTRAL, "</s>", "mistral", ["[INST]", "[/INST]", "</s>"]),
    (GEMMA, "<eos>", "gemma", ["<end_of_turn>", "<eos>"]),
])
def test_each_chat_family_gets_its_template_and_stop_words(template, eos, family, expected_stops):
    tokenizer = FakeTokenizer(template, eos)
    assert chat_family(tokenizer).name == family
    text = modelfile_text("model.gguf", tokenizer)
    stops = [line.split(" ", 2)[2].strip('"') for line in text.splitlines() if line.startswith("PARAMETER stop")]
    assert stops == expected_stops
    assert text.splitlines()[1] == "FROM ./model.gguf" and 'TEMPLATE """' in text
    assert "not recognised" not in text


def test_the_chatml_template_renders_smollm2_turns():
    text = modelfile_text("m.gguf", FakeTokenizer(CHATML, "<|im_end|>"))
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    assert "<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n" in template
    assert template.endswith("<|im_start|>assistant\n")


def test_an_unknown_template_falls_back_to_the_plain_prompt_and_says_so():
    for tokenizer in (FakeTokenizer("{{ messages[0]['content'] }}", "</s>"), FakeTokenizer(None)):
        text = modelfile_text("m.gguf", tokenizer)
        assert chat_family(tokenizer).name == "plain"
        assert "{{ .Prompt }}" in text and "# The chat template was not recognised" in text


def test_parameters_and_system_prompt_are_written_with_ollama_names(tmp_path):
    path = write_modelfile(tmp_path / "gguf" / "my model.Q8_0.gguf", FakeTokenizer(CHATML, "<|im_end|>"), tmp_path / "out",
                           system="You answer in one sentence.",
                           params={"temperature": 0.7, "max_new_tokens": 128, "repetition_penalty": 1.1,
                                   "top_k": None, "stop": ["###"]})
    text = path.read_text(encoding="utf-8")
    assert path == tmp_path / "out" / "Modelfile"
    assert "FROM ./my model.Q8_0.gguf" in text
    assert 'SYSTEM """You answer in one sentence."""' in text
    for line in ("PARAMETER temperature 0.7", "PARAMETER num_predict 128", "PARAMETER repeat_penalty 1.1",
                 'PARAMETER stop "<|im_end|>"', 'PARAMETER stop "###"'):
        assert line in text.splitlines()
    assert "top_k" not in text


def test_an_unknown_parameter_or_triple_quotes_are_refused():
    with pytest.raises(StudioError) as err:
        modelfile_text("m.gguf", FakeTokenizer(CHATML), params={"beam_width": 4})
    assert err.value.key == "export.modelfile.parameter" and "num_predict" in err.value.message
    with pytest.raises(StudioError) as err:
        modelfile_text("m.gguf", FakeTokenizer(CHATML), system='Say """hi"""')
    assert err.value.key == "export.modelfile.quotes" and err.value.field == "system"
