"""`studio export RUN_OR_MODEL --format FORMAT [--quant Q] --out DIR [--overwrite] [--json]`.

FORMAT is merged, adapter, bnb8, bnb4, int8 or gguf. Runs the export in the foreground (the same
`studio.export.pipeline.run_export` the Export tab's jobs run), with progress on stderr; prints the artifact's path
and the report of what quantisation cost, or with `--json` the manifest with the report inside. `--push owner/name`
uploads the result to the Hugging Face Hub (token from `--token` or HF_TOKEN). Ctrl-C stops it and leaves the
previous export in DIR as it was. DIR must be new, empty, or a previous studio export, which is replaced only with
`--overwrite`; a folder holding other files is refused.
"""
from __future__ import annotations

import json
import sys


def add_export_parser(sub) -> None:
    from studio.export.pipeline import FORMATS

    ex = sub.add_parser("export", help="merge, quantise or convert a finished run or a model (GGUF, bitsandbytes, "
                                       "int8), with a report of what quantisation cost")
    ex.add_argument("source", metavar="RUN_OR_MODEL", help="a run id (or run:<id>, or its name) or a model")
    ex.add_argument("--format", required=True, choices=FORMATS)
    ex.add_argument("--quant", default=None, help="gguf: F16, BF16, Q8_0, Q5_0, Q5_1, Q4_0, Q4_1 (default Q8_0); "
                                                  "bnb4: nf4 or fp4 (default nf4)")
    ex.add_argument("--out", default=None, help="a new or empty folder to write (default "
                                                "STUDIO_HOME/exports/<name>-<format>, or -2, -3... when taken)")
    ex.add_argument("--overwrite", action="store_true", help="replace the previous studio export in --out (a folder "
                                                             "holding other files is never replaced)")
    ex.add_argument("--dtype", default="fp16", help="merged: fp16, bf16 or fp32")
    ex.add_argument("--no-double-quant", action="store_true", help="bnb4: no double quantisation")
    ex.add_argument("--calibration", default=None, help="int8: a .txt/.jsonl/.csv file or dataset for activation "
                                                        "scales")
    ex.add_argument("--heldout", default=None, help="a text file for the report's perplexity")
    ex.add_argument("--no-report", action="store_true", help="skip measuring the artifact")
    ex.add_argument("--system", default=None, help="gguf: a SYSTEM line for the Ollama Modelfile")
    ex.add_argument("--push", default=None, metavar="OWNER/NAME", help="upload the export to this Hub repo")
    ex.add_argument("--token", default=None, help="Hub token for --push (default: HF_TOKEN)")
    ex.add_argument("--json", action="store_true")
    ex.set_defaults(func=cmd_export)


def _progress(fraction: float, message: str) -> None:
    print(f"[{fraction * 100:3.0f}%] {message}", file=sys.stderr, flush=True)


HEADERS = {"name": "artifact", "format": "format", "size_mb": "MB", "size_ratio": "x ref", "load_s": "load s",
           "tokens_per_s": "tok/s", "perplexity": "ppl", "ppl_delta_pct": "ppl +%", "top1": "top-1 %"}


def _report_text(report: dict) -> str:
    """The report as a plain table, then where the held-out text came from."""
    from studio.cli_common import table as _table
    from studio.export.report import report_table

    table = report_table(report, lambda key: HEADERS.get(key.rsplit(".", 1)[-1], key.rsplit(".", 1)[-1]))
    rows = [dict(zip(table["headers"], row)) for row in table["data"]]
    held = report["heldout"]
    return (f"{_table(rows, table['headers'])}\nPerplexity and top-1 agreement on {held['tokens']} tokens of "
            f"{held['source']}; speed on {report['device']}.")


def export_recorded(ws, request) -> dict:
    """Export in this process as a job `studio jobs` lists (also what `studio jobs retry` runs for an export)."""
    from dataclasses import asdict

    from studio.export.pipeline import run_export
    from studio.jobs.records import foreground

    with foreground(ws, "export", f"{request.source} -> {request.format}", asdict(request)) as job:
        def progress(fraction: float, message: str) -> None:
            _progress(fraction, message)
            job.progress(fraction, message)

        manifest = run_export(ws, request, progress=progress)
        job.result = {"path": manifest.get("path")}
    return manifest


def cmd_export(args) -> int:
    from studio.export.hub import push_to_hub
    from studio.export.pipeline import ExportRequest
    from studio.workspace import Workspace

    request = ExportRequest(source=args.source, format=args.format, out=args.out, quant=args.quant,
                            dtype=args.dtype, double_quant=not args.no_double_quant, calibration=args.calibration,
                            report=not args.no_report, heldout=args.heldout, system=args.system,
                            overwrite=args.overwrite)
    ws = Workspace.open()
    manifest = export_recorded(ws, request)
    if args.push:
        manifest["pushed"] = push_to_hub(manifest["path"], args.push, args.token)
    if args.json:
        print(json.dumps(manifest, indent=2, default=str))
        return 0
    print(f"{manifest['format']} export of {manifest['source']}: {manifest['bytes'] / 2**20:.1f} MB in "
          f"{manifest['seconds']} s")
    if isinstance(manifest.get("report"), dict):
        print(_report_text(manifest["report"]))
    if manifest.get("pushed"):
        print(f"Pushed to {manifest['pushed']}")
    print(manifest["artifact"])
    return 0
