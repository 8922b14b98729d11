"""What an export starts from: a finished run or a base model, and how to load it as one model.

`resolve_source` accepts a run id (or `run:<id>`, or a run's name when it is unique) or a model spec (embedded
alias, hub id, local folder) and refuses what cannot be exported: a run that is queued, running, failed or has no
saved result. `load_source` gives the model to export in memory: a run's adapter folded into its base weights
(`merge_and_unload`) when its method is mergeable, the full model a full/partial fine-tune saved, or the base model
itself. The head follows the run: classifiers and reward models (a `labels.json` beside the result) reload as
sequence classifiers with their labels, seq2seq runs as encoder-decoders, everything else as a causal LM.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import StudioError
from studio.models.refs import parse

CAUSAL, CLASSIFIER, SEQ2SEQ = "causal", "classifier", "seq2seq"


@dataclass
class ExportSource:
    spec: str                     # what the user asked for
    name: str                     # a short, file-safe name for folders
    base: str                     # the base model spec (the run's model, or the spec itself)
    head: str = CAUSAL
    run: dict | None = None
    method: str | None = None
    result_dir: Path | None = None
    result_kind: str = "base"     # "adapter", "model" or "base"
    mergeable: bool = True
    labels: list[str] = field(default_factory=list)

    @property
    def is_run(self) -> bool:
        return self.run is not None

    def why_not_mergeable(self) -> str:
        """Why the run's method cannot be folded into the base weights (`Method.not_mergeable_why`)."""
        from studio.methods import METHODS
        from studio.methods.base import Method

        return getattr(dict(METHODS.items()).get(self.method or ""), "not_mergeable_why", Method.not_mergeable_why)

    def recipe_yaml(self) -> str:
        path = Path(self.run["run_dir"]) / "recipe.yaml" if self.run else None
        return path.read_text(encoding="utf-8") if path and path.exists() else ""

    def summary(self) -> dict:
        """The run's summary.json (final metrics, peaks), {} for a base model."""
        path = Path(self.run["run_dir"]) / "summary.json" if self.run else None
        if path and path.exists():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                return {}
        return {}


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:80] or "model"


def _find_run(ws, spec: str) -> dict | None:
    ref = parse(spec)
    run_id = ref.run_id if ref.is_run else ref.spec
    run = ws.get_run(run_id)
    if run is not None:
        return run
    named = [r for r in ws.list_runs() if r.get("name") == run_id]
    if len(named) > 1 and ref.is_run:
        ids = ", ".join(r["id"] for r in named[:5])
        raise StudioError(f"Several runs are named '{run_id}' ({ids}); give the run id instead.", field="source",
                          key="export.source.ambiguous", name=run_id, ids=ids)
    if len(named) == 1:
        return named[0]
    if ref.is_run:
        raise StudioError(f"Run '{run_id}' does not exist; pick a run from `studio runs`.", field="source",
                          key="export.source.no_run", run_id=run_id)
    return None


def _run_source(ws, spec: str, run: dict) -> ExportSource:
    from studio.methods import METHODS

    label = run.get("name") or run["id"]
    status = run.get("status")
    if status in ("queued", "running", "cancelling"):
        raise StudioError(f"Run '{label}' is {status}; wait until it completes, then export it.", field="source",
                          key="export.source.active", name=label, status=status)
    result_dir = Path(run["result_dir"]) if run.get("result_dir") else None
    if status != "completed" or result_dir is None or not result_dir.exists():
        raise StudioError(f"Run '{label}' ended '{status}' without a saved result; only completed runs export "
                          "(resume it from the Runs tab, or pick another run).", field="source",
                          key="export.source.not_completed", name=label, status=status)
    method = METHODS.get(run["method"], field="method")
    labels_file = result_dir / "labels.json"
    labels = json.loads(labels_file.read_text(encoding="utf-8"))["labels"] if labels_file.exists() else []
    from studio.stages.base import capability

    head = CLASSIFIER if labels else SEQ2SEQ if capability(run.get("stage"), "task") == "seq2seq" else CAUSAL
    kind = "model" if method.result_kind == "model" else "adapter"
    return ExportSource(spec=spec, name=safe_name(label), base=run["model"], head=head, run=run,
                        method=run["method"], result_dir=result_dir, result_kind=kind,
                        mergeable=kind == "model" or bool(method.mergeable), labels=labels)


def resolve_source(ws, spec: str) -> ExportSource:
    """The run or model `spec` names, checked for export (no weights are loaded)."""
    spec = (spec or "").strip()
    if not spec:
        raise StudioError("Choose what to export: a finished run or a model.", field="source",
                          key="export.source.empty")
    run = _find_run(ws, spec)
    if run is not None:
        return _run_source(ws, spec, run)
    from studio.models import catalogue

    catalogue.check_model(spec, ws)
    return ExportSource(spec=spec, name=safe_name(Path(spec).name if "/" in spec else spec), base=spec)


def _load_base(ws, source: ExportSource) -> tuple[Any, Any]:
    if source.head == CLASSIFIER:
        from studio.stages.classify import load_classifier

        return load_classifier(source.base, ws, source.labels)
    if source.head == SEQ2SEQ:
        from studio.stages.seq2seq import load_seq2seq_lm

        return load_seq2seq_lm(source.base, ws)
    from studio.models.loading import load_causal_lm

    return load_causal_lm(source.base, ws, precision="fp32", for_training=False)


def load_source(ws, source: ExportSource) -> tuple[Any, Any]:
    """(model, tokenizer) with the run's result applied and any adapter merged, float32, in eval mode."""
    from studio.methods import METHODS

    if source.is_run and not source.mergeable:
        raise StudioError(f"Method '{source.method}' cannot be merged into the base weights: "
                          f"{source.why_not_mergeable()}; export it as 'adapter'.", field="format",
                          key="export.source.not_mergeable", method=source.method, why=source.why_not_mergeable())
    model, tokenizer = _load_base(ws, source)
    if source.is_run:
        model = METHODS.get(source.method, field="method").load_result(model, source.result_dir)
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
    if source.is_run:
        # The run saved its tokenizer beside the result (a chat template set for training lives there).
        tokenizer = _result_tokenizer(source.result_dir) or tokenizer
    return model.eval(), tokenizer


def _result_tokenizer(result_dir: Path):
    from transformers import AutoTokenizer

    if not (result_dir / "tokenizer_config.json").exists():
        return None
    tokenizer = AutoTokenizer.from_pretrained(result_dir)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
