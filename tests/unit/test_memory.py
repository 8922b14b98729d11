"""studio.memory: exact trainable counts on meta models, the memory estimate's shape, the picker and the recommender."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from studio.config import TrainConfig
from studio.errors import StudioError
from studio.memory import GOALS, GiB, count_parameters, device_memory, estimate_training_memory
from studio.memory_picker import method_table, recommend
from studio.methods import METHODS, PeftMethod


def tiny_llama():
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=256, max_position_embeddings=128, tie_word_embeddings=True)


def tiny_bert():
    from transformers import BertConfig

    return BertConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      vocab_size=128, max_position_embeddings=64)


PEFT_ON_CPU = [n for n, m in METHODS.items() if issubclass(m, PeftMethod) and not m.load_kwargs(m.settings_cls())]


@pytest.mark.parametrize("name", PEFT_ON_CPU)
def test_meta_count_equals_peft_count_on_a_real_model(name):
    import torch
    from transformers import AutoModelForCausalLM

    method = METHODS.get(name)
    torch.manual_seed(0)
    real = method.prepare(AutoModelForCausalLM.from_config(tiny_llama()), method.settings_cls())
    trainable, total = real.get_nb_trainable_parameters()
    assert count_parameters(tiny_llama(), name) == {"trainable": trainable, "total": total,
                                                    "percent": pytest.approx(100 * trainable / total)}


def test_lora_count_matches_the_rank_formula():
    from studio.methods.lora import LoraSettings

    # all-linear on 2 layers: q,o 64x64; k,v 64x32; gate,up 64x128; down 128x64 -> r*(in+out) each.
    per_layer = 2 * (64 + 64) + 2 * (64 + 32) + 2 * (64 + 128) + (128 + 64)
    counts = count_parameters(tiny_llama(), "lora", LoraSettings(r=4))
    assert counts["trainable"] == 2 * 4 * per_layer


def test_full_trains_every_parameter():
    counts = count_parameters(tiny_llama(), "full")
    assert counts["trainable"] == counts["total"] and counts["percent"] == 100.0


def test_qlora_counts_like_its_lora_part():
    from studio.methods.lora import LoraSettings

    qlora = METHODS.get("qlora").settings_cls(r=8)
    assert count_parameters(tiny_llama(), "qlora", qlora) == count_parameters(tiny_llama(), "lora", LoraSettings(r=8))


def estimate(method="lora", **kw):
    args = dict(batch_size=2, seq_len=64, precision="bf16", gradient_checkpointing=False, device_kind="cpu")
    return estimate_training_memory(tiny_llama(), method, None, **{**args, **kw})


def test_estimate_grows_linearly_with_batch():
    one, two, three = (estimate(batch_size=b) for b in (1, 2, 3))
    assert two["total"] - one["total"] == three["total"] - two["total"] > 0
    assert two["activations"] == 2 * one["activations"] and three["logits"] == 3 * one["logits"]


def test_gradient_checkpointing_lowers_activations():
    assert estimate(gradient_checkpointing=True)["activations"] < estimate()["activations"]


def test_qlora_weights_are_smaller_than_loras():
    assert estimate("qlora")["weights"] < estimate("lora")["weights"]


def test_full_needs_gradients_and_adam_for_every_weight():
    full, lora = estimate("full"), estimate("lora")
    assert full["optimizer"] == 2 * full["gradients"] == 8 * count_parameters(tiny_llama(), "full")["total"]
    assert full["total"] > lora["total"]


def recipe(method_settings=None, batch=8, micro=0):
    return SimpleNamespace(stage="sft", method=method_settings,
                           train=TrainConfig(batch_size=batch, precision="bf16", micro_batch_size=micro),
                           data=SimpleNamespace(max_length=128))


def test_method_table_lists_every_registered_method_and_refuses_llama_adapter_on_bert():
    rows = method_table(tiny_bert(), None, recipe(), memory={"kind": "cpu", "total_bytes": 64 * GiB,
                                                             "free_bytes": 64 * GiB})
    assert [r["name"] for r in rows] == METHODS.names()
    by_name = {r["name"]: r for r in rows}
    assert by_name["llama_adapter"]["applicable"] is False and "Llama" in by_name["llama_adapter"]["reason"]
    assert by_name["full"]["applicable"] and by_name["full"]["fits"]
    assert by_name["full"]["percent"] == 100.0


def test_method_table_says_what_would_make_a_plan_fit():
    small, big = (estimate("full", batch_size=b, seq_len=128)["total"] for b in (1, 256))
    free = int((small + big) / 2 / 0.9)  # batch 1 fits, batch 256 does not
    memory = {"kind": "cpu", "total_bytes": free, "free_bytes": free}
    rows = method_table(tiny_llama(), None, recipe(batch=256, micro=256), memory=memory)
    full = next(r for r in rows if r["name"] == "full")
    assert full["fits"] is False and "batch size" in full["advice"]
    assert full["adapter_size_on_disk"] == 4 * full["trainable"]
    # Left to the studio, the same batch runs in passes small enough to fit (studio.memory_plan).
    planned = next(r for r in method_table(tiny_llama(), None, recipe(batch=256), memory=memory) if r["name"] == "full")
    assert planned["fits"] and planned["micro_batch_size"] < 256 and planned["passes"] * planned["micro_batch_size"] == 256


def _rows(**peaks_gb) -> list[dict]:
    """method_table-like rows: name -> estimated peak in GB (None: not applicable to the stage)."""
    return [{"name": n, "title": n, "applicable": gb is not None, "fits": gb is not None and gb * GiB <= 0.9 * 20 * GiB,
             "estimated_total": None if gb is None else int(gb * GiB)} for n, gb in peaks_gb.items()]


MEM = {"kind": "cpu", "free_bytes": 20 * GiB, "total_bytes": 24 * GiB}


def test_recommend_follows_the_seeds_advice():
    small = _rows(lora=3.4, qlora=3.0, full=4.1, ia3=2.6, prompt_tuning=2.6)
    assert recommend(small, "style", 2_000, 135_000_000, MEM)["method"] == "lora"
    assert recommend(small, "style", 2_000, 135_000_000, MEM)["reason"] == "default"
    huge = _rows(lora=60, qlora=40, full=300, prompt_tuning=17)
    assert recommend(huge, "style", 2_000, 70_000_000_000, MEM)["method"] == "prompt_tuning"
    mid = _rows(lora=25, qlora=9, full=60)
    assert recommend(mid, "style", 2_000, 7_000_000_000, MEM)["method"] == "qlora"
    assert recommend(_rows(lora=6, qlora=5, full=16), "new_task", 200_000, 1_000_000_000, MEM)["method"] == "full"
    assert recommend(small, "many_tasks", 2_000, 1_000_000_000, MEM)["method"] == "lora"


def test_the_suggestion_reads_the_same_estimate_as_the_verdict():
    """A 135M model that fits is never called huge, and the sentence quotes the row's own peak and free memory."""
    small = _rows(lora=3.4, qlora=3.0, full=4.1, ia3=2.6, prompt_tuning=2.63)
    pick = recommend(small, "least_memory", 245, 135_000_000, MEM)
    assert pick["method"] == "ia3" and pick["reason"] == "least_memory"
    assert pick["params"]["peak"] == "2.6 GB" and pick["params"]["free"] == "20.0 GB"
    assert pick["top"] == ["ia3", "prompt_tuning", "qlora"]
    assert recommend(small, "style", 245, 135_000_000, MEM)["top"] == ["lora", "qlora", "full"]
    nothing = recommend(_rows(lora=30, qlora=25, full=90), "style", 10, 7_000_000_000, MEM)
    assert nothing["reason"] == "nothing_fits" and nothing["method"] == "qlora" and nothing["top"] == ["qlora"]


