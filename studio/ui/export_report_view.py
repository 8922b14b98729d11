"""What the Export tab draws from the export service's plain dicts: the job's progress bar, an export's files and
report, and the table of previous exports.

Every function takes a job dict (`ExportService.job`) or a manifest (`export.json`, with its `report` read back by
`ExportService.exports`) plus the `Texts` of the user's language, and returns what a gradio component shows: an
HTML or markdown string, a Dataframe value, a plotly figure (`show_export`: the updates of the whole result area).
The report's own table, samples and chart come from `studio.export.report` / `report_chart`, given this module's
translator. A completed job's manifest is read back from its folder (`completed_export`) so that its report is
the measured dict. Nothing here calls the engine or keeps state; the tab decides when to redraw.
"""
from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

import gradio as gr

from studio.export.report import report_samples, report_table
from studio.export.report_chart import report_chart
from studio.export.service import read_manifest
from studio.models.refs import parse

PREVIOUS_COLUMNS = ("when", "source", "format", "quant", "size_mb", "path")
MAX_FILES_LISTED = 12


def format_size(size: int | float | None) -> str:
    if size is None:
        return "–"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{int(size)} B"


def format_label(texts: Any, lang: str, fmt: str, quant: str | None = None) -> str:
    label = texts.t(lang, f"export.format.{fmt}")
    return f"{label} {quant}" if quant and fmt in ("gguf", "bnb4") else label


def job_html(job: dict | None, texts: Any, lang: str, error: str | None = None) -> str:
    """The export's bar: what is exported as what, percent, the worker's last step, seconds; `error` (already
    translated) under it when the job failed or was cancelled."""
    if not job:
        return f'<div class="studio-progress studio-progress-empty">{html.escape(texts.t(lang, "export.job.none"))}</div>'
    state, request = job["state"], job.get("request") or {}
    percent = 100.0 if state == "completed" else 100.0 * float(job.get("fraction") or 0.0)
    source = (job.get("result") or {}).get("source_name") or parse(str(request.get("source", ""))).run_id or str(request.get("source", ""))
    head = texts.t(lang, f"export.job.{state if state != 'queued' else 'running'}", source=source,
                   format=format_label(texts, lang, request.get("format", ""), request.get("quant")))
    facts = texts.t(lang, "export.job.facts", percent=f"{percent:.0f}", message=texts.phase(lang, job.get("message")),
                    seconds=f"{float(job.get('seconds') or 0):.0f}")
    extra = f'<div class="studio-progress-error">{html.escape(error)}</div>' if error else ""
    return (f'<div class="studio-progress" id="studio-export-job" data-status="{html.escape(state)}">'
            f'<div class="studio-progress-head"><b>{html.escape(head)}</b><span>{percent:.0f}%</span></div>'
            f'<div class="studio-bar"><div class="studio-bar-fill" style="width:{percent:.1f}%"></div></div>'
            f'<div class="studio-progress-facts">{html.escape(facts)}</div>{extra}</div>')


def files_markdown(manifest: dict, texts: Any, lang: str) -> str:
    """The artifact's path, a one-line summary, and the files in the export folder with their sizes."""
    folder = Path(manifest["path"])
    lines = [texts.t(lang, "export.result.artifact", path=manifest.get("artifact") or manifest["path"]),
             texts.t(lang, "export.result.summary",
                     format=format_label(texts, lang, manifest["format"], manifest.get("quant")),
                     source=manifest.get("source_name") or manifest.get("source", ""),
                     size=format_size(manifest.get("bytes")), seconds=manifest.get("seconds", "–"))]
    modelfile = (manifest.get("details") or {}).get("modelfile")
    if modelfile:  # the recorded path is the staged folder's; the Modelfile now sits in the export folder
        lines.append(texts.t(lang, "export.result.modelfile", name=manifest.get("source_name") or "model",
                             modelfile=folder / Path(modelfile).name))
    if not folder.is_dir():
        return "\n\n".join(lines + [texts.t(lang, "export.result.gone", path=str(folder))])
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    listed = [f"- `{p.relative_to(folder)}` · {format_size(p.stat().st_size)}" for p in files[:MAX_FILES_LISTED]]
    if len(files) > MAX_FILES_LISTED:
        listed.append("- " + texts.t(lang, "export.result.more", n=len(files) - MAX_FILES_LISTED))
    return "\n\n".join(lines + [texts.t(lang, "export.result.files") + "\n" + "\n".join(listed)])


def completed_export(job: dict | None) -> dict | None:
    """The manifest of a completed job as the previous-exports list has it: read back from its folder, so its
    `report` is the measured dict (the job's own copy only says whether there is one)."""
    if not job or job["state"] != "completed" or not job.get("result"):
        return None
    return read_manifest(Path(job["result"]["path"])) or job["result"]


def report_parts(manifest: dict | None, texts: Any, lang: str) -> tuple[dict | None, Any, dict | None]:
    """(table value, chart figure, samples value) of a manifest's report; Nones when it has no report."""
    report = (manifest or {}).get("report")
    if not isinstance(report, dict):
        return None, None, None
    t = lambda key: texts.t(lang, key)  # noqa: E731
    return report_table(report, t), report_chart(report, t), report_samples(report, t)


def previous_table(manifests: list[dict], texts: Any, lang: str) -> dict:
    """The previous exports, newest first: when, source, format, type, size in MB, folder."""
    rows = [[time.strftime("%Y-%m-%d %H:%M", time.localtime(m.get("created", 0))),
             m.get("source_name") or m.get("source", ""), texts.t(lang, f"export.format.{m['format']}"),
             m.get("quant") or "", round((m.get("bytes") or 0) / 1e6, 1), m["path"]] for m in manifests]
    return {"headers": [texts.t(lang, f"export.previous.col.{c}") for c in PREVIOUS_COLUMNS], "data": rows}


def show_export(manifest: dict | None, texts: Any, lang: str) -> list[Any]:
    """Updates for (result column, files, table, chart, samples, download) showing `manifest`."""
    if not manifest:
        return [gr.update(visible=False), "", gr.update(), gr.update(), gr.update(), gr.update(visible=False)]
    table, chart, samples = report_parts(manifest, texts, lang)
    files = files_markdown(manifest, texts, lang)
    if table is None:
        files += "\n\n" + texts.t(lang, "export.result.no_report")
    measured = table is not None
    return [gr.update(visible=True), files, gr.update(value=table, visible=measured),
            gr.update(value=chart, visible=measured), gr.update(value=samples, visible=measured,
                                                                column_widths=_sample_widths(samples)),
            gr.update(visible=False, value=None)]


def _sample_widths(samples: dict | None) -> list[str] | None:
    """The prompt a quarter of the width, the answers sharing the rest (else the prompts push them off screen)."""
    if not samples:
        return None
    answers = len(samples["headers"]) - 1
    return ["25%", *([f"{75 / answers:.0f}%"] * answers)]
