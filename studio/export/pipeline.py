"""One export, start to end: check the request, load the source, write the artifact, measure it, record it.

`ExportRequest` is what the Export tab and `studio export` send; `check_request` refuses what cannot work before
any weights load (an unknown format, GGUF for an architecture it does not support, a quantised format for a
classifier, an `out` folder holding anything but a previous export, or a previous export without `overwrite`).
`run_export` writes the artifact into a staged folder (`studio.export.staging`), so a failure or a full disk leaves
the previous export at `out` as it was, then adds `report.json` (what quantisation cost, measured by
`studio.export.report`) and `export.json` (the manifest the Export tab lists; it names every file written, so a
later export knows what it may replace). Progress goes to `progress(fraction, message)`; `should_stop()` is checked
between steps.
"""
from __future__ import annotations

import functools
import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from studio.errors import StudioError
from studio.paths import confined, user_path
from studio.export.merge import check_dtype, folder_bytes, save_adapter, save_merged, write_model_card
from studio.export.source import CAUSAL, ExportSource, load_source, resolve_source
from studio.export.staging import MANIFEST, check_out, export_files, folder_state, staged
from studio.phase import Phase

log = logging.getLogger(__name__)

FORMATS = ("merged", "adapter", "bnb8", "bnb4", "int8", "gguf")
QUANTISED = ("bnb8", "bnb4", "int8", "gguf")
BNB4_TYPES = ("nf4", "fp4")
Progress = Callable[[float, str], None]


@dataclass
class ExportRequest:
    source: str
    format: str = "merged"
    out: str | None = None           # default: STUDIO_HOME/exports/<name>-<format>[-<quant>][-2, -3...]
    quant: str | None = None         # gguf: F16, Q8_0, Q4_0...; bnb4: nf4 or fp4
    dtype: str = "fp16"              # merged models
    double_quant: bool = True        # bnb4
    calibration: str | None = None   # int8: a text/JSONL/CSV file or studio dataset for activation scales
    report: bool = True
    heldout: str | None = None       # a text file for the report's perplexity (default: the run's validation data)
    system: str | None = None        # gguf: the Ollama Modelfile's SYSTEM line
    overwrite: bool = False          # replace a previous studio export in `out` (never a folder of other files)

    @classmethod
    def from_dict(cls, values: dict) -> "ExportRequest":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})


def retry_request(params: dict) -> ExportRequest:
    """An interrupted or failed export's request, to run again. Its own earlier attempt may have finished writing
    `out` before the app went (an export is staged beside `out` and renamed at the end), so the retry may replace
    a studio export there (`overwrite`; never a folder of other files)."""
    return ExportRequest.from_dict({**params, "overwrite": True})


class Cancelled(Exception):
    pass


def check_request(ws, request: ExportRequest) -> tuple[ExportRequest, ExportSource]:
    """The request with its defaults filled in, and its source; StudioError for what cannot work."""
    fmt = (request.format or "").strip().lower()
    if fmt not in FORMATS:
        raise StudioError(f"Unknown export format '{request.format}'; choose one of {', '.join(FORMATS)}.",
                          field="format", key="export.pipeline.format", format=request.format,
                          choices=", ".join(FORMATS))
    request.format = fmt
    source = resolve_source(ws, request.source)
    if fmt in QUANTISED and source.head != CAUSAL:
        raise StudioError(f"'{fmt}' export is for text generation models; '{source.name}' is a {source.head} "
                          "model, so export it as 'merged' or 'adapter'.", field="format",
                          key="export.pipeline.not_causal", format=fmt, name=source.name, head=source.head)
    if fmt != "adapter" and source.is_run and not source.mergeable:
        raise StudioError(f"Method '{source.method}' cannot be merged into the base weights: "
                          f"{source.why_not_mergeable()}; export it as 'adapter'.", field="format",
                          key="export.source.not_mergeable", method=source.method, why=source.why_not_mergeable())
    if fmt == "merged":
        request.dtype = check_dtype(request.dtype)
    if fmt == "bnb4":
        request.quant = (request.quant or "nf4").strip().lower()
        if request.quant not in BNB4_TYPES:
            raise StudioError(f"4-bit bitsandbytes quantisation is 'nf4' or 'fp4', not '{request.quant}'.",
                              field="quant", key="export.pipeline.bnb4_type", quant=request.quant)
    if fmt == "gguf":
        from studio.export import gguf

        request.quant = gguf.check_quant(request.quant or "Q8_0")
        gguf.check_architecture(_config(ws, source))
    if request.heldout:
        user_path(request.heldout, "heldout")  # on a shared studio: inside the workspace or an allowed folder
    if request.calibration and confined():
        from studio.data.examples import is_studio_dataset

        if not is_studio_dataset(ws, request.calibration):
            user_path(request.calibration, "calibration")
    if request.heldout and not Path(request.heldout).is_file():
        raise StudioError(f"The held-out text file '{request.heldout}' does not exist; give a .txt file or leave "
                          "'heldout' empty to use the run's validation data.", field="heldout",
                          key="export.pipeline.heldout_missing", path=str(request.heldout))
    if request.calibration and fmt != "int8":
        raise StudioError("A calibration set is used by the int8 export only; clear 'calibration' or choose int8.",
                          field="calibration", key="export.pipeline.calibration_format")
    if request.out:
        user_path(request.out, "out", must_exist=False)
    else:
        suffix = f"-{request.quant}" if request.quant and fmt in ("gguf", "bnb4") else ""
        request.out = str(default_out(ws.home / "exports" / f"{source.name}-{fmt}{suffix}", request.overwrite))
    check_out(Path(request.out), request.overwrite)
    return request, source


