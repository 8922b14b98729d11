"""Distillation on tiny random Llamas that share the real SmolLM2 tokenizer: the student trains, moves toward
the teacher, and a teacher it cannot learn from (other vocabulary, bad settings) is refused before any run."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from studio.config import parse_recipe
from studio.errors import StudioError
from studio.training import prepare_run

from tests.engine.test_training import run_in_process


def build_tiny_llama(out: Path, tokenizer, seed: int, hidden: int = 64, init_std: float = 0.02) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=True, initializer_range=init_std)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, tiny_llama_dir) -> Path:
    """Another tiny Llama (other seed, wider, sharper predictions) with the same tokenizer as the student."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    return build_tiny_llama(tmp_path_factory.mktemp("teacher"), tok, seed=7, hidden=96, init_std=0.2)


def distill_recipe(student: Path, teacher: str, method: str = "lora", distill: dict | None = None, **train):
    return parse_recipe({
        "name": f"distill-{method}", "model": str(student), "stage": "distill", "method": {"name": method},
        "distill": {"teacher": teacher, **(distill or {})},
        "data": {"dataset": "sample-format-tutor", "max_length": 96, "validation": 0.05},
        "train": {"max_steps": 3, "batch_size": 4, "lr": 5e-3, "eval_every": 2, "save_every": 2,
                  "precision": "fp32", **train},
    })


def fixed_batch_kl(student, teacher, batch: dict) -> float:
    """KL(teacher || student) at T=1 per response token, on one fixed batch."""
    from studio.stages.distill import distillation_loss

    with torch.no_grad():
        s = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        t = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return distillation_loss(s, t, batch["labels"], temperature=1.0, alpha=0.0)[2].item()


@pytest.mark.parametrize("method", ["lora", "full"])
def test_distillation_trains_and_logs_the_loss_and_its_parts(method, workspace, tiny_llama_dir, teacher_dir):
    _, events, result = run_in_process(workspace, distill_recipe(tiny_llama_dir, str(teacher_dir), method))
    steps = [e for e in events if "loss" in e]
    assert [e["step"] for e in steps][-1] == 3 and all(e["loss"] == e["loss"] for e in steps)
    assert all("distill_kl" in e and "distill_ce" in e for e in steps)
    assert any("eval_loss" in e for e in events)
    assert result["result_dir"] and not result["stopped"]


def test_with_alpha_zero_the_student_moves_toward_the_teacher(workspace, tiny_llama_dir, teacher_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from studio.methods import METHODS
    from studio.stages.sft import build_sft_datasets

    recipe = distill_recipe(tiny_llama_dir, str(teacher_dir), "full", {"alpha": 0.0, "temperature": 1.0},
                            max_steps=10, lr=1e-2, scheduler="constant", eval_every=100, save_every=100)
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    train, _ = build_sft_datasets(recipe, tok, workspace.home)
    batch = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id)([train[i] for i in range(8)])
    teacher = AutoModelForCausalLM.from_pretrained(teacher_dir).eval()
    before = fixed_batch_kl(AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval(), teacher, batch)

    _, events, result = run_in_process(workspace, recipe)
    student = METHODS.get("full").load_result(AutoModelForCausalLM.from_pretrained(tiny_llama_dir),
                                              Path(result["result_dir"])).eval()
    after = fixed_batch_kl(student, teacher, batch)
    print(f"KL(teacher||student) on a fixed batch: before {before:.4f}, after {after:.4f}")
    # The random teacher is wider than the student, so part of the gap cannot close; the trend must be clear.
    assert after < 0.95 * before
    kls = [e["distill_kl"] for e in events if "distill_kl" in e]
    assert kls[-1] < kls[0]


def test_a_finished_run_can_be_the_teacher(workspace, tiny_llama_dir, teacher_dir):
    from tests.engine.test_training import tiny_recipe

    teacher_run, _, done = run_in_process(workspace, tiny_recipe(teacher_dir, "lora"))
    with pytest.raises(StudioError, match="pick a completed run"):  # still 'queued': no job manager here
        prepare_run(workspace, distill_recipe(tiny_llama_dir, f"run:{teacher_run}"))
    workspace.update_run(teacher_run, status="completed", result_dir=done["result_dir"])  # what the manager does
    _, events, result = run_in_process(workspace, distill_recipe(tiny_llama_dir, f"run:{teacher_run}", max_steps=2))
    assert result["result_dir"] and [e["step"] for e in events if "loss" in e][-1] == 2
    with pytest.raises(StudioError, match="does not exist") as info:
        prepare_run(workspace, distill_recipe(tiny_llama_dir, "run:no-such-run"))
    assert info.value.field == "distill.teacher"