def test_recommendations_only_name_methods_that_serve_the_stage():
    classify = _rows(lora=60, qlora=None, full=300, prompt_tuning=None, feature_extraction=12)
    assert recommend(classify, "style", 2_000, 70_000_000_000, MEM)["method"] == "feature_extraction"
    cpt = _rows(lora=25, qlora=9, full=60, prompt_tuning=None)
    assert recommend(cpt, "style", 2_000, 7_000_000_000, MEM)["method"] == "qlora"
    for goal in GOALS:
        pick = recommend(_rows(lora=25, qlora=None, full=60, ia3=8), goal, 100_000, 3_000_000_000, MEM)
        assert pick["method"] in ("ia3",)
    with pytest.raises(StudioError) as error:
        recommend(cpt, "huge_model", 1, 1, MEM)
    assert error.value.field == "goal"


def test_device_memory_reports_this_machine():
    mem = device_memory()
    assert mem["kind"] in ("cuda", "cpu") and 0 < mem["free_bytes"] <= mem["total_bytes"]


MEMORY = {"kind": "cpu", "total_bytes": 64 * GiB, "free_bytes": 32 * GiB}


def test_the_picker_counts_a_classifier_and_a_seq2seq_model_with_their_own_heads():
    from transformers import T5Config

    from studio.memory import model_shape

    plan = SimpleNamespace(stage="classify", method=None, data=SimpleNamespace(max_length=64),
                           train=TrainConfig(batch_size=2, precision="fp32"))
    rows = {r["name"]: r for r in method_table(tiny_bert(), None, plan, memory=MEMORY)}
    assert rows["feature_extraction"]["applicable"] and rows["feature_extraction"]["trainable"] == 32 * 2 + 2
    assert rows["lora"]["applicable"] and rows["lora"]["fits"]
    assert not rows["prompt_tuning"]["applicable"]  # prompt methods serve sft only, and the table says so
    assert model_shape(tiny_bert(), "classify")["vocab"] == 2  # a classifier scores its labels, not the vocabulary

    t5 = T5Config(d_model=32, d_ff=64, num_layers=2, num_decoder_layers=3, num_heads=2, d_kv=16, vocab_size=128)
    plan.stage = "seq2seq"
    rows = {r["name"]: r for r in method_table(t5, None, plan, memory=MEMORY)}
    assert rows["full"]["applicable"] and rows["lora"]["applicable"] and rows["lora"]["trainable"] > 0
    assert rows["full"]["trainable"] == model_shape(t5, "seq2seq")["params"]
    assert model_shape(t5, "seq2seq")["layers"] == 5  # encoder and decoder both keep activations
