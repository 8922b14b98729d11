"""The `studio` command: everything the browser does, from a terminal.

`studio ui` serves the app, `studio train RECIPE.yaml [--set k=v ...]` trains in the foreground
through the same job manager the UI uses (a worker process, a progress bar, Ctrl-C cancels and
keeps a checkpoint) and prints the run directory last; `studio eval` scores runs and models on a
dataset split (`studio.evaluation`); `studio data`, `studio rag` and `studio prefs` manage datasets,
document collections and preferences; `studio export` merges, quantises and converts runs and models
(`studio.cli_export`); `studio runs` and `studio models` list what the workspace holds (`--json` for
machines). A `StudioError` prints one sentence and exits 1.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

from studio.cli_common import bars_wanted, table, train_foreground
from studio.errors import StudioError


def cmd_train(args) -> int:
    from studio.config import load_recipe

    recipe = load_recipe(args.recipe, args.set)
    if args.emit:
        from pathlib import Path

        from studio.cluster import emit

        files = emit(recipe, args.emit, Path(args.out or f"{recipe.name}-{args.emit}"), accelerator=args.gpu_type)
        print(json.dumps({"files": [str(f) for f in files]}) if args.json else
              "Wrote " + ", ".join(str(f) for f in files) + "; the script's first lines say how to start it.")
        return 0
    return train_foreground(recipe)


def cmd_runs(args) -> int:
    from studio.engine import Engine

    if getattr(args, "runs_command", None) == "import":
        from studio.cluster import import_run
        from studio.workspace import Workspace

        run_id = import_run(Workspace.open(), args.folder)
        print(json.dumps({"run_id": run_id}) if args.json else f"Imported run {run_id}.")
        return 0
    if getattr(args, "runs_command", None) == "cancel":
        engine = Engine(start_jobs=False)
        engine.cancel(args.run_id, force=args.force)
        status = engine.jobs.status(args.run_id)["status"]
        words = {"cancelled": "cancelled", "cancelling": "stops after its current step and keeps a checkpoint"}
        if args.force and status == "cancelling":
            words["cancelling"] = "is being stopped now (work since its last checkpoint is lost)"
        message = f"Run {args.run_id} {words.get(status, status)}."
        print(json.dumps({"run_id": args.run_id, "status": status, "message": message}) if args.json else message)
        return 0
    runs = Engine(start_jobs=False).list_runs()
    cols = ["id", "name", "stage", "method", "status", "pid", "run_dir"]
    if args.json:
        print(json.dumps([{c: r.get(c) for c in cols + ["model", "final_loss", "duration_s"]} for r in runs],
                         indent=2))
    else:
        print(table(runs, cols) if runs else "No runs yet.")
    return 0


def cmd_audit(args) -> int:
    from studio.access import AuditLog
    from studio.workspace import Workspace

    entries = AuditLog(Workspace.open().home / "audit.jsonl").entries(limit=args.limit, user=args.user)
    if args.json:
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return 0
    rows = [{"when": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["at"])), "user": e["user"],
             "role": e.get("role") or "-", "action": e["action"], "what": e["what"], "outcome": e["outcome"]}
            for e in entries]
    print(table(rows, ["when", "user", "role", "action", "what", "outcome"]) if rows else
          "The audit log is empty (it records admin actions, refusals and failed logins of a studio served with "
          "--auth).")
    return 0


def cmd_models(args) -> int:
    from studio.models.catalogue import list_models
    from studio.workspace import Workspace

    ws = Workspace.open()
    if args.prepare:
        from studio.models.catalogue import DEFAULT_MODEL, resolve_model

        print(f"{DEFAULT_MODEL} ready at {resolve_model(DEFAULT_MODEL, ws)}", file=sys.stderr)
        return 0
    models = list_models(ws)
    if args.json:
        print(json.dumps(models, indent=2, default=str))
    else:
        print(table(models, list(models[0].keys())) if models else "No models found.")
    return 0


def cmd_eval(args) -> int:
    from studio.evaluation import evaluate_recorded
    from studio.workspace import Workspace

    from tqdm import tqdm

    shots = [int(k) for k in args.shots.split(",") if k.strip()] if args.shots else []
    bars: dict[str, tqdm] = {}

    def rows_done(target: str, done: int, total: int) -> None:
        if target not in bars:
            for old in bars.values():
                old.close()
            bars[target] = tqdm(total=total, unit="row", desc=target[:40], file=sys.stderr, dynamic_ncols=True,
                                disable=not bars_wanted(args))
        bar = bars[target]
        if done < bar.n:  # perplexity scores the same rows again after they were answered
            bar.reset(total)
        bar.update(done - bar.n)

    try:
        result = evaluate_recorded(Workspace.open(), args.targets, args.data, split=args.split, metrics=args.metrics,
                                   limit=args.limit, shots=shots, forgetting=args.forgetting,
                                   max_new_tokens=args.max_new_tokens, rows_done=rows_done,
                                   emit=lambda message: None if args.json else tqdm.write(message, file=sys.stderr))
    finally:
        for bar in bars.values():
            bar.close()
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    cols = ["target", "shots", *result["columns"]]
    rows = [{c: (f"{r[c]:.4f}" if isinstance(r.get(c), float) else r.get(c)) for c in cols} for r in result["rows"]]
    print(result_line(result))
    print(table(rows, cols))
    if args.misses:
        print_misses(result, args.misses)
    if result["forgetting"]:
        print("\nPerplexity on the general text (forgetting check):")
        for row in result["forgetting"]:
            change = f"  ({row['change']:+.1%} vs {row['base']})" if row["change"] is not None else ""
            print(f"  {row['target']}: {row['perplexity']:.2f}{change}")
    print(f"\nSaved to {result['saved']}")
    return 0


def result_line(result: dict) -> str:
    """'faq / test: 120 examples', with the limit when one cut the split: 'first 50 of 120 (--limit 50)'."""
    where = "the whole file" if result["split"] == "file" else result["split"]
    available = result.get("available") or result["n"]
    if result["n"] < available:
        return (f"{result['dataset']} / {where}: the first {result['n']} of {available} examples "
                f"(--limit {result['limit']}; leave it out to score them all)")
    return f"{result['dataset']} / {where}: {result['n']} examples"


def print_misses(result: dict, most: int) -> None:
    """Up to `most` examples some target did not answer exactly, each with its reference and answers."""
    misses = [e for e in result.get("examples", []) if e.get("missed")]
    print(f"\n{len(misses)} of {len(result.get('examples', []))} examples missed by at least one target"
          + (f"; the first {most}:" if len(misses) > most else ":"))
    for example in misses[:most]:
        print(f"\n#{example['index'] + 1} {example['prompt'][:200]}")
        print(f"  reference: {example['reference'][:200]}")
        for label in example["missed"]:
            scores = ", ".join(f"{k} {v:.2f}" for k, v in example["scores"][label].items())
            print(f"  {label}: {example['outputs'][label][:200]}  ({scores})")


def cmd_ui(args) -> int:
    from studio.ui import launch

    launch(host=args.host, port=args.port, auth=args.auth, allow_dirs=args.allow_dir)
    # The engine is shut down (jobs stopped, workers gone). Leave now: finalising the interpreter with native
    # threads of torch and tokenizers still parked ended in 'terminate called without an active exception'.
    print("Studio stopped.", flush=True)
    sys.stderr.flush()
    os._exit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Fine-tuning Studio")
    sub = parser.add_subparsers(dest="command", required=True)
    ui = sub.add_parser("ui", help="serve the studio in the browser")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=7860)
    ui.add_argument("--auth", default=None, help="user:password, or a file with one user:password per line")
    ui.add_argument("--allow-dir", action="append", default=[], metavar="DIR",
                    help="with --auth: a folder (besides the workspace) whose files users may name; repeatable")
    ui.set_defaults(func=cmd_ui)
    audit = sub.add_parser("audit", help="who did what on a studio served with --auth (newest first)")
    audit.add_argument("--limit", type=int, default=50)
    audit.add_argument("--user", default=None, help="only this account's entries")
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(func=cmd_audit)
    train = sub.add_parser("train", help="train a recipe in the foreground")
    train.add_argument("recipe")
    train.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE")
    train.add_argument("--emit", choices=("slurm", "skypilot", "torchrun"), default=None,
                       help="do not train here: write a script that trains the recipe on a cluster (sbatch file, "
                            "SkyPilot task or per-machine commands)")
    train.add_argument("--out", default=None, help="folder for --emit's files (default: NAME-TARGET)")
    train.add_argument("--gpu-type", default="A100", help="the GPU SkyPilot asks for (--emit skypilot)")
    train.add_argument("--json", action="store_true")
    train.set_defaults(func=cmd_train)
    runs = sub.add_parser("runs", help="list runs; `studio runs cancel ID` stops a queued or running one")
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(func=cmd_runs)
    runs_sub = runs.add_subparsers(dest="runs_command")
    cancel = runs_sub.add_parser("cancel", help="cancel a queued run, or stop a running one after its current step "
                                                "with a checkpoint")
    cancel.add_argument("run_id")
    cancel.add_argument("--force", action="store_true", help="stop a running run now, losing the work since its "
                                                             "last checkpoint")
    cancel.add_argument("--json", action="store_true")
    imported = runs_sub.add_parser("import", help="bring a run folder trained elsewhere (a cluster's machine 0) into "
                                                  "this workspace")
    imported.add_argument("folder")
    imported.add_argument("--json", action="store_true")
    from studio.cli_merge import add_merge_parser

    add_merge_parser(runs_sub)
    models = sub.add_parser("models", help="list embedded and cached models")
    models.add_argument("--json", action="store_true")
    models.add_argument("--prepare", action="store_true",
                        help="convert the embedded default model once (about 20 s) so the first run starts at once")
    models.set_defaults(func=cmd_models)
    from studio.cli_hub import add_hub_parsers

    add_hub_parsers(models.add_subparsers(dest="models_command"))
    ev = sub.add_parser("eval", help="score models and runs on a dataset split (ROUGE, BLEU, exact match, "
                                      "perplexity), with an in-context baseline and a forgetting check")
    ev.add_argument("targets", nargs="+", metavar="RUN_OR_MODEL", help="run ids (or run:<id>) and model names")
    ev.add_argument("--data", required=True, help="a studio dataset, sample name or file")
    ev.add_argument("--split", default="test", choices=("train", "validation", "test"))
    ev.add_argument("--metrics", default="rouge,bleu,em,ppl", help="comma list of rouge, bleu, em, ppl")
    ev.add_argument("--limit", type=int, default=None, help="score only the first N examples (default: all)")
    ev.add_argument("--misses", type=int, default=0, metavar="N",
                    help="also print up to N examples a target did not answer exactly, with the answers")
    ev.add_argument("--shots", default="", help="in-context baseline: comma list of k, e.g. 0,1,3")
    ev.add_argument("--forgetting", action="store_true", help="perplexity on a general text, before and after")
    ev.add_argument("--max-new-tokens", type=int, default=256)
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_eval)
    from studio.cli_data import add_data_parser
    from studio.cli_export import add_export_parser
    from studio.cli_serve import add_serve_parser
    from studio.cli_guide import add_guide_parser
    from studio.cli_jobs import add_jobs_parser
    from studio.cli_prefs import add_prefs_parser
    from studio.cli_rag import add_rag_parser

    add_guide_parser(sub)
    add_data_parser(sub)
    add_rag_parser(sub)
    add_prefs_parser(sub)
    add_export_parser(sub)
    add_serve_parser(sub)
    add_jobs_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except StudioError as exc:
        if getattr(args, "json", False):  # machine-readable to the end: one JSON object on stdout
            print(json.dumps({"error": exc.message, "field": exc.field, "key": exc.key}, ensure_ascii=False))
        else:
            print(f"Error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
