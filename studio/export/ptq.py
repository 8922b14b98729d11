"""Post-training int8 for CPU inference: int8 weights and scales in safetensors, reloaded without pickles.

Every `nn.Linear` of a causal LM becomes an `Int8Linear`: int8 weights with one float32 scale per output
channel, multiplied by `torch._int_mm` (int8 x int8 -> int32 on any CPU) and rescaled. The input embedding becomes an
`Int8Embedding` (int8 rows, one scale per row); a tied LM head shares those rows. Activations are quantised in
one of two schemes (`bench/ptq_choice.py` measured them against fp32, torch's `quantize_dynamic` and torchao):
- "dynamic": each token's input scale is its own max |x| at run time; needs no calibration.
- "smoothed": dynamic per-token scales on inputs smoothed with SmoothQuant factors from calibration texts
  (`studio.export.calibration`): outlier channels' range moves into the per-channel weight scales.
- "static": calibration texts fix each layer's input scale ahead of time, after SmoothQuant smoothing, which is
  what makes per-tensor activation scales work at all on LLM activations (and saves the per-token max at run time).
"auto" without calibration texts is dynamic. With calibration texts it quantises all three ways and keeps the one
with the lowest perplexity on those texts (the user's own data), recording every score in int8.json: calibration
chooses by measurement, since which scheme wins depends on the model (on SmolLM2-135M dynamic per-token scales
cost +1.6% perplexity against fp32, static per-tensor ones +179%, +36% with smoothing).

`save_int8` writes `model-int8.safetensors` (int8 weights, scales, smoothing factors, the remaining float
tensors), `int8.json` (the scheme and which layers are int8), the config, generation config and tokenizer.
`load_int8` rebuilds the model from the config and those tensors alone. Choosing calibration texts is the export
pipeline's; measuring quality is `studio.export.report`'s.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Callable

import torch

from studio.errors import StudioError
from studio.export import calibration
from studio.phase import Phase

SCHEMES = ("auto", "dynamic", "smoothed", "static")
CALIBRATED = ("smoothed", "static")
WEIGHTS_FILE = "model-int8.safetensors"
SCHEME_FILE = "int8.json"
FORMAT = "studio-int8"


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row: (int8 [rows, cols], float32 scale [rows]) with weight ~ int8 * scale[:, None]."""
    w = weight.detach().float()
    scale = (w.abs().amax(dim=1) / 127).clamp(min=1e-12)
    return torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8), scale


class Int8Linear(torch.nn.Module):
    """y = x W^T + b with W in int8 per output channel; static layers also carry an input scale and smoothing."""

    def __init__(self, qweight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None,
                 input_scale: torch.Tensor | None = None, smooth: torch.Tensor | None = None):
        super().__init__()
        self.out_features, self.in_features = qweight.shape
        self.register_buffer("qweight", qweight)
        self.register_buffer("scale", scale)
        for name, value in (("bias", bias), ("input_scale", input_scale), ("smooth", smooth)):
            self.register_buffer(name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).float()
        if self.smooth is not None:
            flat = flat / self.smooth
        if self.input_scale is not None:
            act_scale = self.input_scale
        else:
            # Dynamic: one scale per token. A per-tensor scale lets one outlier token flatten all the others
            # (measured on SmolLM2: perplexity +244% per tensor, as torch's quantize_dynamic; see the bench).
            act_scale = flat.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / calibration.ACT_LEVELS
        q = torch.round(flat / act_scale).clamp(-calibration.ACT_LEVELS, calibration.ACT_LEVELS).to(torch.int8)
        y = torch._int_mm(q, self.qweight.t()).float() * (act_scale * self.scale)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)