def default_out(base: Path, overwrite: bool) -> Path:
    """`base`, unless it holds something this export may not replace: then the first of `base-2`, `base-3`... that
    is free (so exporting the same run again never stops on the default folder, and never deletes the last one
    unless `overwrite` asks for it)."""
    allowed = ("free", "export") if overwrite else ("free",)
    folder, n = base, 1
    while folder_state(folder) not in allowed:
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    return folder


def _config(ws, source: ExportSource):
    """The config of what will be exported, read without loading (or converting) any weights."""
    from transformers import AutoConfig

    from studio.models import catalogue, embedded

    if source.result_kind == "model":
        return AutoConfig.from_pretrained(source.result_dir)
    if source.base.strip().lower() == catalogue.DEFAULT_MODEL:
        converted = ws.models_dir / embedded.SMOLLM2_DIRNAME
        if embedded.is_converted(converted):
            return AutoConfig.from_pretrained(converted)
        return _gguf_architecture(str(embedded.smollm2_gguf_path()))
    return AutoConfig.from_pretrained(catalogue.resolve_model(source.base, ws))


@functools.lru_cache(maxsize=4)
def _gguf_architecture(path: str):
    """The model type a GGUF file declares, read from its metadata (parsing its config through transformers
    dequantises every tensor: seconds for a small model)."""
    from types import SimpleNamespace

    from gguf import GGUFReader

    field = GGUFReader(path).fields["general.architecture"]
    return SimpleNamespace(model_type=bytes(field.parts[field.data[0]]).decode())


def run_export(ws, request: ExportRequest, progress: Progress | None = None,
               should_stop: Callable[[], bool] | None = None) -> dict:
    """Write the export and its report; returns the manifest (also saved as export.json)."""
    progress = progress or (lambda fraction, message: None)
    should_stop = should_stop or (lambda: False)
    request, source = check_request(ws, request)
    started = time.time()
    out = Path(request.out)

    def step(fraction: float, message: str) -> None:
        if should_stop():
            raise Cancelled()
        log.info("%3.0f%% %s", fraction * 100, message)
        progress(fraction, message)

    with staged(out, overwrite=request.overwrite) as tmp:
        artifact, reference = _write(ws, request, source, tmp, step)
        report = None
        if request.report and reference is not None:
            step(0.7, Phase("measuring the artifact against the unquantised model", "measuring"))
            report = _report(ws, request, source, tmp, artifact, reference, step)
        manifest = {"format": request.format, "quant": request.quant, "source": source.spec,
                    "source_name": source.name, "run": source.run["id"] if source.run else None,
                    "base_model": source.base, "method": source.method, "path": str(out),
                    "artifact": str(out / Path(artifact["path"]).relative_to(tmp)) if artifact.get("path") else str(out),
                    "bytes": folder_bytes(tmp), "created": time.time(), "seconds": round(time.time() - started, 1),
                    "request": asdict(request), "details": _moved(artifact, tmp, out), "report": bool(report),
                    "files": sorted([*export_files(tmp), MANIFEST])}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    progress(1.0, Phase("done", "done"))
    return {**manifest, "report": report}


def _moved(details: dict, tmp: Path, out: Path) -> dict:
    """`details` with the staged folder's paths replaced by the final ones."""
    return {k: v.replace(str(tmp), str(out.resolve())) if isinstance(v, str) else v for k, v in details.items()}


