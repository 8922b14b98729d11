"""Playground generation on a tiny random Llama: streaming, the model pool, prompts, runs with adapters."""
from __future__ import annotations

import pytest

from studio.errors import StudioError
from studio.generation import GenerationSettings, ModelPool, build_prompt, stream_chat

GREEDY = GenerationSettings(max_new_tokens=8, temperature=0.0, repetition_penalty=1.0)
HELLO = [{"role": "user", "content": "Hello there"}]


class FakeWorkspace:
    """Only what generation reads: the runs table."""

    def __init__(self, runs: dict | None = None):
        self.runs = runs or {}

    def get_run(self, run_id):
        return self.runs.get(run_id)


@pytest.fixture
def counting_loader():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    calls = []

    def load(spec, ws):
        calls.append(spec)
        return AutoModelForCausalLM.from_pretrained(spec), AutoTokenizer.from_pretrained(spec)

    load.calls = calls
    return load


def test_stream_chat_yields_a_growing_answer_equal_to_plain_generate(tiny_llama_dir, counting_loader):
    import torch

    pool = ModelPool(FakeWorkspace(), loader=counting_loader)
    chunks = list(stream_chat(None, str(tiny_llama_dir), None, HELLO, GREEDY, pool=pool))
    assert chunks and chunks[-1]
    assert all(later.startswith(earlier) for earlier, later in zip(chunks, chunks[1:]))

    entry = pool.get(str(tiny_llama_dir))
    prompt = build_prompt(entry.tokenizer, HELLO)
    ids = entry.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = entry.model.generate(**ids, max_new_tokens=8, do_sample=False,
                                   pad_token_id=entry.tokenizer.eos_token_id)
    expected = entry.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert chunks[-1] == expected


def test_pool_loads_a_model_once_and_drops_the_oldest_beyond_capacity(tiny_llama_dir, counting_loader):
    pool = ModelPool(FakeWorkspace(), capacity=1, loader=counting_loader)
    first = pool.get(str(tiny_llama_dir))
    assert pool.get(str(tiny_llama_dir)) is first
    assert len(counting_loader.calls) == 1
    pool.get(str(tiny_llama_dir) + "/")  # a different key evicts the first entry
    assert pool.get(str(tiny_llama_dir)) is not first
    assert len(counting_loader.calls) == 3


def test_prompt_uses_the_models_chat_template(smollm2_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    prompt = build_prompt(tok, [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}])
    assert "Hi" in prompt and prompt.rstrip().endswith("assistant")