class Int8Embedding(torch.nn.Module):
    """An embedding table stored as int8 rows with one float32 scale per row, dequantised on lookup."""

    def __init__(self, qweight: torch.Tensor, scale: torch.Tensor, padding_idx: int | None = None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = qweight.shape
        self.padding_idx = padding_idx
        self.register_buffer("qweight", qweight)
        self.register_buffer("scale", scale)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.embedding(ids, self.qweight).float() * self.scale[ids].unsqueeze(-1)


def _set(model: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def resolve_scheme(scheme: str, calibration_texts: list[str] | None) -> str:
    scheme = (scheme or "auto").strip().lower()
    if scheme not in SCHEMES:
        choices = ", ".join(SCHEMES)
        raise StudioError(f"Unknown int8 scheme '{scheme}'; choose one of {choices}.", field="scheme",
                          key="export.int8.bad_scheme", scheme=scheme, choices=choices)
    if scheme in CALIBRATED and not calibration_texts:
        raise StudioError(f"The {scheme} int8 scheme needs calibration texts; give a calibration file or dataset, "
                          "or choose the dynamic scheme.", field="calibration",
                          key="export.int8.static_needs_texts", scheme=scheme)
    if scheme == "auto":
        return "auto" if calibration_texts else "dynamic"
    return scheme


def calibration_perplexity(model: torch.nn.Module, tokenizer, texts: list[str], max_tokens: int = 1024) -> float:
    """Perplexity of `model` on the first `max_tokens` tokens of the calibration texts."""
    import math

    from studio.export.report import score_ids

    ids = tokenizer("\n\n".join(texts), add_special_tokens=True)["input_ids"][:max_tokens]
    if len(ids) < 2:
        return float("nan")
    nll, _ = score_ids(model, ids, calibration.WINDOW)
    return math.exp(nll / (len(ids) - 1))


def choose_scheme(model, tokenizer, texts: list[str], progress=None) -> tuple[torch.nn.Module, dict]:
    """Quantise every way, keep the int8 model with the lowest calibration perplexity; its meta lists all scores."""
    progress = progress or (lambda fraction, message: None)
    best, scores = None, {}
    progress(0.0, Phase("calibrating activation ranges", "calibrating"))
    maxima = calibration.input_channel_maxima(model, tokenizer, texts)
    for i, scheme in enumerate(("dynamic", "smoothed", "static")):
        progress(i / 3, Phase(f"trying the {scheme} int8 scheme on the calibration texts", "trying_scheme",
                                scheme=scheme))
        qmodel, meta = quantize(model, tokenizer, texts, scheme, maxima=maxima)
        scores[scheme] = round(calibration_perplexity(qmodel, tokenizer, texts), 4)
        if best is None or scores[scheme] < best[2]:
            best = (qmodel, meta, scores[scheme])
        else:
            del qmodel
    qmodel, meta, _ = best
    meta["chosen_by"] = {"calibration_perplexity": scores}
    return qmodel, meta


def quantize(model: torch.nn.Module, tokenizer=None, calibration_texts: list[str] | None = None,
             scheme: str = "auto", progress: Callable[[float, str], None] | None = None,
             maxima: dict | None = None) -> tuple[torch.nn.Module, dict]:
    """An int8 copy of `model` (the original is left as it was) and its `int8.json` description; `maxima` are
    input channel maxima already measured on the calibration texts."""
    scheme = resolve_scheme(scheme, calibration_texts)
    progress = progress or (lambda fraction, message: None)
    if scheme == "auto":
        return choose_scheme(model, tokenizer, calibration_texts, progress)
    if scheme in CALIBRATED and maxima is None:
        progress(0.0, Phase("calibrating activation ranges", "calibrating"))
        maxima = calibration.input_channel_maxima(model, tokenizer, calibration_texts)
    progress(0.4, Phase("quantising weights", "quantising"))
    qmodel = copy.deepcopy(model).to("cpu", torch.float32).eval()
    embedding = qmodel.get_input_embeddings()
    head = qmodel.get_output_embeddings()
    tied = head is not None and isinstance(embedding, torch.nn.Embedding) and head.weight is embedding.weight
    names = {module: name for name, module in qmodel.named_modules()}
    meta = {"format": FORMAT, "version": 1, "scheme": scheme, "activation_levels": calibration.ACT_LEVELS,
            "smooth_alpha": calibration.SMOOTH_ALPHA if scheme in CALIBRATED else None,
            "embedding": None, "tied_head": names[head] if tied else None, "linears": []}
    if isinstance(embedding, torch.nn.Embedding):
        qweight, scale = quantize_rows(embedding.weight)
        _set(qmodel, names[embedding], Int8Embedding(qweight, scale, embedding.padding_idx))
        meta["embedding"] = names[embedding]
    for name, module in list(qmodel.named_modules()):
        if not isinstance(module, torch.nn.Linear):
            continue
        weight, smooth, input_scale = module.weight.detach().float(), None, None
        if scheme in CALIBRATED and name in maxima:
            # A tied head shares the embedding's int8 rows, so its columns cannot be rescaled.
            if not (tied and module is head):
                smooth = calibration.smoothing_factors(maxima[name], weight)
                weight = weight * smooth
            if scheme == "static":
                input_scale = torch.tensor(calibration.static_input_scale(maxima[name], smooth))
        if tied and module is head:
            emb = qmodel.get_input_embeddings()
            qweight, scale = emb.qweight, emb.scale
        else:
            qweight, scale = quantize_rows(weight)
        bias = module.bias.detach().float() if module.bias is not None else None
        _set(qmodel, name, Int8Linear(qweight, scale, bias, input_scale, smooth))
        meta["linears"].append(name)
    meta["calibration_texts"] = len(calibration_texts or []) if scheme in CALIBRATED else 0
    return qmodel, meta


def save_int8(model, tokenizer, out_dir: Path, calibration_texts: list[str] | None = None, scheme: str = "auto",
              progress: Callable[[float, str], None] | None = None) -> dict:
    """Quantise `model` and write the int8 export into `out_dir`; returns what was written."""
    from safetensors.torch import save_file

    progress = progress or (lambda fraction, message: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    qmodel, meta = quantize(model, tokenizer, calibration_texts, scheme, progress)
    progress(0.8, Phase("writing int8 weights", "writing_int8"))
    state = qmodel.state_dict()
    if meta["tied_head"]:
        # The head's int8 rows are the embedding's; its own input scale (static) is still saved.
        shared = {f"{meta['tied_head']}.qweight", f"{meta['tied_head']}.scale"}
        state = {k: v for k, v in state.items() if k not in shared}
    save_file({k: v.contiguous() for k, v in state.items()}, str(out_dir / WEIGHTS_FILE), metadata={"format": FORMAT})
    (out_dir / SCHEME_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    model.config.save_pretrained(out_dir)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(out_dir)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    progress(1.0, Phase("done", "done"))
    return {"path": str(out_dir), "scheme": meta["scheme"], "smooth_alpha": meta["smooth_alpha"],
            "calibration_texts": meta["calibration_texts"], "int8_layers": len(meta["linears"]),
            "chosen_by": meta.get("chosen_by"),
            "bytes": (out_dir / WEIGHTS_FILE).stat().st_size}


def load_int8(path: Path) -> tuple[torch.nn.Module, object]:
    """The model and tokenizer of an int8 export, rebuilt from its config and safetensors (no pickled modules)."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.initialization import no_init_weights

    path = Path(path)
    if not (path / SCHEME_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        raise StudioError(f"'{path}' is not an int8 export (it lacks {SCHEME_FILE} or {WEIGHTS_FILE}); choose the "
                          "folder that the int8 export wrote.", field="path", key="export.int8.not_an_export",
                          path=str(path))
    meta = json.loads((path / SCHEME_FILE).read_text(encoding="utf-8"))
    tensors = load_file(str(path / WEIGHTS_FILE))
    with no_init_weights():
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path), dtype=torch.float32)

    def pick(prefix: str, key: str):
        return tensors.get(f"{prefix}.{key}")

    if meta["embedding"]:
        old = model.get_submodule(meta["embedding"])
        _set(model, meta["embedding"], Int8Embedding(pick(meta["embedding"], "qweight"),
                                                     pick(meta["embedding"], "scale"), old.padding_idx))
    for name in meta["linears"]:
        source = meta["embedding"] if name == meta["tied_head"] else name
        _set(model, name, Int8Linear(pick(source, "qweight"), pick(source, "scale"), pick(name, "bias"),
                                     pick(name, "input_scale"), pick(name, "smooth")))
    # The int8 modules already hold their tensors; this loads the float rest and checks nothing is left out.
    missing, unexpected = model.load_state_dict(tensors, strict=False, assign=True)
    shared = {f"{meta['tied_head']}.qweight", f"{meta['tied_head']}.scale"} if meta["tied_head"] else set()
    missing = [k for k in missing if k not in shared]
    if missing or unexpected:
        raise StudioError(f"The int8 export in '{path}' does not match its config (missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]}); export the model again.", field="path",
                          key="export.int8.mismatch", path=str(path))
    return model.eval(), AutoTokenizer.from_pretrained(path)
