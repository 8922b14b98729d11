"""Memory per device when several devices train one run (`resources`): each strategy's share, a CPU's processes
adding up in its one memory, and the picker's advice to split a model that fits no single GPU."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from studio.config import ResourcesConfig, TrainConfig
from studio.memory import GiB, estimate_training_memory, per_device
from studio.memory_picker import method_table

PARTS = {"weights": 400, "gradients": 400, "optimizer": 800, "activations": 100, "logits": 10}


def test_each_strategy_keeps_its_share_on_a_device():
    assert per_device(PARTS, "ddp", 1) == PARTS
    ddp = per_device(PARTS, "ddp", 4, layers=10)
    assert ddp["weights"] == 400 and ddp["gradients"] == 800 and ddp["optimizer"] == 800  # + DDP's buckets
    zero2 = per_device(PARTS, "deepspeed-zero2", 4, layers=10)
    assert zero2["weights"] == 400 and zero2["gradients"] == 100 and zero2["optimizer"] == 200
    for strategy in ("fsdp", "deepspeed-zero3"):
        split = per_device(PARTS, strategy, 4, layers=10)
        assert split["weights"] == 400 / 4 + 2 * 400 / 10 and split["optimizer"] == 200
        assert split["activations"] == 100  # each device still runs its own batch


def llama_1b():
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32,
                       num_key_value_heads=32, vocab_size=49152, max_position_embeddings=2048,
                       tie_word_embeddings=True)


def test_a_cpus_processes_add_up_in_its_memory():
    one = estimate_training_memory(llama_1b(), "lora", None, 1, 128, "bf16", device_kind="cpu")["total"]
    two = estimate_training_memory(llama_1b(), "lora", None, 1, 128, "bf16", device_kind="cpu", world=2,
                                   processes=2)["total"]
    assert two > 2 * one * 0.99


def recipe(resources: ResourcesConfig):
    return SimpleNamespace(stage="sft", method=None, resources=resources, data=SimpleNamespace(max_length=128),
                           train=TrainConfig(batch_size=1, precision="bf16", gradient_checkpointing=True))


def test_a_model_too_big_for_one_gpu_is_advised_to_split_between_all_of_them(monkeypatch):
    import studio.memory_picker as picker

    monkeypatch.setattr(picker, "_gpu_count", lambda: 4)
    memory = {"kind": "cuda", "total_bytes": 16 * GiB, "free_bytes": 16 * GiB}
    alone = method_table(llama_1b(), None, recipe(ResourcesConfig()), memory=memory, only="full")[0]
    assert not alone["fits"] and any(kind == "strategy" for kind, _ in alone["fixes"]), alone["fixes"]
    assert "fsdp on 4 GPUs" in alone["advice"]
    split = method_table(llama_1b(), None, recipe(ResourcesConfig(devices=4, strategy="fsdp")), memory=memory,
                         only="full")[0]
    assert split["fits"] and split["estimated_total"] < alone["estimated_total"] / 2


def test_the_advice_words_the_split_in_spanish():
    from studio.ui.i18n import Texts
    from studio.ui.method_picker import fixes_text

    assert fixes_text(Texts.load(), "es", [("strategy", "fsdp x 4")]) == "fsdp x 4 GPU repartiéndose el modelo"


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_one_device_estimates_as_before(strategy):
    args = (llama_1b(), "lora", None, 2, 128, "bf16")
    assert estimate_training_memory(*args, device_kind="cuda", strategy=strategy, world=1) == \
        estimate_training_memory(*args, device_kind="cuda")


def test_each_strategy_becomes_the_trainers_own_arguments(tmp_path):
    from transformers import TrainingArguments

    from studio.config import parse_recipe
    from studio.stages.trainer_setup import common_training_args, sharding_args

    def recipe(**resources):
        return parse_recipe({"name": "r", "data": {"dataset": "d"}, "resources": resources})

    assert sharding_args(recipe()) == {} and sharding_args(recipe(devices=2)) == {}  # DDP: torchrun is enough
    assert sharding_args(recipe(devices=2, strategy="fsdp"))["fsdp_config"]["version"] == 2
    assert sharding_args(recipe(devices=2, strategy="deepspeed-zero3"))["deepspeed"]["zero_optimization"]["stage"] == 3
    assert sharding_args(recipe(devices=1, strategy="fsdp")) == {}  # one device splits nothing
    TrainingArguments(**common_training_args(recipe(devices=2), tmp_path, has_eval=False))  # accepted as is
