"""Loading a causal language model and its tokenizer for training or generation.

`load_causal_lm` resolves the recipe's model name with `catalogue.resolve_model`, checks that it is a
causal language model before loading any weights, and loads weights from safetensors only (a pickled
`.bin` checkpoint can run code when unpickled). For training the weights stay in float32 whatever
the precision: the trainer's `bf16=True` runs the forward and backward passes under bf16 autocast
(the matmuls, where the speed is) while the optimizer updates float32 master weights. Updating
bf16 weights directly would round away most updates (bf16 keeps 8 significant bits, so a step
smaller than 1/256 of a weight is lost). For generation the weights are loaded in the resolved
precision, which halves memory in bf16. Every failure a person can cause (a missing file, a model
that is not a causal LM, a precision the hardware lacks) becomes a one-sentence `StudioError`;
moving the model to a device and building the trainer are left to the callers.
"""
from __future__ import annotations

import logging
from pathlib import Path

from studio.errors import StudioError
from studio.models import catalogue, embedded

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def _cpu_has_bf16() -> bool:
    import torch

    # Without AVX512-BF16 or AMX, bf16 on a CPU is emulated and slower than fp32.
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    if any(getattr(torch.cpu, name, lambda: False)() for name in checks):
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(requested: str, device: str | None = None) -> str:
    """'bf16', 'fp16' or 'fp32' for `requested` on `device` ('cpu', 'cuda'; None: cuda if present)."""
    import torch

    requested = (requested or "auto").strip().lower()
    if requested not in PRECISIONS:
        choices = ', '.join(PRECISIONS)
        raise StudioError(f"Unknown precision '{requested}'; choose one of {choices}",
                          field="train.precision", key="model.unknown_precision", precision=requested,
                          choices=choices)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    on_gpu = device.startswith("cuda")
    has_bf16 = torch.cuda.is_bf16_supported() if on_gpu else _cpu_has_bf16()
    if requested == "auto":
        return "bf16" if has_bf16 else "fp32"
    if requested == "fp16" and not on_gpu:
        raise StudioError("fp16 training needs a GPU; on this CPU choose precision 'auto', 'bf16' or "
                          "'fp32'", field="train.precision", key="model.fp16_needs_gpu")
    if requested == "bf16" and not has_bf16:
        where = "GPU" if on_gpu else "CPU (it lacks AVX512-BF16 and AMX)"
        message = f"This {where} has no fast bf16; choose precision 'auto' or 'fp32'"
        if on_gpu:
            raise StudioError(message, field="train.precision", key="model.no_bf16_gpu")
        raise StudioError(message, field="train.precision", key="model.no_bf16_cpu")
    return requested


def precision_reason(requested: str, device: str | None = None) -> str:
    """The precision a run trains in and why, in one sentence: 'Precision fp32 (auto: this CPU lacks AVX512-BF16 and
    AMX, so bf16 would be emulated and slower).'"""
    import torch

    resolved = resolve_precision(requested, device)
    if (requested or "auto").strip().lower() != "auto":
        return f"Precision {resolved} (set in the recipe)."
    on_gpu = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    if resolved == "bf16":
        why = "this GPU computes bf16 natively" if on_gpu else "this CPU has AVX512-BF16 or AMX"
        return f"Precision bf16 (auto: {why}; weights stay fp32, the passes run under bf16 autocast)."
    why = ("this GPU has no bf16" if on_gpu else
           "this CPU lacks AVX512-BF16 and AMX, so bf16 would be emulated and slower")
    return f"Precision fp32 (auto: {why})."


def torch_dtype(precision: str):
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


