"""The peft-based methods (LoRA and variants, AdaLoRA, IA3, LoHa, LoKr, VeRA, OFT) on a tiny random Llama.

No training loop here: each test builds a 2-layer Llama from a config and checks what `prepare`,
`optimizer_groups`, `callbacks` and `save`/`load_result` do, and that bad settings are refused
with an error naming the field.
"""
from __future__ import annotations

import pytest
import torch

from studio.errors import StudioError
from studio.methods import METHODS
from studio.settings import parse_settings

PEFT_METHODS = ["lora", "adalora", "ia3", "loha", "lokr", "vera", "oft"]
RANK_FIELD = {"lora": "r", "adalora": "init_r", "loha": "r", "lokr": "r", "vera": "r"}


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, vocab_size=128))


def settings(name: str, **values):
    return parse_settings(METHODS.get(name).settings_cls, values, "method")


def prepared(name: str, **values):
    return METHODS.get(name).prepare(tiny_llama(), settings(name, **values))


class NoTokenizer:
    def save_pretrained(self, path):
        pass


@pytest.mark.parametrize("name", PEFT_METHODS)
def test_only_adapter_parameters_train_and_the_count_matches_peft(name):
    model = prepared(name)
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and not [n for n in trainable if "base_layer" in n or "embed_tokens" in n or "norm." in n]
    assert sum(trainable.values()) == model.get_nb_trainable_parameters()[0]


@pytest.mark.parametrize("name", PEFT_METHODS)
def test_every_peft_method_declares_a_title_a_summary_and_mergeability(name):
    method = METHODS.get(name)
    assert method.title and method.summary.endswith(".") and method.mergeable is True


@pytest.mark.parametrize("name", sorted(RANK_FIELD))
def test_a_rank_larger_than_the_layer_is_refused_naming_the_field(name):
    field = RANK_FIELD[name]
    with pytest.raises(StudioError) as exc:
        prepared(name, **{field: 512, **({"target_r": 8} if name == "adalora" else {})})
    assert exc.value.field == f"method.{field}"


@pytest.mark.parametrize("name", PEFT_METHODS)
def test_target_modules_that_match_nothing_list_the_available_layers(name):
    with pytest.raises(StudioError, match="q_proj.*down_proj") as exc:
        prepared(name, target_modules="c_attn")
    assert exc.value.field == "method.target_modules"


@pytest.mark.parametrize("name", ["lora", "loha", "lokr", "adalora"])
def test_a_zero_rank_is_refused_before_any_model_is_loaded(name):
    with pytest.raises(StudioError) as exc:
        settings(name, **{RANK_FIELD[name]: 0})
    assert exc.value.field == f"method.{RANK_FIELD[name]}"


def test_lora_plus_gives_lora_b_a_higher_learning_rate():
    model = prepared("lora", loraplus_lr_ratio=16)
    groups = METHODS.get("lora").optimizer_groups(model, settings("lora", loraplus_lr_ratio=16), 1e-4)
    by_id = {id(p): g["lr"] for g in groups for p in g["params"]}
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert by_id[id(p)] == pytest.approx(16e-4 if "lora_B" in n else 1e-4)
    assert METHODS.get("lora").optimizer_groups(model, settings("lora"), 1e-4) is None


def test_lora_plus_ratio_below_one_is_refused():
    with pytest.raises(StudioError) as exc:
        settings("lora", loraplus_lr_ratio=0.5)
    assert exc.value.field == "method.loraplus_lr_ratio"


def test_rslora_and_dora_reach_the_peft_config():
    model = prepared("lora", use_rslora=True, use_dora=True)
    config = model.peft_config["default"]
    assert config.use_rslora and config.use_dora
    assert any("lora_magnitude_vector" in n for n, p in model.named_parameters() if p.requires_grad)


@pytest.mark.parametrize("init", ["pissa", "olora"])
def test_pissa_and_olora_results_work_on_the_original_base_model(init, tmp_path):
    method = METHODS.get("lora")
    model = method.prepare(tiny_llama(), settings("lora", r=4, init=init))
    with torch.no_grad():  # stand-in for training: move every adapter weight
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    ids = torch.randint(0, 128, (1, 8))
    model.eval()
    with torch.no_grad():
        trained = model(ids).logits
    reloaded = method.load_result(tiny_llama(), method.save(model, NoTokenizer(), tmp_path)).eval()
    with torch.no_grad():
        assert torch.allclose(trained, reloaded(ids).logits, atol=1e-4)


def test_pissa_with_dora_is_refused():
    with pytest.raises(StudioError) as exc:
        settings("lora", init="pissa", use_dora=True)
    assert exc.value.field == "method.init"


def test_ia3_feedforward_layers_must_be_among_the_targets():
    with pytest.raises(StudioError) as exc:
        prepared("ia3", target_modules="k_proj,v_proj", feedforward_modules="down_proj")
    assert exc.value.field == "method.feedforward_modules"


def test_oft_block_size_that_does_not_divide_a_layer_is_refused():
    with pytest.raises(StudioError, match="divide") as exc:
        prepared("oft", oft_block_size=48)
    assert exc.value.field == "method.oft_block_size"
    with pytest.raises(StudioError):
        settings("oft", oft_block_size=0, r=0)


def test_adalora_settings_that_leave_no_pruning_phase_are_refused():
    with pytest.raises(StudioError, match="target_r"):
        settings("adalora", init_r=4, target_r=8)
    with pytest.raises(StudioError) as exc:
        settings("adalora", tinit=0.5, tfinal=0.5)
    assert exc.value.field == "method.tfinal"


def test_adalora_callback_sets_the_real_step_count_and_prunes_to_the_target_budget():
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from studio.methods.adalora import schedule

    method, s = METHODS.get("adalora"), settings("adalora", init_r=6, target_r=2, tinit=0.0, tfinal=0.0)
    model = method.prepare(tiny_llama(), s)
    (callback,) = method.callbacks(model, s)
    state, args, control = TrainerState(), TrainingArguments(output_dir="unused", use_cpu=True), TrainerControl()
    state.max_steps = 4
    callback.on_train_begin(args, state, control)
    assert model.peft_config["default"].total_step == 4
    ids = torch.randint(0, 128, (2, 8))
    for step in range(4):
        model(input_ids=ids, labels=ids).loss.backward()
        state.global_step = step
        callback.on_optimizer_step(args, state, control)
        model.zero_grad()
    ranks = model.peft_config["default"].rank_pattern
    assert ranks and sum(sum(mask) for mask in ranks.values()) <= 2 * len(ranks)
    assert sum(schedule(settings("adalora", tinit=0.4, tfinal=0.4), 3)) < 3  # a short run keeps a pruning step
