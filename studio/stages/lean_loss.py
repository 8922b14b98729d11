"""The causal-LM training loss without the full-vocabulary logits, and only where the loss counts.

A causal LM's head turns every position's hidden state into scores over the whole vocabulary
(49,152 words for SmolLM2): for a batch of 8 x 320 tokens that is 500 MB of float32 logits, as much
again for their gradient, and the one matmul that dominates a small model's step. The loss needs
none of it for positions whose label is ignored (the prompt, padding), and needs the rest only
chunk by chunk. `chunked_linear_cross_entropy` gathers the positions that count, and for each chunk
of rows computes the logits, the loss and, in the same pass, the gradients with respect to the
hidden states (and to the head's weight when it trains): the loss is the graph's last node, so
those gradients are exact and backward only scales them. Peak memory is one chunk of logits; the
work is what plain cross-entropy does on the counted rows, with no recomputation.

`lean_causal_loss(model, inputs, num_items_in_batch)` runs the decoder without its head and applies
it; `supports_lean_loss(model)` says when that is exact (a plain linear head, no soft-capping or
logit scaling, no prompt-learning wrapper that adds virtual tokens). The trainer that uses it lives
in `studio.stages.sft`.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
CHUNK_ELEMENTS = 1 << 24  # rows x vocabulary per chunk: 64 MB of float32 logits


class _ChunkedLinearCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor,
                denominator: torch.Tensor, weight_grad: bool) -> torch.Tensor:
        rows = max(1, CHUNK_ELEMENTS // weight.shape[0])
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if weight_grad else None
        grad_bias = (torch.zeros(bias.shape, dtype=torch.float32, device=bias.device)
                     if bias is not None and ctx.needs_input_grad[2] else None)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], rows):
            h, y = hidden[start:start + rows], targets[start:start + rows]
            logits = F.linear(h, weight, bias).float()
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, y[:, None]).squeeze(1)).sum()
            # d(sum of losses)/d(logits) = softmax - one_hot, built in the logits' own buffer
            probs = logits.sub_(lse[:, None]).exp_()
            probs[torch.arange(len(y), device=y.device), y] -= 1.0
            probs = probs.to(h.dtype)
            if grad_hidden is not None:
                grad_hidden[start:start + rows] = probs @ weight
            if grad_weight is not None:
                grad_weight += (probs.t() @ h).float()
            if grad_bias is not None:
                grad_bias += probs.float().sum(0)
        scale = 1.0 / denominator.float()
        ctx.save_for_backward(*(g * scale.to(g.dtype) if g is not None else torch.empty(0)
                                for g in (grad_hidden, grad_weight, grad_bias)))
        ctx.has = (grad_hidden is not None, grad_weight is not None, grad_bias is not None)
        ctx.dtypes = (hidden.dtype, weight.dtype, bias.dtype if bias is not None else None)
        return total * scale

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        saved = ctx.saved_tensors
        grads = [saved[i] * grad_output.to(saved[i].dtype) if ctx.has[i] else None for i in range(3)]
        grads = [g.to(dt) if g is not None else None for g, dt in zip(grads, ctx.dtypes)]
        return grads[0], grads[1], grads[2], None, None, None


def chunked_linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                                 bias: torch.Tensor | None = None,
                                 num_items_in_batch: int | torch.Tensor | None = None) -> torch.Tensor:
    """Mean next-token cross-entropy of `hidden` (B, T, H) under the head (`weight` V x H, `bias`) against
    `labels` (B, T), shifted as causal LMs are; ignored labels are -100. Divides by `num_items_in_batch` when
    given (tokens counted over gradient-accumulation steps), else by this batch's counted tokens."""
    shifted = labels[:, 1:]
    counted = shifted != IGNORE_INDEX
    rows = hidden[:, :-1][counted]
    targets = shifted[counted]
    denominator = torch.as_tensor(num_items_in_batch if num_items_in_batch is not None else targets.numel(),
                                  device=hidden.device).clamp(min=1)
    return _ChunkedLinearCE.apply(rows, weight, bias, targets, denominator, weight.requires_grad)


def _causal_lm(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def supports_lean_loss(model: Any) -> bool:
    """True when running the decoder and applying the head by hand gives exactly the model's own loss."""
    from peft import PeftModel

    if isinstance(getattr(model, "module", None), torch.nn.Module):
        return False  # DDP's (or another wrapper's) forward must run: it prepares the gradient sync between processes
    if isinstance(model, PeftModel) and getattr(model, "peft_type", None) is not None and \
            model.peft_config[model.active_adapter].is_prompt_learning:
        return False  # virtual tokens are added by the wrapper's forward
    lm = _causal_lm(model)
    head, decoder = lm.get_output_embeddings(), getattr(lm, "base_model", None)
    config = getattr(lm, "config", None)
    if type(head) is not torch.nn.Linear or decoder is None or decoder is lm:
        return False
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None) not in (None, 1.0):
        return False
    return not getattr(config, "is_encoder_decoder", False)


def lean_causal_loss(model: Any, inputs: dict, num_items_in_batch: int | torch.Tensor | None = None) -> torch.Tensor:
    """The training loss of a causal LM on `inputs` (input_ids, labels, and attention_mask / position_ids and
    the packing fields the collator adds), computed without the full logits."""
    lm = _causal_lm(model)
    forwarded = {k: v for k, v in inputs.items() if k not in ("labels", "num_items_in_batch")}
    forwarded["use_cache"] = False
    hidden = lm.base_model(**forwarded).last_hidden_state
    head = lm.get_output_embeddings()
    return chunked_linear_cross_entropy(hidden, head.weight, inputs["labels"], head.bias, num_items_in_batch)
