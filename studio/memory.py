"""How many parameters a method trains and how much memory its training needs, before any job starts.

`count_parameters` builds the model from its config on PyTorch's meta device (shapes, no
storage: a 70B model costs nothing), applies the method's own `prepare`, and counts the
parameters that require a gradient: the exact number peft's `print_trainable_parameters` prints.
`estimate_training_memory` turns the counts into peak training memory:

    weights      = total x 4 bytes (training keeps float32 master weights; see models.loading)
                   + linear weights x 2 under bf16/fp16 autocast (the half-precision copies the
                   backward pass keeps); adapters on a GPU in bf16: the frozen base x 2 + trained x 4
                   (stages.trainer_setup.frozen_weights_to_bf16); QLoRA: the block linears at bits/8 (+ 4-bit block
                   constants), everything else in float32, no autocast copies
    gradients    = trainable x 4              optimizer = trainable x 8 (AdamW: two fp32 moments)
    activations  = batch x seq x hidden x layers x c, c in bytes per device kind (ACT): "trained" when
                   the base trains, "frozen" when it is frozen (backprop still runs through every
                   layer, to reach adapters or a soft prompt; only the weight-gradient inputs are not
                   kept) and its adapters keep dropout-masked inputs, "lean" when they do not;
                   checkpointing keeps one float32 hidden state per layer plus one layer's worth
    logits       = batch x seq x vocab x 4 x LOGIT_COPIES (TRL's fused LM head scores the
                   vocabulary in tiles, so only a fraction of the full logits ever exists)
    total        = weights + optimizer + max(gradients, activations + logits) + RUNTIME_OVERHEAD[device]
                   (gradients fill up while the backward pass frees the activations, and the trainer
                   frees them after each step, so the two peaks do not add up; the overhead is Python,
                   torch, transformers and TRL, and on a GPU the CUDA context)

The CPU constants were fitted to peak RSS measured on the embedded SmolLM2-135M (bf16 autocast),
the CUDA ones to peak device memory on an H100 (bf16 autocast) for the SmolLM2-135M shape at
4x256 tokens and the SmolLM2-1.7B shape at 4x512 (bench/methods.py, bench/gpu_check.sh). `method_table` and `recommend` feed the Train tab's picker; this
module never loads weights or trains, and wording for people is the UI's business.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from studio.errors import StudioError

GiB = 1024 ** 3
# Bytes per token x hidden unit x layer.
# CPU, fitted on SmolLM2-135M, bf16 autocast, peak RSS (bench/methods.py): LoRA at 2x128 and 4x128 tokens
# (slope and intercept), full at 2x128; a frozen base is not cheaper there: LoRA keeps its own dropout-masked
# float32 inputs for each adapted layer. "lean" (IA3, prompt methods, bottleneck adapters) at 4x256.
# CUDA, fitted on an H100 (2026-11-26): full needed 89-106, LoRA 77-81 and QLoRA 93-99 (its dequantised
# weights), IA3/prompt tuning/adapters 53-66, over the 135M shape at 4x256 and the 1.7B shape at 4x512.
ACT = {"cpu": {"trained": 137.0, "frozen": 152.0, "lean": 91.0},
       "cuda": {"trained": 97.0, "frozen": 86.0, "lean": 58.0}}
# Float32 training keeps 4-byte copies where autocast keeps 2-byte ones. Fitted on the CPU (2026-12-05, LoRA with the
# lean loss, 1, 2 and 4 x 320 tokens): float32 peaked at 2.40, 3.45 and 5.47 GB, bf16 autocast at 2.39, 3.42, 5.50.
ACT_FP32_FACTOR = 1.2
LOGIT_COPIES = 0.25
LEAN_LOGIT_COPIES = 3
RUNTIME_OVERHEAD = {"cpu": 800_000_000, "cuda": int(0.6 * GiB)}  # CPU fitted; CUDA: a typical context size
FIT_MARGIN = 0.9  # a plan fits when it needs at most 90% of the free memory
QUANT_BYTES = {4: 0.5 + 0.0625, 8: 1.0 + 0.0625}  # + absmax/block constants
REAL_FALLBACK_MAX_PARAMS = 300_000_000  # instantiate for real only when meta counting fails on a small model
GOALS = ("style", "new_task", "many_tasks", "least_memory")


def load_config(model_config_or_dir: Any) -> Any:
    """A transformers config from a config object, a model folder, or a hub id already in the cache."""
    if hasattr(model_config_or_dir, "model_type"):
        return model_config_or_dir
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(model_config_or_dir))
    except (OSError, ValueError) as error:
        raise StudioError(f"Cannot read the model's config.json at '{model_config_or_dir}' ({error}); point to a "
                          "model folder.", field="model", key="memory.config_unreadable",
                          path=str(model_config_or_dir), reason=str(error)) from None


def task_of(stage: str | None) -> str:
    """The model head a stage trains (`Stage.task`): "causal", "seq2seq" or "classify"."""
    from studio.stages.base import capability

    return capability(stage, "task") or "causal"


def _build(config: Any, device: str, task: str = "causal") -> Any:
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification

    auto = {"causal": AutoModelForCausalLM, "seq2seq": AutoModelForSeq2SeqLM,
            "classify": AutoModelForSequenceClassification}[task]
    with torch.device(device):
        return auto.from_config(config)


def _counting_plan(method: Any, settings: Any) -> tuple[Any, Any]:
    """The (method, settings) whose `prepare` gives the same count and runs on meta tensors.

    QLoRA's quantised base needs real bitsandbytes weights, but its trainable part is its LoRA
    part and its logical total is the unquantised model's (peft counts a packed 4-bit tensor twice).
    Prompt tuning from text and PiSSA/OLoRA need real weights only for initial values."""
    from studio.methods.lora import Lora, LoraSettings

    if issubclass(method, Lora) and method.load_kwargs is not Lora.load_kwargs:
        lora_fields = {f.name for f in dataclasses.fields(LoraSettings)}
        settings = LoraSettings(**{k: v for k, v in dataclasses.asdict(settings).items() if k in lora_fields})
        method = Lora
    if getattr(settings, "init", None) in ("text", "pissa", "olora"):
        settings = dataclasses.replace(settings, init="random" if settings.init == "text" else "default")
    return method, settings


def _prepared(config: Any, method_name: str, settings: Any, task: str = "causal") -> Any:
    from studio.methods import METHODS

    method = METHODS.get(method_name, field="method.name")
    settings = settings if settings is not None else method.settings_cls()
    method, settings = _counting_plan(method, settings)
    import torch

    try:
        # Prepare inside the meta context too: adapters made outside it would be moved to meta by peft,
        # which re-wraps them as fresh Parameters and loses requires_grad=False (AdaLoRA's ranknum).
        with torch.device("meta"):
            return method.prepare(_build(config, "meta", task), settings)
    except StudioError:
        raise
    except Exception:
        # Some prepare step touched real values; a small model can be built for real instead.
        if sum(p.numel() for p in _build(config, "meta", task).parameters()) > REAL_FALLBACK_MAX_PARAMS:
            raise
        return method.prepare(_build(config, "cpu", task), settings)


def count_parameters(model_config_or_dir: Any, method_name: str, settings: Any = None, task: str = "causal") -> dict:
    """{trainable, total, percent} after `method_name`'s prepare, as peft's print_trainable_parameters says.

    `task` picks the head (`task_of(stage)`): a classifier's head has num_labels outputs, not the vocabulary."""
    model = _prepared(load_config(model_config_or_dir), method_name, settings, task)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable": trainable, "total": total, "percent": 100.0 * trainable / max(total, 1)}


