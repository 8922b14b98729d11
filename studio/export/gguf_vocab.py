"""The tokenizer half of a GGUF file: vocabulary, merges, special tokens and chat template as metadata.

A GGUF carries no `tokenizer.json`; llama.cpp, Ollama and LM Studio rebuild the tokenizer from
`tokenizer.ggml.*` keys. This module writes those keys for byte-level BPE tokenizers (GPT-2 style:
SmolLM2, Llama 3, Qwen2), the way llama.cpp's `convert_hf_to_gguf.py` does: every id up to the
model's vocabulary size, added special tokens marked CONTROL and other added tokens USER_DEFINED,
the merges, the bos/eos/pad/unk ids, whether BOS/EOS are added, and the Jinja chat template.

`tokenizer.ggml.pre` names the regex llama.cpp splits text with before BPE. Like llama.cpp we
recognise it by encoding a fixed text and hashing the ids; an unknown tokenizer gets "default"
(llama.cpp's GPT-2-like split), which the caller reports. SentencePiece tokenizers (Llama 2,
Mistral 7B, TinyLlama) are refused with a clear error. The weights are `studio.export.gguf`'s job.
"""
from __future__ import annotations

import json
import logging
import tempfile
from hashlib import sha256

import gguf

from studio.errors import StudioError

log = logging.getLogger(__name__)

# llama.cpp's check text (convert_hf_to_gguf.py, get_vocab_base_pre): it exercises every pre-tokenizer rule.
CHECK_TEXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ "
    "🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ "
    "------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, "
    "'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"
)
# sha256 of str(tokenizer.encode(CHECK_TEXT)) -> llama.cpp pre-tokenizer name, for the families we export.
PRE_TOKENIZERS = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",     # SmolLM, SmolLM2
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",  # Llama 3, 3.1, 3.2
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",      # Qwen1.5, Qwen2, Qwen2.5
    "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": "qwen2",      # Qwen3
    "63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e": "tekken",     # Mistral Nemo
    "35d91631860c815f952d711435f48d356ebac988362536bed955d43bfa436e34": "starcoder",  # StarCoder2
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",      # GPT-2
}


def check_tokenizer(tokenizer) -> None:
    """Refuse tokenizers this writer cannot describe (anything but a fast byte-level BPE one)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    spec = json.loads(backend.to_str()) if backend is not None else {}
    model, decoder = spec.get("model") or {}, spec.get("decoder") or {}
    decoders = decoder.get("decoders", [decoder]) if decoder else []
    byte_level = any(d.get("type") == "ByteLevel" for d in decoders)
    if model.get("type") != "BPE" or model.get("byte_fallback") or not byte_level:
        kind = model.get("type") or type(tokenizer).__name__
        raise StudioError(
            f"GGUF export supports byte-level BPE tokenizers (SmolLM2, Llama 3, Qwen2); this model's tokenizer "
            f"is '{kind}' (SentencePiece-style); export as merged or int8 instead.", field="format",
            key="export.gguf.tokenizer", kind=kind)


def detect_pre_tokenizer(tokenizer) -> str:
    """llama.cpp's name for how this tokenizer splits text before BPE, or "default" when unknown."""
    ids = tokenizer.encode(CHECK_TEXT, add_special_tokens=False)
    digest = sha256(str(ids).encode()).hexdigest()
    name = PRE_TOKENIZERS.get(digest)
    if name is None:
        log.warning("Unknown pre-tokenizer (check hash %s); writing 'default', so llama.cpp may split some "
                    "text differently from transformers", digest)
    return name or "default"


def _tokens(tokenizer, n_vocab: int) -> tuple[list[str], list[int]]:
    """Every id below `n_vocab` with its text and llama.cpp token type."""
    vocab = {index: text for text, index in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    if max(vocab) >= n_vocab:
        raise StudioError(
            f"The tokenizer has {max(vocab) + 1} tokens but the model's embedding has only {n_vocab} rows; "
            "resize the model's embeddings to the tokenizer before exporting.", field="format",
            key="export.gguf.vocab", tokens=max(vocab) + 1, rows=n_vocab)
    tokens, types = [], []
    for index in range(n_vocab):
        if index not in vocab:  # embedding rows past the tokenizer (padded vocabularies)
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        elif index in added:
            text = added[index].content
            tokens.append(text)
            looks_special = text.startswith("<|") and text.endswith("|>")
            types.append(gguf.TokenType.CONTROL if added[index].special or looks_special
                         else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(vocab[index])
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def _adds(tokenizer) -> dict[str, bool]:
    """Whether encoding plain text adds BOS / EOS (llama.cpp needs to be told; defaults differ by model)."""
    ids = tokenizer("a")["input_ids"]
    return {"bos": tokenizer.bos_token_id is not None and ids[:1] == [tokenizer.bos_token_id],
            "eos": tokenizer.eos_token_id is not None and ids[-1:] == [tokenizer.eos_token_id]}


def add_vocab(writer: gguf.GGUFWriter, tokenizer, n_vocab: int) -> str:
    """Write the `tokenizer.*` keys for `tokenizer` into `writer`; returns the pre-tokenizer name used."""
    check_tokenizer(tokenizer)
    pre = detect_pre_tokenizer(tokenizer)
    tokens, types = _tokens(tokenizer, n_vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    # SpecialVocab reads merges and special ids from saved files exactly as llama.cpp's converter does.
    with tempfile.TemporaryDirectory(prefix="studio-gguf-tok-") as tmp:
        tokenizer.save_pretrained(tmp)
        special = gguf.SpecialVocab(tmp, load_merges=True, n_vocab=n_vocab)
    special.add_special_token.update(_adds(tokenizer))
    if special.chat_template is None and tokenizer.chat_template:
        special.chat_template = tokenizer.chat_template
    special.add_to_gguf(writer, quiet=True)
    writer.add_add_space_prefix(False)
    return pre
