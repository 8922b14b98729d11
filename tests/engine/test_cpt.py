"""Continued pretraining on raw text: documents are packed into blocks and every token is learnt."""
from __future__ import annotations

import pytest

from studio.config import parse_recipe
from studio.errors import StudioError
from studio.training import prepare_run

from tests.engine.test_training import run_in_process

DOC = ("La fotosíntesis convierte la luz en energía química. Las plantas usan agua y dióxido de carbono.\n\n"
       "El ciclo de Calvin fija el carbono en azúcares. Ocurre en el estroma del cloroplasto.\n\n")


def cpt_recipe(model_dir, dataset, **data):
    return parse_recipe({"name": "cpt", "model": str(model_dir), "stage": "cpt", "method": {"name": "lora"},
                         "data": {"dataset": str(dataset), "max_length": 32, "validation": 0.2, **data},
                         "train": {"max_steps": 2, "batch_size": 2, "eval_every": 1, "precision": "fp32"}})


def test_cpt_trains_on_a_text_file_split_into_paragraph_documents(workspace, tiny_llama_dir, tmp_path):
    src = tmp_path / "notes.txt"
    src.write_text(DOC * 6)
    _, events, result = run_in_process(workspace, cpt_recipe(tiny_llama_dir, src))
    assert result["result_dir"] and [e["step"] for e in events if "loss" in e][-1] == 2
    assert any("eval_loss" in e for e in events)


def test_packed_cpt_blocks_learn_every_token(tiny_llama_dir, workspace, tmp_path):
    from transformers import AutoTokenizer

    from studio.stages.cpt import build_cpt_datasets

    src = tmp_path / "notes.txt"
    src.write_text(DOC * 3)
    recipe = cpt_recipe(tiny_llama_dir, src, validation=0.0)
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    train, val = build_cpt_datasets(recipe, tok, workspace.home)
    assert val is None and len(train) == 6
    for row in train:
        assert row["labels"] == row["input_ids"] and row["input_ids"][-1] == tok.eos_token_id


def test_cpt_refuses_instruction_data_before_the_run(workspace, tiny_llama_dir, tmp_path):
    from studio.data.builder import ImportRequest, import_dataset
    from studio.data.cleaning import SplitConfig

    src = tmp_path / "faq.jsonl"
    src.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "d"}\n')
    import_dataset(workspace, ImportRequest(source=str(src), name="faq", split=SplitConfig(validation=0.0)))
    recipe = cpt_recipe(tiny_llama_dir, "faq")
    with pytest.raises(StudioError, match="needs raw text"):
        prepare_run(workspace, recipe)
    assert workspace.list_runs() == []