def _write(ws, request: ExportRequest, source: ExportSource, tmp: Path, step) -> tuple[dict, Any]:
    """Write the artifact into `tmp`; returns (details, reference model or None for no report)."""
    if request.format == "adapter":
        step(0.1, Phase("copying the adapter", "copying_adapter"))
        return save_adapter(source, tmp), None
    step(0.05, Phase(f"loading {source.spec}", "loading", name=source.spec))
    started = time.perf_counter()
    model, tokenizer = load_source(ws, source)
    # The reference is measured from memory; its load time is the real one, loading (and merging) the source.
    reference = (model, tokenizer, time.perf_counter() - started) if source.head == CAUSAL else None
    step(0.3, Phase(f"writing the {request.format} export", "writing_export", format=request.format))
    if request.format == "merged":
        return save_merged(model, tokenizer, tmp, source, request.dtype), reference
    if request.format in ("bnb8", "bnb4"):
        from studio.export.bnb import save_bnb

        with tempfile.TemporaryDirectory(dir=tmp.parent, prefix=f".{tmp.name}.merged-") as merged:
            model.save_pretrained(merged, safe_serialization=True)
            tokenizer.save_pretrained(merged)
            details = save_bnb(Path(merged), tmp, bits=8 if request.format == "bnb8" else 4,
                               quant_type=request.quant or "nf4", double_quant=request.double_quant)
        write_model_card(tmp, source, request.format, {"quant": request.quant or "int8"})
        return details, reference
    if request.format == "int8":
        from studio.export.ptq import save_int8

        texts = calibration_texts(ws, request.calibration) if request.calibration else None
        details = save_int8(model, tokenizer, tmp, calibration_texts=texts)
        write_model_card(tmp, source, "int8", {"scheme": details.get("scheme", "")})
        return details, reference
    from studio.export.gguf import write_gguf
    from studio.export.modelfile import write_modelfile

    path = tmp / f"{source.name}-{request.quant}.gguf"
    details = write_gguf(model, tokenizer, path, request.quant,
                         progress=lambda fraction, name: step(0.3 + 0.35 * fraction, Phase(f"writing {name}", "writing", name=name)),
                         metadata={"name": source.name, "base_model": source.base})
    details["modelfile"] = str(write_modelfile(path, tokenizer, tmp, system=request.system))
    write_model_card(tmp, source, "gguf", {"quant": request.quant})
    return details, reference


def calibration_texts(ws, spec: str, limit: int = 128) -> list[str]:
    """Up to `limit` texts from a .txt file (one per paragraph), a table file (.jsonl, .csv, .xlsx...: each row's
    text fields joined) or a studio dataset's training split."""
    path = Path(spec)
    if path.suffix.lower() == ".txt" and path.is_file():
        texts = [p.strip() for p in path.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    elif path.is_file():
        from studio.data.readers import open_table, read_all

        texts = [_row_text(row) for row in read_all(open_table(path), limit=limit)]
    else:
        from studio.data.builder import load_split

        texts = [_row_text(row) for row in load_split(ws, spec, "train")[:limit]]
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise StudioError(f"The calibration set '{spec}' has no text; give a .txt, .jsonl or .csv file or a dataset "
                          "with text in it.", field="calibration", key="export.pipeline.calibration_empty", spec=spec)
    return texts[:limit]


def _row_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(_row_text(v) for k, v in value.items() if k not in ("role", "from", "label"))
    if isinstance(value, list):
        return "\n".join(_row_text(v) for v in value)
    return ""


def _report(ws, request: ExportRequest, source: ExportSource, tmp: Path, artifact: dict, reference, step) -> dict:
    from studio.export import report as measure
    from studio.export.heldout import HeldOut, heldout_text

    model, tokenizer, load_s = reference
    if request.heldout:
        path = Path(request.heldout)
        heldout = HeldOut(path.read_text(encoding="utf-8", errors="replace"), str(path))
    else:
        heldout = heldout_text(ws, source.run)
    name = request.format + (f" {request.quant}" if request.quant else "")
    candidate = measure.Candidate(name=name, format=request.format, path=Path(artifact["path"]),
                                  load=_loader(request, Path(artifact["path"])))
    ref = measure.Candidate(name="fp32 (source)", format="fp32", path=tmp, load=lambda: (model, tokenizer),
                            size_bytes=_fp32_bytes(model, tmp))
    report = measure.build_report(ref, [candidate], heldout,
                                  progress=lambda done, total, what: step(0.7 + 0.28 * done / total,
                                                                          Phase(f"measured {what}", "measured",
                                                                                name=what)))
    report["reference"]["load_s"] = round(load_s, 4)
    for entry in (report["reference"], *report["artifacts"]):  # where the files will be once the folder is renamed
        entry["path"] = entry["path"].replace(str(tmp), str(Path(request.out).resolve()))
    measure.save_report(report, tmp / "report.json")
    return report


def _loader(request: ExportRequest, path: Path) -> Callable[[], tuple[Any, Any]]:
    if request.format == "merged":
        return lambda: _load_merged(path)
    if request.format in ("bnb8", "bnb4"):
        from studio.export.bnb import load_bnb

        return lambda: load_bnb(path)
    if request.format == "int8":
        from studio.export.ptq import load_int8

        return lambda: load_int8(path)
    from studio.export.gguf import load_gguf

    return lambda: load_gguf(path)


def _load_merged(path: Path) -> tuple[Any, Any]:
    """A merged export as any transformers user loads it: in the dtype it was saved in."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path, dtype="auto").eval(), AutoTokenizer.from_pretrained(path)


def _fp32_bytes(model, folder: Path) -> int:
    """What the float32 model would take as a folder: its weights at 4 bytes, plus the tokenizer files the
    export wrote beside its own weights (so small models compare folder to folder)."""
    weights = sum(p.numel() * 4 for p in model.parameters())
    tokenizer = sum(f.stat().st_size for f in folder.iterdir()
                    if f.is_file() and (f.name.startswith(("tokenizer", "special_tokens", "chat_template"))
                                        or f.name in ("vocab.json", "merges.txt")))
    return weights + tokenizer