def model_shape(config: Any, task: str = "causal") -> dict:
    """Sizes the estimate needs: params, linear weights a quantiser would pack, hidden, layers, and the width
    of the output scores (the vocabulary; a classifier's labels). An encoder-decoder counts both stacks."""
    from torch import nn

    model = _build(config, "meta", task)
    head = model.get_output_embeddings()
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear) and m is not head)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    layers = text.num_hidden_layers + (getattr(text, "num_decoder_layers", 0) or 0 if task == "seq2seq" else 0)
    outputs = config.num_labels if task == "classify" else text.vocab_size
    return {"params": sum(p.numel() for p in model.parameters()), "linear": linear, "hidden": text.hidden_size,
            "layers": layers, "vocab": outputs}


def estimate_training_memory(config: Any, method: str, settings: Any, batch_size: int, seq_len: int,
                             precision: str = "auto", gradient_checkpointing: bool = False,
                             device_kind: str | None = None, counts: dict | None = None, task: str = "causal",
                             lean_logits: bool = False, strategy: str = "ddp", world: int = 1,
                             processes: int = 1) -> dict:
    """Peak training memory in bytes: {weights, gradients, optimizer, activations, logits, total}, of one device.

    `batch_size` is the rows of one forward/backward pass (the micro-batch); `lean_logits` means the loss never
    holds the full logits (`studio.stages.lean_loss`: one chunk of rows x vocabulary at a time). With `world`
    devices in all (`resources`), each holds its `strategy`'s share (`per_device`); on a CPU, where this
    machine's `processes` share one memory, the total is theirs together."""
    from studio.methods import METHODS
    from studio.methods.base import PeftMethod

    config = load_config(config)
    cls = METHODS.get(method, field="method.name")
    settings = settings if settings is not None else cls.settings_cls()
    counts = counts or count_parameters(config, method, settings, task)
    shape = model_shape(config, task)
    kind = device_kind or device_memory()["kind"]
    if precision == "auto":
        from studio.models.loading import resolve_precision

        precision = resolve_precision("auto", kind)
    half = precision in ("bf16", "fp16")
    trainable, total = counts["trainable"], counts["total"]
    quant = cls.load_kwargs(settings).get("quantization_config")
    if quant is not None:  # a quantised base: the block linears are packed, the rest is float32
        bits = 4 if getattr(quant, "load_in_4bit", False) else 8
        weights = QUANT_BYTES[bits] * shape["linear"] + 4 * (total - shape["linear"])
    elif half and kind == "cuda" and issubclass(cls, PeftMethod):  # frozen base stored in bf16 (stages.trainer_setup)
        weights = 2 * (total - trainable) + 4 * trainable
    else:
        weights = 4 * total + (2 * shape["linear"] if half else 0)
    base_trains = trainable > 0.5 * total
    keeps_dropout_copies = any(getattr(settings, k, 0) for k in ("dropout", "rank_dropout", "module_dropout"))
    act = ACT["cuda" if kind == "cuda" else "cpu"]
    c = act["trained"] if base_trains else (act["frozen"] if keeps_dropout_copies else act["lean"])
    c *= 1.0 if half else ACT_FP32_FACTOR
    tokens = batch_size * (seq_len + int(getattr(settings, "num_virtual_tokens", 0) or 0))
    if gradient_checkpointing:
        activations = tokens * shape["hidden"] * (4 * shape["layers"] + c)
    else:
        activations = tokens * shape["hidden"] * shape["layers"] * c
    if lean_logits:  # one chunk of logits, its softmax and its gradient, however long the batch
        from studio.stages.lean_loss import CHUNK_ELEMENTS

        logits = min(tokens * shape["vocab"], CHUNK_ELEMENTS) * 4 * LEAN_LOGIT_COPIES
    else:
        logits = tokens * shape["vocab"] * 4 * LOGIT_COPIES
    parts = {"weights": weights, "gradients": 4 * trainable, "optimizer": 8 * trainable,
             "activations": activations, "logits": logits}
    parts = {k: int(v) for k, v in per_device(parts, strategy, world, shape["layers"]).items()}
    activations, logits = parts["activations"], parts["logits"]
    parts["total"] = (parts["weights"] + parts["optimizer"] + max(parts["gradients"], activations + logits)
                      + RUNTIME_OVERHEAD["cuda" if kind == "cuda" else "cpu"])
    if kind != "cuda" and processes > 1:  # a CPU's processes each hold their own copy in the one memory
        parts["total"] *= processes
    return parts


