"""LoRA: freeze the base model and learn a low-rank update B·A beside chosen linear layers.

Only the small A/B matrices train (often <1% of the weights), so memory and checkpoints stay
small and the result is a PEFT adapter directory that `peft.PeftModel.from_pretrained` loads.
The variants live here as settings: rsLoRA (scale alpha/sqrt(r)), DoRA (a learned magnitude per
output), PiSSA/OLoRA initialisation (start from the weights' principal directions) and LoRA+
(a higher learning rate for B). This module also owns the target-layer helpers the other
peft methods share: which linear layers a spec picks, and whether a rank fits them.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.errors import StudioError
from studio.methods.base import METHODS, PeftMethod
from studio.settings import setting

ATTENTION_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj"]
INITS = ("default", "gaussian", "pissa", "olora")
MUTATING_INITS = ("pissa", "olora")  # they move part of W into A·B, so the base weights change too


@dataclass
class LoraSettings:
    r: int = setting(16, help="Rank of the update matrices: higher learns more, costs more memory.", min=1, max=1024)
    alpha: float = setting(32.0, help="Scale of the update (effective scale = alpha / r). Usually 2 x r.", gt=0.0,
                           max=65536.0)
    dropout: float = setting(0.05, help="Dropout on the LoRA input during training, against overfitting.",
                             min=0.0, max=0.9)
    target_modules: str = setting("all-linear", help="Which layers get LoRA: 'all-linear', 'attention' or a "
                                  "comma-separated list of module names (e.g. q_proj,v_proj).")
    use_rslora: bool = setting(False, help="rsLoRA: scale the update by alpha / sqrt(r) instead of alpha / r, "
                               "so high ranks keep learning.", advanced=True)
    use_dora: bool = setting(False, help="DoRA: also learn a magnitude per output channel; often better at low "
                             "rank, a little slower.", advanced=True)
    init: str = setting("default", help="How A and B start: 'default' (B = 0), 'gaussian', or 'pissa' / 'olora' "
                        "(start from the layer's main directions: faster convergence, slower start-up).",
                        choices=INITS, advanced=True)
    loraplus_lr_ratio: float = setting(0.0, help="LoRA+: B learns this many times faster than A (e.g. 16); "
                                       "0 turns it off.", min=0.0, max=1000.0, advanced=True)

    name = "lora"

    def __post_init__(self) -> None:
        if 0 < self.loraplus_lr_ratio < 1:
            raise StudioError(f"'method.loraplus_lr_ratio' is {self.loraplus_lr_ratio}; use 0 (off) or a ratio of "
                              "at least 1 (B learns faster than A).", field="method.loraplus_lr_ratio",
                              key="method.lora.loraplus_ratio", ratio=self.loraplus_lr_ratio)
        if self.use_dora and self.init in MUTATING_INITS:
            # The PiSSA/OLoRA -> plain LoRA conversion done at save time does not carry DoRA's magnitudes over.
            raise StudioError(f"'method.init' {self.init} cannot be combined with DoRA; turn off 'method.use_dora' "
                              "or use the default initialisation.", field="method.init",
                              key="method.lora.init_with_dora", init=self.init)


def linear_layers(model: Any) -> dict[str, tuple[int, int]]:
    """Full module name -> (in, out) features for every linear layer except the output head."""
    import torch
    from transformers.pytorch_utils import Conv1D

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    # A sequence classifier's head (peft's SEQ_CLS names) is trained whole through modules_to_save, not adapted.
    heads = {id(m) for m in (head, getattr(model, "score", None), getattr(model, "classifier", None)) if m is not None}
    out = {}
    for name, module in model.named_modules():
        if id(module) in heads:
            continue
        if isinstance(module, torch.nn.Linear):
            out[name] = (module.in_features, module.out_features)
        elif isinstance(module, Conv1D):  # GPT-2 style layers store the weight transposed
            out[name] = tuple(module.weight.shape)
    return out


def linear_module_names(model: Any) -> list[str]:
    """The short names a user can target (q_proj, down_proj...), in model order."""
    return list(dict.fromkeys(name.rsplit(".", 1)[-1] for name in linear_layers(model)))


def parse_targets(spec: str) -> Any:
    """'all-linear' stays as is; 'attention' and comma lists become lists of short module names."""
    if spec == "all-linear":
        return "all-linear"
    if spec == "attention":
        return list(ATTENTION_MODULES)
    return [s.strip() for s in spec.split(",") if s.strip()]


def matched_layers(model: Any, targets: Any, field: str = "method.target_modules") -> dict[str, tuple[int, int]]:
    """The linear layers a target spec picks, the way peft matches them; none -> StudioError naming the choices."""
    layers = linear_layers(model)
    if targets == "all-linear":
        picked = layers
    else:
        picked = {n: dims for n, dims in layers.items()
                  if any(n == t or n.endswith("." + t) for t in targets)}
    if not picked:
        wanted = targets if isinstance(targets, str) else ", ".join(targets)
        available = ', '.join(linear_module_names(model))
        raise StudioError(f"'{field}' ({wanted}) matches no linear layer of this model; available: "
                          f"{available}.", field=field,
                          key="method.lora.no_matching_layer", setting=field, wanted=wanted, available=available)
    return picked


def check_rank(layers: dict[str, tuple[int, int]], r: int, field: str = "method.r") -> None:
    """A rank above a layer's smallest side adds parameters without adding capacity: refuse it."""
    name, dims = min(layers.items(), key=lambda item: min(item[1]))
    if r > min(dims):
        raise StudioError(f"'{field}' is {r}, larger than the layer {name} ({dims[0]} -> {dims[1]}); use at "
                          f"most {min(dims)} or target other layers.", field=field,
                          key="method.lora.rank_too_large", setting=field, r=r, layer=name, fan_in=dims[0],
                          fan_out=dims[1], most=min(dims))


