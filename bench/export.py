"""What each export format costs on the embedded SmolLM2-135M-Instruct: size, load time, speed, quality.

Exports the embedded model (`studio export smollm2-135m-instruct`) as merged FP16, bnb8, bnb4 (NF4, double
quantisation), int8 (with and without calibration) and every GGUF type, each through `studio.export.pipeline.
run_export` into a temp workspace, then measures them all with `studio.export.report.build_report` against the
FP32 model in the same process: file size and its ratio to FP32, load time, greedy tokens/s (48 new tokens,
after a warm-up), perplexity on the held-out text assets/export/heldout-en.txt and its change, and top-1
next-token agreement with FP32. GGUF files are measured as transformers loads them (dequantised to float32), so
their tokens/s is float32 speed, not llama.cpp's; their size, perplexity and agreement are the file's own.
The embedded model's weights are themselves dequantised from the packaged Q4_1 GGUF, so re-quantising its linear
layers to Q4_1 is lossless (their weights come back bit for bit) and Q4_1 scores better than Q5_0/Q5_1 here. On
Gaussian weights the gguf quantisers' relative RMS errors are Q8_0 0.5%, Q5_1 3.8%, Q5_0 4.3%, Q4_1 7.8%, Q4_0 8.6%.
Prints one Markdown table (the README's) and writes the report JSON beside it.

Times only; nothing is asserted. Run it alone (it uses every core; about 10-20 minutes on 2 CPU cores).

    .venv/bin/python bench/export.py [--formats merged,bnb8,bnb4,int8,int8-cal,gguf] [--gguf F16,Q8_0,...]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODEL = "smollm2-135m-instruct"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", default="merged,bnb8,bnb4,int8,int8-cal,gguf")
    parser.add_argument("--gguf", default="F16,BF16,Q8_0,Q5_1,Q5_0,Q4_1,Q4_0")
    parser.add_argument("--home", default=None, help="a workspace with the converted model (default: a temp one)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results-export.json"))
    args = parser.parse_args()

    from studio.export import report as measure
    from studio.export.heldout import heldout_text
    from studio.export.pipeline import ExportRequest, _loader, run_export
    from studio.models.loading import load_causal_lm
    from studio.workspace import Workspace

    home = Path(args.home or tempfile.mkdtemp(prefix="bench-export-"))
    os.environ["STUDIO_HOME"] = str(home)
    ws = Workspace.open(home)
    calibration = ROOT / "assets" / "general-text.txt"
    requests = []
    for fmt in args.formats.split(","):
        if fmt == "merged":
            requests.append(("merged FP16", ExportRequest(MODEL, "merged", dtype="fp16")))
        elif fmt == "bnb8":
            requests.append(("bnb 8-bit", ExportRequest(MODEL, "bnb8")))
        elif fmt == "bnb4":
            requests.append(("bnb 4-bit NF4", ExportRequest(MODEL, "bnb4", quant="nf4")))
        elif fmt == "int8":
            requests.append(("int8", ExportRequest(MODEL, "int8", out=str(home / "exports" / "int8"))))
        elif fmt == "int8-cal":
            requests.append(("int8 calibrated", ExportRequest(MODEL, "int8", calibration=str(calibration),
                                                              out=str(home / "exports" / "int8-cal"))))
        elif fmt == "gguf":
            requests += [(f"GGUF {q}", ExportRequest(MODEL, "gguf", quant=q)) for q in args.gguf.split(",")]
    candidates, export_s = [], {}
    for name, request in requests:
        request.report = False
        started = time.perf_counter()
        try:
            manifest = run_export(ws, request)
        except Exception as error:  # noqa: BLE001 - a format this machine cannot write is reported, not fatal
            print(f"{name}: not exported ({type(error).__name__}: {error})", file=sys.stderr)
            continue
        export_s[name] = time.perf_counter() - started
        path = Path(manifest["artifact"])
        print(f"{name}: exported in {export_s[name]:.1f} s -> {path}", file=sys.stderr)
        candidates.append(measure.Candidate(name=name, format=request.format, path=path,
                                            load=_loader(request, path)))
    started = time.perf_counter()
    model, tokenizer = load_causal_lm(MODEL, ws, for_training=False)
    reference_load_s = time.perf_counter() - started
    reference = measure.Candidate(name="FP32", format="fp32", path=home, load=lambda: (model, tokenizer),
                                  size_bytes=sum(p.numel() * 4 for p in model.parameters()))
    report = measure.build_report(reference, candidates, heldout_text(),
                                  progress=lambda done, total, what: print(f"measured {what} ({done}/{total})",
                                                                           file=sys.stderr))
    report["reference"]["load_s"] = reference_load_s  # measured from memory: its load time is load_causal_lm's
    report["export_s"] = export_s
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\n{report['device']}, torch {report['torch']}; held-out: {report['heldout']['tokens']} tokens of "
          f"{report['heldout']['source']}\n")
    print("| artifact | size MB | x FP32 | load s | tok/s | x FP32 speed | perplexity | Δ ppl % | top-1 % | export s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    base_speed = report["reference"]["tokens_per_s"] or 1.0
    for entry in (report["reference"], *report["artifacts"]):
        print(f"| {entry['name']} | {entry['size_bytes'] / 1e6:.1f} | {entry['size_ratio']:.3f} | "
              f"{entry['load_s']:.2f} | {entry['tokens_per_s']:.1f} | {entry['tokens_per_s'] / base_speed:.2f} | "
              f"{entry['perplexity']:.3f} | {entry['ppl_delta_pct']:+.2f} | {100 * entry['top1_agreement']:.1f} | "
              f"{export_s.get(entry['name'], 0):.1f} |")


if __name__ == "__main__":
    main()
