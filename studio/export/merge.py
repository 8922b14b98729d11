"""Merged models and adapter folders, each with a model card that says where it came from.

`save_merged` writes a full Hugging Face model (safetensors in the chosen dtype, tokenizer with its chat template,
generation config) that `from_pretrained` loads with no studio installed. `save_adapter` copies a run's adapter
folder as it was trained and adds `base_model.json` naming the base it needs, which is the only export for methods
whose result is not a weight change (prompt/prefix tuning, bottleneck adapters, LLaMA-Adapter). `model_card`
writes README.md: base model, dataset, stage, method, the recipe and the run's final metrics.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from studio.errors import StudioError
from studio.export.source import ExportSource

DTYPES = ("fp16", "bf16", "fp32")


def check_dtype(dtype: str) -> str:
    dtype = (dtype or "fp16").strip().lower()
    if dtype not in DTYPES:
        raise StudioError(f"Unknown dtype '{dtype}' for a merged model; choose one of {', '.join(DTYPES)}.",
                          field="dtype", key="export.merge.dtype", dtype=dtype, choices=", ".join(DTYPES))
    return dtype


def folder_bytes(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def save_merged(model: Any, tokenizer: Any, out_dir: Path, source: ExportSource, dtype: str = "fp16",
                extra: dict | None = None) -> dict:
    """Write `model` (already merged) as a full model in `dtype`, leaving `model` as it was; returns {path, dtype,
    bytes}."""
    from studio.models.loading import torch_dtype

    dtype = check_dtype(dtype)
    out_dir = Path(out_dir)
    target = torch_dtype(dtype)
    # Cast tensor by tensor on the way out: the float32 model in memory stays the report's reference, and no
    # second full copy of it is made.
    cast: dict[int, Any] = {}  # by storage: tied weights (embeddings = lm_head) stay one tensor, saved once
    state = {k: cast.setdefault(v.data_ptr(), v.to(target) if v.is_floating_point() else v)
             for k, v in model.state_dict().items()}
    previous = model.config.dtype
    try:
        model.save_pretrained(out_dir, state_dict=state, safe_serialization=True)
    finally:
        model.config.dtype = previous
    # save_pretrained records the dtype of the model in memory; the file holds `target`.
    config_path = out_dir / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["dtype"] = str(target).removeprefix("torch.")
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tokenizer.save_pretrained(out_dir)
    if getattr(model, "generation_config", None) is not None and model.can_generate():
        model.generation_config.save_pretrained(out_dir)
    write_model_card(out_dir, source, "merged", {"dtype": dtype, **(extra or {})})
    return {"path": str(out_dir), "dtype": dtype, "bytes": folder_bytes(out_dir)}


def save_adapter(source: ExportSource, out_dir: Path) -> dict:
    """Copy a run's adapter folder and record its base model; returns {path, bytes, base_model}."""
    if not source.is_run:
        raise StudioError(f"'{source.spec}' is a base model, not a run, so it has no adapter; choose 'merged' or a "
                          "quantised format.", field="format", key="export.merge.no_adapter", spec=source.spec)
    if source.result_kind == "model":
        raise StudioError(f"Run '{source.name}' saved a full model (method '{source.method}'), not an adapter; "
                          "choose 'merged'.", field="format", key="export.merge.full_model", name=source.name,
                          method=source.method)
    out_dir = Path(out_dir)
    shutil.copytree(source.result_dir, out_dir, dirs_exist_ok=True)
    reference = {"base_model": source.base, "method": source.method, "stage": source.run.get("stage"),
                 "run": source.run["id"], "mergeable": source.mergeable,
                 "load": _load_hint(source)}
    (out_dir / "base_model.json").write_text(json.dumps(reference, indent=2) + "\n", encoding="utf-8")
    write_model_card(out_dir, source, "adapter", {})
    return {"path": str(out_dir), "bytes": folder_bytes(out_dir), "base_model": source.base}


def _load_hint(source: ExportSource) -> str:
    if source.method == "bottleneck":
        return ("Bottleneck adapters load with Fine-tuning Studio (studio.methods.bottleneck) on the base model "
                "named here.")
    return ("from transformers import AutoModelForCausalLM; from peft import PeftModel; "
            f"PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained('{source.base}'), '<this folder>')")


def _final_metrics(source: ExportSource) -> dict:
    from studio.workspace import read_metrics

    final: dict = {}
    for event in read_metrics(Path(source.run["run_dir"])) if source.run else []:
        for key, value in event.items():
            if (key == "loss" or key.startswith("eval_")) and isinstance(value, (int, float)):
                final[key] = value
    summary = source.summary()
    for key, value in summary.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            final.setdefault(key, value)
    return final


def write_model_card(out_dir: Path, source: ExportSource, fmt: str, details: dict) -> Path:
    """README.md with Hugging Face front matter, the provenance table, the recipe and the final metrics."""
    run = source.run or {}
    tags = ["fine-tuning-studio", fmt] + ([source.method] if source.method else [])
    front = ["---", f"base_model: {source.base}", "library_name: " + ("peft" if fmt == "adapter" else "transformers"),
             "tags:"] + [f"- {tag}" for tag in tags] + ["---", ""]
    rows = [("Base model", source.base), ("Exported as", fmt),
            ("Run", f"{run.get('name')} ({run.get('id')})" if run else "none (base model)"),
            ("Stage", run.get("stage", "")), ("Method", source.method or ""), ("Dataset", run.get("dataset", ""))]
    rows += [(key, str(value)) for key, value in details.items()]
    lines = front + [f"# {source.name}", "", "Exported by Fine-tuning Studio.", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows if value]
    metrics = _final_metrics(source)
    if metrics:
        lines += ["", "## Final metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {key} | {value:.4g} |" for key, value in sorted(metrics.items())]
    recipe = source.recipe_yaml()
    if recipe:
        lines += ["", "## Recipe", "", "```yaml", recipe.rstrip(), "```"]
    path = Path(out_dir) / "README.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
