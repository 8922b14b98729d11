"""Exact attention for padding-free packed batches without a flash-attention install.

Padding-free packing lays a batch's examples end to end in one row; TRL's collator restarts the
position ids at each example and gives the example boundaries (`cu_seq_lens_q`, computed on the
CPU). With plain "sdpa", transformers then builds a block-diagonal mask over the whole row and
attends over L x L scores, most of them masked: on a CPU, 8 examples of ~300 tokens packed into one
row of 2,400 cost more than the same examples padded. `sdpa_varlen_forward` instead runs causal
sdpa on each example's own slice (scores example x example: exact, and no mask to read), and
hands every other call (padded batches, generation, a batch of several rows) to transformers' sdpa.

`use_varlen_attention(model)` switches a model that uses "sdpa" to it for training; the name is
registered with transformers' attention and mask interfaces on import. flash-attention's varlen
kernel, where installed, is the better choice on a GPU and is left alone.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "sdpa_varlen"
_bounds_cache: list = [None, None]  # (the cu_seq_lens tensor of the current forward, its bounds as ints)


def _bounds(cu_seq_lens: torch.Tensor) -> list[int]:
    """The boundaries as Python ints, read once per forward (every layer gets the same tensor)."""
    if _bounds_cache[0] is not cu_seq_lens:
        _bounds_cache[0], _bounds_cache[1] = cu_seq_lens, cu_seq_lens.tolist()
    return _bounds_cache[1]


def sdpa_varlen_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                        is_causal: bool | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    cu_q, cu_k = kwargs.get("cu_seq_lens_q"), kwargs.get("cu_seq_lens_k")
    exact = (cu_q is not None and query.shape[0] == 1 and query.shape[2] == key.shape[2]
             and (cu_k is None or cu_k is cu_q) and getattr(module, "is_causal", True)
             and kwargs.get("softcap") is None and kwargs.get("sliding_window") is None)
    if not exact:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    bounds = _bounds(cu_q)
    gqa = query.shape[1] != key.shape[1]
    parts = [F.scaled_dot_product_attention(query[:, :, s:e], key[:, :, s:e], value[:, :, s:e], dropout_p=dropout,
                                            is_causal=True, scale=scaling, enable_gqa=gqa)
             for s, e in zip(bounds, bounds[1:]) if e > s]
    return torch.cat(parts, dim=2).transpose(1, 2).contiguous(), None


AttentionInterface.register(NAME, sdpa_varlen_forward)
AttentionMaskInterface.register(NAME, sdpa_mask)


def use_varlen_attention(model: Any) -> bool:
    """Switch a model (or the model under a peft wrapper) from "sdpa" to per-example sdpa; True when switched."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    if config is None or getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    base.set_attn_implementation(NAME)
    return getattr(config, "_attn_implementation", None) == NAME


def restore_sdpa(model: Any) -> None:
    """Back to transformers' own "sdpa" (before saving, so a saved config never names this module's function)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(getattr(base, "config", None), "_attn_implementation", None) == NAME:
        base.set_attn_implementation("sdpa")