def test_prompt_without_a_final_user_message_is_refused(smollm2_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    with pytest.raises(StudioError, match="user message"):
        build_prompt(tok, [{"role": "assistant", "content": "hello"}])


def test_run_without_a_result_is_refused_with_a_studio_error(tiny_llama_dir, counting_loader):
    ws = FakeWorkspace({"r1": {"name": "r1", "model": str(tiny_llama_dir), "method": "lora", "result_dir": None}})
    pool = ModelPool(ws, loader=counting_loader)
    with pytest.raises(StudioError, match="no saved result"):
        next(stream_chat(ws, "ignored", "r1", HELLO, GREEDY, pool=pool))
    assert counting_loader.calls == []


def test_finished_lora_run_answers_through_its_adapter(tiny_llama_dir, counting_loader, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    peft_model.save_pretrained(tmp_path / "adapter")
    ws = FakeWorkspace({"r1": {"name": "r1", "model": str(tiny_llama_dir), "method": "lora",
                               "result_dir": str(tmp_path / "adapter")}})
    pool = ModelPool(ws, loader=counting_loader)
    chunks = list(stream_chat(ws, "ignored", "r1", HELLO, GREEDY, pool=pool))
    assert chunks
    assert counting_loader.calls == [str(tiny_llama_dir)]  # the run's own base model, not the picker's
    assert type(pool.get("ignored", "r1").model).__name__.startswith("Peft")


def test_stats_stop_strings_and_seed(tiny_llama_dir, counting_loader):
    pool = ModelPool(FakeWorkspace(), loader=counting_loader)
    stats: dict = {}
    answer = list(stream_chat(None, str(tiny_llama_dir), None, HELLO, GREEDY, pool=pool, stats=stats))[-1]
    assert stats["tokens"] == 8 and 0 < stats["first_token_s"] <= stats["seconds"] and stats["tokens_per_s"] > 0
    # A stop string taken from the greedy answer cuts the answer just before it.
    words = answer.split()
    if len(words) > 2:
        stopped = list(stream_chat(None, str(tiny_llama_dir), None, HELLO,
                                   GenerationSettings(max_new_tokens=8, do_sample=False, repetition_penalty=1.0,
                                                      stop=words[2]), pool=pool))[-1]
        assert words[2] not in stopped and answer.startswith(stopped)
    sampled = GenerationSettings(max_new_tokens=8, temperature=1.0, seed=7)
    first = list(stream_chat(None, str(tiny_llama_dir), None, HELLO, sampled, pool=pool))[-1]
    again = list(stream_chat(None, str(tiny_llama_dir), None, HELLO, sampled, pool=pool))[-1]
    assert first == again  # the same seed samples the same answer


def test_out_of_range_generation_settings_are_refused_naming_the_field():
    from studio.settings import parse_settings

    with pytest.raises(StudioError, match="gen.top_p") as info:
        parse_settings(GenerationSettings, {"top_p": 1.5}, "gen")
    assert info.value.field == "gen.top_p"
    with pytest.raises(StudioError, match="gen.temperature"):
        parse_settings(GenerationSettings, {"temperature": -0.1}, "gen")


def test_a_saved_exchange_becomes_a_chat_dataset(workspace):
    from studio.data.builder import dataset_card, load_split
    from studio.generation import cut_at_stop, save_exchange

    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"}]
    assert save_exchange(workspace, "playground", chat, "smollm2") == "playground"
    save_exchange(workspace, "playground", chat + [{"role": "user", "content": "Bye"},
                                                   {"role": "assistant", "content": "Goodbye."}], "smollm2")
    assert dataset_card(workspace, "playground")["format"] == "chat"
    rows = load_split(workspace, "playground", "train")
    assert len(rows) == 2 and sorted(r["messages"][-1]["content"] for r in rows) == ["Goodbye.", "Hello! How can I help?"]
    with pytest.raises(StudioError, match="no answer to save"):
        save_exchange(workspace, "playground", [{"role": "user", "content": "Hi"}], "smollm2")
    assert cut_at_stop("Answer. User: more", ["User:"]) == "Answer. "


def test_the_engine_chats_and_keeps_the_exchange(workspace, tiny_llama_dir):
    from studio.engine import Engine

    engine = Engine(workspace, start_jobs=False)
    try:
        settings = GenerationSettings(max_new_tokens=3, do_sample=False)
        chat = [{"role": "user", "content": "Hi"}]
        first = list(engine.chat(str(tiny_llama_dir), None, chat, settings))
        again = list(engine.chat(str(tiny_llama_dir), None, chat, settings))
        assert first and first[-1] == again[-1]  # greedy: the same answer from the model kept loaded
        assert len(engine._chat_pool._models) == 1
        assert engine.save_exchange("talk", chat + [{"role": "assistant", "content": "Hello"}], "tiny") == "talk"
    finally:
        engine.shutdown()


def test_a_throttled_stream_shows_at_most_one_item_per_interval_and_always_the_last():
    from studio.generation import throttled

    times = iter([0.0, 0.1, 0.2, 0.3, 0.35, 0.9, 0.95])
    shown = list(throttled(["a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg"], every_s=0.25,
                           clock=lambda: next(times)))
    assert shown == ["a", "abcd", "abcdef", "abcdefg"]


def test_a_throttled_stream_loses_nothing_when_items_come_slowly_or_not_at_all():
    from studio.generation import throttled

    times = iter([0.0, 1.0, 2.0])
    assert list(throttled(["a", "ab", "abc"], every_s=0.25, clock=lambda: next(times))) == ["a", "ab", "abc"]
    assert list(throttled([], every_s=0.25)) == []
    assert list(throttled(["only"], every_s=0.25)) == ["only"]