def test_a_teacher_with_another_vocabulary_is_refused_before_the_run(workspace, tiny_llama_dir, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(97)]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    other_tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>",
                                        eos_token="</s>", pad_token="</s>")
    other = build_tiny_llama(tmp_path / "other-family", other_tok, seed=1)
    with pytest.raises(StudioError, match=r"share a tokenizer: teacher has 100 tokens, student 49152") as info:
        prepare_run(workspace, distill_recipe(tiny_llama_dir, str(other)))
    assert info.value.field == "distill.teacher" and workspace.list_runs() == []


def test_same_size_vocabulary_with_other_ids_is_refused(tiny_llama_dir):
    from transformers import AutoTokenizer

    from studio.stages.distill import check_same_vocabulary

    student = AutoTokenizer.from_pretrained(tiny_llama_dir)
    check_same_vocabulary(AutoTokenizer.from_pretrained(tiny_llama_dir), student)

    class Swapped:  # the student's vocabulary with two ids exchanged
        def __len__(self):
            return len(student)

        def get_vocab(self):
            vocab = dict(student.get_vocab())
            a, b = (tok for tok, i in vocab.items() if i in (0, 1))
            vocab[a], vocab[b] = vocab[b], vocab[a]
            return vocab

    with pytest.raises(StudioError, match="same number of tokens|both have 49152 tokens but token"):
        check_same_vocabulary(Swapped(), student)


@pytest.mark.parametrize("settings, field", [({"temperature": 0}, "distill.temperature"),
                                             ({"temperature": -1.5}, "distill.temperature"),
                                             ({"alpha": 1.5}, "distill.alpha"),
                                             ({"tempreature": 2}, "distill.tempreature")])
def test_bad_distill_settings_are_refused_naming_the_field(settings, field, workspace, tiny_llama_dir, teacher_dir):
    with pytest.raises(StudioError) as info:
        prepare_run(workspace, distill_recipe(tiny_llama_dir, str(teacher_dir), distill=settings))
    assert info.value.field == field and field in str(info.value)
    assert workspace.list_runs() == []


def test_a_missing_teacher_is_refused(workspace, tiny_llama_dir):
    with pytest.raises(StudioError) as info:
        prepare_run(workspace, parse_recipe({"name": "d", "model": str(tiny_llama_dir), "stage": "distill",
                                             "data": {"dataset": "sample-format-tutor"}}))
    assert info.value.field == "distill.teacher"


def test_a_smaller_student_keeps_some_of_the_models_layers_and_is_saved_whole(workspace, tiny_llama_dir, teacher_dir):
    from transformers import AutoConfig

    recipe = distill_recipe(tiny_llama_dir, str(teacher_dir), "full", distill={"student_layers": 1}, max_steps=2)
    _, events, result = run_in_process(workspace, recipe)
    assert any("Student: 1 of the model's 2 layers (0)" in e.get("message", "") for e in events)
    assert AutoConfig.from_pretrained(result["result_dir"]).num_hidden_layers == 1
    assert AutoConfig.from_pretrained(tiny_llama_dir).num_hidden_layers == 2  # the model it came from is untouched


@pytest.mark.parametrize("method, keep, words", [("lora", 1, "needs method 'full'"), ("full", 2, "has 2 layers")])
def test_a_smaller_student_it_cannot_make_is_refused_before_the_run(method, keep, words, workspace, tiny_llama_dir,
                                                                   teacher_dir):
    with pytest.raises(StudioError) as info:
        prepare_run(workspace, distill_recipe(tiny_llama_dir, str(teacher_dir), method,
                                              distill={"student_layers": keep}))
    assert info.value.field == "distill.student_layers" and words in str(info.value)
    assert workspace.list_runs() == []


def test_the_memory_estimate_counts_the_teacher_and_the_smaller_student(workspace, tiny_llama_dir, teacher_dir):
    from studio.memory import load_config, model_shape
    from studio.memory_picker import method_table

    memory = {"kind": "cpu", "free_bytes": 8 * 2**30, "total_bytes": 16 * 2**30}
    teacher = model_shape(load_config(teacher_dir))["params"] * 4  # float32 on a CPU

    def full_row(distill):
        recipe = distill_recipe(tiny_llama_dir, str(teacher_dir), "full", distill=distill)
        return method_table(str(tiny_llama_dir), workspace, recipe, memory=memory, only="full")[0]

    whole, smaller = full_row({}), full_row({"student_layers": 1})
    assert whole["frozen_bytes"] == smaller["frozen_bytes"] == teacher
    assert smaller["trainable"] < whole["trainable"]  # one of the two layers
    from studio.memory_plan import plan_memory

    recipe = distill_recipe(tiny_llama_dir, str(teacher_dir), "full")
    student_alone = plan_memory(load_config(tiny_llama_dir), recipe, memory)["estimate_bytes"]
    assert whole["estimated_total"] == student_alone + teacher
