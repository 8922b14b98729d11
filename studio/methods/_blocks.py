"""Where the parts of a transformer live: its stack of blocks, embeddings, norms and head.

The freezing methods (partial, gradual, discriminative) need "block i", "the embeddings" and "the
head" for any Hugging Face model without a table per architecture. The stack of blocks is found as
the `nn.ModuleList` of same-class children holding the most parameters (`model.model.layers` in a
Llama, `transformer.h` in GPT-2, `bert.encoder.layer` in BERT). This module only finds and names
parameters; deciding what trains is each method's business. The leading underscore keeps the
method registry from importing it as a method.
"""
from __future__ import annotations

from typing import Any

from studio.errors import StudioError


def find_blocks(model: Any) -> tuple[str, Any]:
    """(dotted name, ModuleList) of the model's transformer blocks, bottom block first."""
    from torch import nn

    best, best_size = None, 0
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if len({type(child) for child in module}) != 1:
            continue
        size = sum(p.numel() for p in module.parameters())
        if size > best_size:
            best, best_size = (name, module), size
    if best is None:
        raise StudioError(f"Could not find the stack of transformer blocks in this "
                          f"{type(model).__name__}; pick LoRA or full fine-tuning.", field="method.name",
                          key="method.blocks.not_found", model_class=type(model).__name__)
    return best


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def block_params(model: Any) -> list[list[tuple[str, Any]]]:
    """Named parameters of each block, bottom block first."""
    prefix, blocks = find_blocks(model)
    return [[(f"{prefix}.{i}.{n}", p) for n, p in block.named_parameters()] for i, block in enumerate(blocks)]


def embedding_params(model: Any) -> list[tuple[str, Any]]:
    """Parameters of every embedding table outside the blocks (token and position embeddings)."""
    from torch import nn

    prefix, _ = find_blocks(model)
    return [(f"{m_name}.{n}" if m_name else n, p) for m_name, m in model.named_modules()
            if isinstance(m, nn.Embedding) and not _under(m_name, prefix)
            for n, p in m.named_parameters(recurse=False)]


def norm_params(model: Any, inside_blocks: bool) -> list[tuple[str, Any]]:
    """Parameters of normalisation layers (LayerNorm, RMSNorm...), inside the blocks or outside them."""
    prefix, _ = find_blocks(model)
    out = []
    for m_name, m in model.named_modules():
        if "norm" not in type(m).__name__.lower() or _under(m_name, prefix) != inside_blocks:
            continue
        out += [(f"{m_name}.{n}", p) for n, p in m.named_parameters(recurse=False)]
    return out


def head_params(model: Any) -> list[tuple[str, Any]]:
    """The output head's parameters (a classifier's `score`/`classifier` when there is no LM head); with tied
    weights this is the same tensor as the token embeddings."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    for name in ("score", "classifier"):
        head = getattr(model, name, None) if head is None else head
    if head is None:
        return []
    names = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    return [(names.get(id(p), n), p) for n, p in head.named_parameters()]


def freeze_all(model: Any) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def set_trainable(params: list[tuple[str, Any]]) -> None:
    for _, p in params:
        p.requires_grad_(True)


def keep_input_grads(model: Any) -> None:
    """Frozen embeddings + gradient checkpointing would cut the graph: make block inputs require grad."""
    if hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()