def _check_causal_lm(source: Path | str, spec: str, trust_remote_code: bool):
    """The model's config, after checking it describes a causal LM (reads config.json only)."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        raise StudioError(f"Model '{spec}' has no readable config.json ({_first_line(error)}); point "
                          "to a folder saved with save_pretrained or a hub model id", field="model",
                          key="model.no_config", spec=spec, reason=_first_line(error)) from None
    causal_classes = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    architectures = getattr(config, "architectures", None) or []
    remote_causal = "AutoModelForCausalLM" in (getattr(config, "auto_map", None) or {})
    known_type = config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    # BertModel's config maps to BertLMHeadModel too, so the saved architecture decides, not the type.
    if remote_causal or (known_type and (not architectures or set(architectures) & causal_classes)):
        return config
    what = architectures[0] if architectures else config.model_type
    raise StudioError(f"Model '{spec}' is a {what}, not a causal language model; choose a text "
                      f"generation model such as '{catalogue.DEFAULT_MODEL}'", field="model",
                      key="model.not_causal_lm", spec=spec, what=what, default_model=catalogue.DEFAULT_MODEL)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def load_causal_lm(spec: str, ws, precision: str = "fp32", trust_remote_code: bool = False,
                   for_training: bool = True, **load_kwargs):
    """(model, tokenizer) for `spec`; float32 weights for training, `precision` ones otherwise.

    `load_kwargs` go to `from_pretrained` (a method's extras, e.g. a 4-bit quantization config)."""
    from transformers import AutoModelForCausalLM

    resolved = resolve_precision(precision)
    source = catalogue.resolve_model(spec, ws)
    _check_causal_lm(source, spec, trust_remote_code)
    if isinstance(source, Path) and not any(source.glob("*.safetensors")) and any(source.glob("*.bin")):
        raise StudioError(f"Model '{spec}' has only pickled .bin weights, which the studio does not load "
                          "(unpickling can run code); re-save it with save_pretrained to get "
                          ".safetensors", field="model", key="model.bin_weights", spec=spec)
    dtype = torch_dtype("fp32" if for_training else resolved)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code, **load_kwargs)
    except OSError as error:
        raise StudioError(f"Could not load the weights of model '{spec}' ({_first_line(error)}); the "
                          "studio loads only .safetensors weights", field="model",
                          key="model.weights_unloadable", spec=spec, reason=_first_line(error)) from None
    except ValueError as error:
        raise StudioError(f"Model '{spec}' could not be loaded as a causal language model "
                          f"({_first_line(error)})", field="model",
                          key="model.not_loadable_causal_lm", spec=spec, reason=_first_line(error)) from None
    tokenizer = _load_tokenizer_from(source, spec, trust_remote_code)
    log.info("Loaded %s from %s (%s weights)", spec, source, str(dtype).removeprefix("torch."))
    return model, tokenizer


def _load_tokenizer_from(source: Path | str, spec: str, trust_remote_code: bool, light: bool = False):
    try:
        if light and not trust_remote_code and (Path(source) / "tokenizer.json").is_file():
            # The same fast tokenizer and chat template, without the import of torch that AutoTokenizer costs.
            from transformers import PreTrainedTokenizerFast

            tokenizer = PreTrainedTokenizerFast.from_pretrained(source)
        else:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as error:
        raise StudioError(f"Model '{spec}' has no usable tokenizer ({_first_line(error)})",
                          field="model", key="model.no_tokenizer", spec=spec, reason=_first_line(error)) from None
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        # Batching needs a pad token; padded positions are masked out of attention and loss anyway.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_tokenizer(spec: str, ws, trust_remote_code: bool = False, light: bool = False):
    """The tokenizer of `spec`, with a pad token; for the embedded LM, without converting weights. `light`: for a
    folder with tokenizer.json, skip what only training needs (seconds less for a command that only previews)."""
    if (spec or "").strip().lower() == catalogue.DEFAULT_MODEL:
        converted = ws.models_dir / embedded.SMOLLM2_DIRNAME
        # Counting tokens or previewing a chat template must not wait 20 s for a weight conversion.
        source = converted if embedded.is_converted(converted) else \
            embedded.ensure_smollm2_tokenizer(ws.models_dir)
    else:
        source = catalogue.resolve_model(spec, ws)
    return _load_tokenizer_from(source, spec, trust_remote_code, light)
