"""Fixtures of the engine tests: the RAG corpus in a temp folder, a tiny random BERT encoder, a second tiny Llama."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.rag_fixtures import write_corpus


@pytest.fixture
def corpus(tmp_path) -> list[Path]:
    return write_corpus(tmp_path)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 2-layer random BertModel (hidden 32) with the MiniLM tokenizer: shaped like the embedded encoder."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from studio.models.embedded import minilm_path

    tok = AutoTokenizer.from_pretrained(minilm_path())
    config = BertConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=2, max_position_embeddings=128)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-bert")
    BertModel(config).save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def other_llama_dir(tmp_path_factory, tiny_llama_dir) -> Path:
    """A second tiny random Llama (other weights, same tokenizer), so two models answer differently."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    model = LlamaForCausalLM(LlamaConfig.from_pretrained(tiny_llama_dir))
    out = tmp_path_factory.mktemp("other-llama")
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(out)
    return out