def _task_type(model: Any) -> Any:
    """peft's task type for the model's head (it picks the PeftModel wrapper): SEQ_CLS, SEQ_2_SEQ_LM or CAUSAL_LM."""
    from peft import TaskType

    if type(model).__name__.endswith("ForSequenceClassification"):
        return TaskType.SEQ_CLS
    # The config flag, not the class name: MarianMTModel is a seq2seq LM, Llava*ForConditionalGeneration is not.
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        return TaskType.SEQ_2_SEQ_LM
    return TaskType.CAUSAL_LM


@METHODS.register("lora")
class Lora(PeftMethod):
    settings_cls = LoraSettings
    title = "LoRA"
    summary = "Small trainable low-rank matrices beside frozen weights; fast, light, mergeable."
    mergeable = True
    stages = ("sft", "cpt", "distill", "seq2seq", "classify", "reward", "dpo", "kto", "orpo", "rl")

    @classmethod
    def peft_config(cls, model: Any, settings: LoraSettings) -> Any:
        from peft import LoraConfig

        targets = parse_targets(settings.target_modules)
        check_rank(matched_layers(model, targets), settings.r)
        if settings.init in MUTATING_INITS and (getattr(model, "is_loaded_in_4bit", False)
                                                or getattr(model, "is_loaded_in_8bit", False)):
            raise StudioError(f"'method.init' {settings.init} needs the base weights in full precision, not "
                              "quantised; use the default initialisation with QLoRA.", field="method.init",
                              key="method.lora.init_quantised", init=settings.init)
        init = {"default": True}.get(settings.init, settings.init)
        return LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                          target_modules=targets, task_type=_task_type(model), use_rslora=settings.use_rslora,
                          use_dora=settings.use_dora, init_lora_weights=init)

    @classmethod
    def prepare(cls, model: Any, settings: LoraSettings) -> Any:
        peft_model = super().prepare(model, settings)
        if settings.init in MUTATING_INITS:
            # PiSSA/OLoRA change the base weights. Keep the starting adapter so `save` can turn the
            # trained one into a plain LoRA that works on the original, untouched base model.
            config = peft_model.peft_config["default"]
            config.init_lora_weights = True  # reloading must not run the SVD on the base again
            initial = Path(tempfile.mkdtemp(prefix="studio-lora-init-"))
            peft_model.save_pretrained(initial)
            peft_model.studio_initial_adapter = initial
        return peft_model

    @classmethod
    def optimizer_groups(cls, model: Any, settings: LoraSettings, lr: float) -> list[dict] | None:
        """LoRA+: lora_B (and DoRA's 1-D magnitudes, as peft's own LoRA+ does) at lr x ratio, the rest at lr."""
        if not settings.loraplus_lr_ratio:
            return None
        fast, slow = [], []
        for name, param in model.named_parameters():
            if param.requires_grad:
                (fast if "lora_B" in name or param.ndim == 1 else slow).append(param)
        return [{"params": slow, "lr": lr},
                {"params": fast, "lr": lr * settings.loraplus_lr_ratio}]

    @classmethod
    def save(cls, model: Any, tokenizer: Any, out_dir: Path) -> Path:
        initial = getattr(model, "studio_initial_adapter", None)
        if initial is None:
            return super().save(model, tokenizer, out_dir)
        path = Path(out_dir) / "adapter"
        # Saved as the difference from the starting adapter: a rank-2r LoRA for the original base.
        model.save_pretrained(path, path_initial_model_for_weight_conversion=str(initial))
        tokenizer.save_pretrained(path)
        shutil.rmtree(initial, ignore_errors=True)
        return path