def per_device(parts: dict, strategy: str = "ddp", world: int = 1, layers: int = 1) -> dict:
    """One device's share of a run's memory when `world` devices train it (`resources.strategy`), from the ZeRO
    paper's accounting, not yet fitted to measured peaks: 'ddp' keeps a whole copy on each device plus DDP's
    gradient buckets (a second copy of the gradients); 'deepspeed-zero2' splits gradients and optimizer state;
    'fsdp' and 'deepspeed-zero3' split the weights too, and gather two layers' worth at a time to compute."""
    if world <= 1:
        return parts
    out = dict(parts)
    if strategy in ("fsdp", "deepspeed-zero3"):
        out["weights"] = parts["weights"] / world + 2 * parts["weights"] / max(layers, 1)
    if strategy == "ddp":
        out["gradients"] = 2 * parts["gradients"]
    else:
        out["gradients"] = parts["gradients"] / world
        out["optimizer"] = parts["optimizer"] / world
    return out


def device_memory() -> dict:
    """{kind: 'cuda'|'cpu', total_bytes, free_bytes} of the device training would use."""
    import torch

    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        return {"kind": "cuda", "total_bytes": int(total), "free_bytes": int(free)}
    import psutil

    vm = psutil.virtual_memory()
    return {"kind": "cpu", "total_bytes": int(vm.total), "free_bytes": int(vm.available)}


__all__ = ["task_of", "count_parameters", "estimate_training_memory", "per_device", "device_memory", "model_shape", "load_config"]
