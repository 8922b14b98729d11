"""Bottleneck adapters: small trainable layers inserted into a frozen decoder (Houlsby et al. 2019, Pfeiffer et al. 2020).

An adapter is a down-projection to `hidden // reduction_factor` units, a non-linearity, an
up-projection back to `hidden` and a residual: `x + up(act(down(x)))`. Houlsby places one after
each block's self-attention and one after its feed-forward network; Pfeiffer keeps only the one
after the FFN (half the parameters, usually as good). The up-projection starts at zero, so before
training the adapted model computes exactly what the base does. peft does not provide these, so
this module inserts them itself: each adapter is a child module of the decoder layer's `self_attn`
or `mlp`, applied to its output by a forward hook, which leaves the base weights' names untouched
(HF Trainer's checkpoints and resume see an ordinary `nn.Module`). The result is only the adapter
tensors plus a small JSON config; it cannot be merged into the base weights. Batching, optimisation
and checkpoints are the stage's and Trainer's business.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.errors import StudioError
from studio.methods.base import METHODS, PREFERENCE_STAGES, Method
from studio.settings import setting

SITES = {"houlsby": ("self_attn", "mlp"), "pfeiffer": ("mlp",)}
ADAPTER_ATTR = "bottleneck_adapter"  # child name under self_attn / mlp, hence in every adapter key
WEIGHTS_FILE = "bottleneck.safetensors"
CONFIG_FILE = "bottleneck_config.json"


@dataclass
class BottleneckSettings:
    style: str = setting("pfeiffer", help="Where adapters go: 'houlsby' after attention and after the feed-forward "
                         "network of every block, 'pfeiffer' after the feed-forward network only (half the size).",
                         choices=("houlsby", "pfeiffer"))
    reduction_factor: int = setting(16, help="Bottleneck size = hidden size / this factor: 16 on a 576-wide model "
                                    "gives 36 units. Smaller factor: more capacity, more parameters.", min=1, max=4096)
    non_linearity: str = setting("relu", help="Activation between the down- and the up-projection.",
                                 choices=("relu", "gelu", "silu"))
    init_scale: float = setting(1e-2, help="Standard deviation of the down-projection's initial weights; the "
                                "up-projection starts at zero, so training starts from the base model exactly.",
                                gt=0.0, max=1.0, advanced=True)

    name = "adapters"


def _adapter_module(hidden: int, bottleneck: int, non_linearity: str, init_scale: float) -> Any:
    import torch
    from torch import nn

    class BottleneckAdapter(nn.Module):
        """x + up(act(down(x))), computed in the adapter's own (float32) precision."""

        def __init__(self):
            super().__init__()
            self.down = nn.Linear(hidden, bottleneck)
            self.act = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}[non_linearity]()
            self.up = nn.Linear(bottleneck, hidden)
            nn.init.normal_(self.down.weight, std=init_scale)
            nn.init.zeros_(self.down.bias)
            nn.init.zeros_(self.up.weight)  # zero update at step 0: the adapted model equals the base
            nn.init.zeros_(self.up.bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.up(self.act(self.down(x.to(self.down.weight.dtype)))).to(x.dtype)

    return BottleneckAdapter()


def _apply_adapter(module: Any, args: Any, output: Any) -> Any:
    # Attention returns (hidden_states, attn_weights, ...); the MLP returns the tensor itself.
    adapter = getattr(module, ADAPTER_ATTR)
    if isinstance(output, tuple):
        return (adapter(output[0]), *output[1:])
    return adapter(output)


def decoder_layers(model: Any) -> list:
    """The decoder blocks of a Llama-like causal LM (`model.model.layers`, each with .self_attn and .mlp)."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None or not all(hasattr(l, "self_attn") and hasattr(l, "mlp") for l in layers):
        raise StudioError(f"Bottleneck adapters need a Llama-like model whose blocks have 'self_attn' and 'mlp'; "
                          f"{type(model).__name__} does not; pick another method.", field="method.name",
                          key="method.bottleneck.not_llama_like", model_class=type(model).__name__)
    return list(layers)


def bottleneck_size(hidden: int, reduction_factor: int) -> int:
    size = hidden // reduction_factor
    if size < 1:
        raise StudioError(f"'method.reduction_factor' is {reduction_factor}, which leaves no bottleneck on a model "
                          f"with hidden size {hidden}; use at most {hidden}.", field="method.reduction_factor",
                          key="method.bottleneck.no_bottleneck", reduction_factor=reduction_factor, hidden=hidden)
    return size


def insert_adapters(model: Any, config: dict) -> Any:
    """Add an adapter after each of `config`'s sites in every block (float32, on the block's device)."""
    import torch

    for layer in decoder_layers(model):
        for site in SITES[config["style"]]:
            target = getattr(layer, site)
            if hasattr(target, ADAPTER_ATTR):
                raise StudioError("This model already carries bottleneck adapters; load a fresh base model.",
                                  field="method.name", key="method.bottleneck.already_inserted")
            adapter = _adapter_module(config["hidden_size"], config["bottleneck_size"], config["non_linearity"],
                                      config["init_scale"])
            target.add_module(ADAPTER_ATTR, adapter.to(device=next(target.parameters()).device, dtype=torch.float32))
            target.register_forward_hook(_apply_adapter)
    model.bottleneck_config = config  # what `save` writes next to the weights
    return model


def adapter_state(model: Any) -> dict:
    """Name -> tensor for the adapter weights only (the full-model names, so keys say which block and site)."""
    return {name: p for name, p in model.named_parameters() if f".{ADAPTER_ATTR}." in name}


@METHODS.register("adapters")
class BottleneckAdapters(Method):
    settings_cls = BottleneckSettings
    stages = ("sft", "cpt", *PREFERENCE_STAGES)
    title = "Bottleneck adapters"
    summary = ("Small down/up-projection layers inserted after attention and/or the feed-forward network; the base "
               "stays frozen. Not mergeable: the non-linearity inside an adapter is not a weight update that could be "
               "folded into the base, so the adapters stay as extra layers at inference.")
    mergeable = False
    not_mergeable_why = "each adapter has a non-linearity inside, which no single weight matrix can reproduce"
    architectures = ("llama", "mistral", "qwen2")

    @classmethod
    def prepare(cls, model: Any, settings: BottleneckSettings) -> Any:
        model.requires_grad_(False)
        hidden = model.config.hidden_size
        insert_adapters(model, {"style": settings.style, "reduction_factor": settings.reduction_factor,
                                "bottleneck_size": bottleneck_size(hidden, settings.reduction_factor),
                                "non_linearity": settings.non_linearity, "init_scale": settings.init_scale,
                                "hidden_size": hidden, "num_layers": len(decoder_layers(model)),
                                "base_model": getattr(model.config, "_name_or_path", None)})
        for p in adapter_state(model).values():
            p.requires_grad_(True)
        # With gradient checkpointing and frozen embeddings, checkpointed blocks would otherwise get no inputs
        # that require grad, and the adapters inside them would never receive a gradient.
        model.enable_input_require_grads()
        return model

    @classmethod
    def save(cls, model: Any, tokenizer: Any, out_dir: Path) -> Path:
        from safetensors.torch import save_file

        path = Path(out_dir) / "adapter"
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in adapter_state(model).items()}, path / WEIGHTS_FILE)
        (path / CONFIG_FILE).write_text(json.dumps(model.bottleneck_config, indent=2) + "\n", encoding="utf-8")
        tokenizer.save_pretrained(path)
        return path

    @classmethod
    def load_result(cls, base_model: Any, result_dir: Path) -> Any:
        import torch
        from safetensors.torch import load_file

        result_dir = Path(result_dir)
        config = json.loads((result_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        trained_for = f"the adapter was trained for another model ({config.get('base_model')}, hidden size " \
                      f"{config['hidden_size']}, {config['num_layers']} layers)"
        if base_model.config.hidden_size != config["hidden_size"]:
            raise StudioError(f"This base model has hidden size {base_model.config.hidden_size} but {trained_for}.",
                              field="model", key="method.bottleneck.hidden_mismatch",
                              hidden=base_model.config.hidden_size, base_model=config.get("base_model"),
                              trained_hidden=config["hidden_size"], trained_layers=config["num_layers"])
        insert_adapters(base_model, config)
        weights = load_file(str(result_dir / WEIGHTS_FILE))
        expected = adapter_state(base_model)
        if set(weights) != set(expected) or any(weights[k].shape != v.shape for k, v in expected.items()):
            raise StudioError(f"The saved adapter weights do not fit this base model: {trained_for}.", field="model",
                              key="method.bottleneck.weights_mismatch", base_model=config.get("base_model"),
                              trained_hidden=config["hidden_size"], trained_layers=config["num_layers"])
        with torch.no_grad():
            for name, param in expected.items():
                param.copy_(weights[name])
                param.requires_grad_(False)
        return base_model

