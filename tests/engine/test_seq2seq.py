"""Seq2seq on a tiny random T5 (SmolLM2 tokenizer): trains with full and LoRA, reports ROUGE, reloads and generates."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from studio.config import parse_recipe
from studio.errors import StudioError
from studio.methods import METHODS
from studio.training import prepare_run

from studio.memory import count_parameters
from tests.engine.test_training import logged_trainable, run_in_process

PAIRS = [("The meeting moved from Monday to Friday because the room was booked.", "Meeting moved to Friday."),
         ("La fotosíntesis convierte la luz en energía química en las hojas.", "Fotosíntesis: luz a energía."),
         ("Sales rose ten percent in the spring thanks to the new shop.", "Sales up ten percent."),
         ("The train to Madrid was late by two hours after a storm.", "Train two hours late."),
         ("Ana finished the report and sent it to the whole team.", "Ana sent the report.")] * 4


@pytest.fixture(scope="module")
def tiny_t5_dir(tmp_path_factory, smollm2_tokenizer_dir) -> Path:
    """A 2-layer random T5 (d_model 32) whose vocabulary and special ids are the SmolLM2 tokenizer's."""
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    config = T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                      num_heads=4, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      bos_token_id=tok.bos_token_id, decoder_start_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-t5")
    T5ForConditionalGeneration(config).save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


@pytest.fixture
def pairs_file(tmp_path) -> Path:
    path = tmp_path / "summaries.jsonl"
    path.write_text("".join(json.dumps({"document": s, "summary": t}) + "\n" for s, t in PAIRS))
    return path


def seq2seq_recipe(model_dir, dataset, method="lora", **data):
    return parse_recipe({"name": f"s2s-{method}", "model": str(model_dir), "stage": "seq2seq",
                         "method": {"name": method},
                         "data": {"dataset": str(dataset), "max_length": 32, "validation": 0.2, **data},
                         "train": {"max_steps": 3, "batch_size": 4, "lr": 5e-3, "eval_every": 3, "save_every": 3,
                                   "precision": "fp32"}})


def generate(model, tokenizer, text: str) -> list[int]:
    ids = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return model.generate(**ids, max_new_tokens=6, do_sample=False)[0].tolist()


def first_logits(model, tokenizer, text: str) -> torch.Tensor:
    ids = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return model(**ids, decoder_input_ids=torch.tensor([[tokenizer.pad_token_id]])).logits[0, -1]


@pytest.mark.parametrize("method", ["full", "lora"])
def test_seq2seq_trains_reports_rouge_and_the_result_reloads_and_generates(method, workspace, tiny_t5_dir,
                                                                            pairs_file):
    from peft import PeftModel
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    _, events, result = run_in_process(workspace, seq2seq_recipe(tiny_t5_dir, pairs_file, method,
                                                                 system_prompt="summarize: "))
    assert [e["step"] for e in events if "loss" in e][-1] == 3
    assert logged_trainable(events) == count_parameters(tiny_t5_dir, method, task="seq2seq")["trainable"]
    evals = [e for e in events if "eval_rougeL" in e]
    assert evals and all(0.0 <= evals[-1][k] <= 1.0 for k in ("eval_rouge1", "eval_rouge2", "eval_rougeL",
                                                               "eval_exact_match"))
    assert "eval_loss" in evals[-1] and "eval_rougeL" in result
    result_dir = Path(result["result_dir"])
    assert result_dir.name == METHODS.get(method).result_kind

    tok = AutoTokenizer.from_pretrained(result_dir)
    text = "summarize: " + PAIRS[0][0]
    base = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5_dir)
    if method == "full":
        tuned = AutoModelForSeq2SeqLM.from_pretrained(result_dir)
    else:
        tuned = PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(tiny_t5_dir), str(result_dir))
        assert type(tuned).__name__ == "PeftModelForSeq2SeqLM"
    assert not torch.allclose(first_logits(base, tok, text), first_logits(tuned, tok, text), atol=1e-4)
    out = generate(tuned, tok, text)
    assert len(out) > 1 and out[0] == tok.pad_token_id  # decoding starts from decoder_start and runs


def test_task_prefix_comes_before_every_source_and_targets_end_with_eos(workspace, tiny_t5_dir, pairs_file):
    from transformers import AutoTokenizer

    from studio.stages.seq2seq import build_seq2seq_datasets

    tok = AutoTokenizer.from_pretrained(tiny_t5_dir)
    recipe = seq2seq_recipe(tiny_t5_dir, pairs_file, system_prompt="summarize: ", validation=0.0, max_length=16)
    train, val, _ = build_seq2seq_datasets(recipe, tok, workspace.home)
    assert val is None and len(train) == len(PAIRS)
    for row in train:
        assert tok.decode(row["input_ids"]).startswith("summarize: ")
        assert len(row["input_ids"]) <= 16 and row["labels"][-1] == tok.eos_token_id


def test_a_studio_dataset_of_format_seq2seq_is_accepted_and_other_formats_refused(workspace, tiny_t5_dir, pairs_file,
                                                                                  tmp_path):
    from studio.data.builder import ImportRequest, import_dataset
    from studio.data.cleaning import SplitConfig

    import_dataset(workspace, ImportRequest(source=str(pairs_file), name="sums", format="seq2seq",
                                            split=SplitConfig(validation=0.0)))
    prepare_run(workspace, seq2seq_recipe(tiny_t5_dir, "sums"))
    faq = tmp_path / "faq.jsonl"
    faq.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "d"}\n')
    import_dataset(workspace, ImportRequest(source=str(faq), name="faq", split=SplitConfig(validation=0.0)))
    with pytest.raises(StudioError, match="needs source/target pairs"):
        prepare_run(workspace, seq2seq_recipe(tiny_t5_dir, "faq"))
    with pytest.raises(StudioError, match="needs a source column"):
        prepare_run(workspace, seq2seq_recipe(tiny_t5_dir, faq))


def test_a_decoder_only_model_is_refused_before_the_run(workspace, tiny_llama_dir, pairs_file):
    with pytest.raises(StudioError, match="'llama' is decoder-only — use stage sft") as error:
        prepare_run(workspace, seq2seq_recipe(tiny_llama_dir, pairs_file))
    assert error.value.field == "model"
    assert workspace.list_runs() == []
