"""A smaller model made from a bigger one's own weights: keep N of its decoder layers, spread evenly from the first
to the last, as DistilBERT started its student from every other layer of BERT. Distillation uses it to give the
student a head start on the teacher (`distill.student_layers`).
"""
from __future__ import annotations

from typing import Any

from studio.errors import StudioError

FIELD = "distill.student_layers"


def spread(total: int, keep: int) -> list[int]:
    """`keep` layer indices out of `total`, evenly spaced, first and last included (one layer: the first)."""
    if not 0 < keep <= total:
        raise ValueError(f"cannot keep {keep} of {total} layers")
    if keep == 1:
        return [0]
    return sorted({round(i * (total - 1) / (keep - 1)) for i in range(keep)})


def layer_count(config: Any) -> int | None:
    return getattr(config, "num_hidden_layers", None)


def check_keep(config: Any, keep: int) -> None:
    """Refuse (StudioError on distill.student_layers) a count the model's layers cannot give."""
    total = layer_count(config)
    if total is None:
        raise StudioError(f"'{FIELD}' needs a model whose config names its layer count (num_hidden_layers); set it "
                          "to 0 to keep the model as it is.", field=FIELD, key="stage.distill.no_layer_count")
    if keep >= total:
        raise StudioError(f"'{FIELD}' is {keep} but the model has {total} layers; keep fewer than {total}, or 0 to "
                          "keep the model as it is.", field=FIELD, key="stage.distill.too_many_layers",
                          keep=keep, total=total)


def _decoder_layers(model: Any) -> Any:
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    if layers is None:
        raise StudioError(f"'{FIELD}' cannot pick layers from a {type(model).__name__}; set it to 0 to keep the model "
                          "as it is.", field=FIELD, key="stage.distill.no_layers", model=type(model).__name__)
    return decoder


def keep_layers(model: Any, keep: int) -> list[int]:
    """Cut `model` (a decoder-only causal LM) down to `keep` evenly spread layers in place; returns the kept indices.

    Each kept layer learns its new position (`layer_idx`, which the KV cache is indexed by) and the config says the
    new count, so `save_pretrained` writes a model that loads as it is."""
    import torch

    check_keep(model.config, keep)
    decoder = _decoder_layers(model)
    kept = spread(len(decoder.layers), keep)
    decoder.layers = torch.nn.ModuleList(decoder.layers[i] for i in kept)
    for position, layer in enumerate(decoder.layers):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = position
    cut_config(model.config, kept)
    return kept


def cut_config(config: Any, kept: list[int]) -> Any:
    """`config` (changed in place) describing only the `kept` layers: their count and, where listed, their types."""
    types = getattr(config, "layer_types", None)
    if isinstance(types, (list, tuple)) and len(types) == config.num_hidden_layers:
        config.layer_types = [types[i] for i in kept]
    config.num_hidden_layers = len(kept)
    return config
