"""Calibration for int8 activation quantisation: per-channel input maxima, SmoothQuant factors, static scales.

Static activation quantisation fixes each linear layer's input scale ahead of time, so it must see what the
inputs look like: `input_channel_maxima` runs the model over calibration texts (the run's own training or
validation texts, or a user file) and records, for every `nn.Linear`, the largest |x| of each input channel.
LLM activations have a few channels far larger than the rest; one per-tensor scale sized for them rounds every
other channel to a handful of levels. SmoothQuant (Xiao et al., 2023) moves that range into the weights, which
quantise per output channel and do not mind: x' = x / s and W' = W * s with s_j = max|x_j|^a / max|W_j|^(1-a),
a = 0.5 (`smoothing_factors`). The per-tensor input scale of the smoothed input follows from the same maxima
(`static_input_scale`). Building the int8 layers and writing them is `studio.export.ptq`'s.
"""
from __future__ import annotations

import torch

SMOOTH_ALPHA = 0.5
MAX_TOKENS = 4096    # calibration tokens in all; the maxima settle long before this on a 135M model
WINDOW = 512         # tokens per forward pass
ACT_LEVELS = 127     # symmetric int8 activations


def input_channel_maxima(model: torch.nn.Module, tokenizer, texts: list[str],
                         max_tokens: int = MAX_TOKENS) -> dict[str, torch.Tensor]:
    """{linear layer name: float32 [in_features] max |input| per channel} over the first `max_tokens` tokens."""
    maxima: dict[str, torch.Tensor] = {}

    def observer(name: str):
        def hook(module, args):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).abs().amax(dim=0).float()
            maxima[name] = x if name not in maxima else torch.maximum(maxima[name], x)
        return hook

    handles = [module.register_forward_pre_hook(observer(name)) for name, module in model.named_modules()
               if isinstance(module, torch.nn.Linear)]
    try:
        seen = 0
        with torch.inference_mode():
            for ids in _windows(tokenizer, texts):
                ids = ids[: max_tokens - seen]
                model(input_ids=ids.unsqueeze(0).to(model.device))
                seen += len(ids)
                if seen >= max_tokens:
                    break
    finally:
        for handle in handles:
            handle.remove()
    return maxima


def _windows(tokenizer, texts: list[str]):
    """Each text's token ids cut into windows of at most WINDOW tokens (short texts pass whole)."""
    for text in texts:
        ids = torch.tensor(tokenizer(text, add_special_tokens=True)["input_ids"], dtype=torch.long)
        for start in range(0, len(ids), WINDOW):
            if len(ids[start:start + WINDOW]) > 1:
                yield ids[start:start + WINDOW]


def smoothing_factors(channel_max: torch.Tensor, weight: torch.Tensor, alpha: float = SMOOTH_ALPHA) -> torch.Tensor:
    """SmoothQuant's s [in_features]: divide the input by it and multiply the weight's columns by it."""
    weight_max = weight.detach().abs().amax(dim=0).float().clamp(min=1e-5)
    s = channel_max.clamp(min=1e-5).pow(alpha) / weight_max.pow(1 - alpha)
    # A channel the calibration never lit up keeps its scale rather than being blown up by 1/s.
    return torch.where(channel_max > 0, s, torch.ones_like(s)).clamp(min=1e-5)


def static_input_scale(channel_max: torch.Tensor, smooth: torch.Tensor | None = None) -> float:
    """The per-tensor scale that maps the (smoothed) calibration maximum to the largest activation level."""
    peak = (channel_max / smooth).max() if smooth is not None else channel_max.max()
    return max(float(peak), 1e-8) / ACT_LEVELS
