"""`studio runs merge RUN RUN... [--combination cat] [--weights 0.5,0.5] [--density 0.5] [--name N] [--eval]`:
the runs' LoRA adapters merged into a new run (`studio.merge_runs`); `--eval` scores each source task before and
after the merge."""
from __future__ import annotations

import json
import sys


def add_merge_parser(runs_sub) -> None:
    from studio.merge_runs import COMBINATIONS, DEFAULT_COMBINATION

    merge = runs_sub.add_parser("merge", help="merge the LoRA adapters of finished runs on one base into a new run")
    merge.add_argument("runs", nargs="+", metavar="RUN", help="two or more finished LoRA runs (ids or run:<id>)")
    merge.add_argument("--combination", default=DEFAULT_COMBINATION, choices=COMBINATIONS,
                       help="cat (default): the adapters side by side, exact, the rank is their sum; "
                            "ties and dare_*: keep each adapter's largest changes and settle conflicts; "
                            "linear: weighted sum (same rank)")
    merge.add_argument("--weights", default=None, help="one weight per run, comma-separated (default: equal, "
                                                       "summing to 1)")
    merge.add_argument("--density", type=float, default=0.5, help="ties/dare: share of each adapter's change kept")
    merge.add_argument("--name", default=None)
    merge.add_argument("--eval", action="store_true", help="score each source task before and after the merge")
    merge.add_argument("--limit", type=int, default=None, help="--eval: rows per task (default: the whole split)")
    merge.add_argument("--json", action="store_true")
    merge.set_defaults(func=cmd_merge)


def _weights(text: str | None) -> list[float] | None:
    from studio.errors import StudioError

    if not text:
        return None
    try:
        return [float(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise StudioError(f"'--weights' is '{text}'; give numbers separated by commas, e.g. 0.5,0.5.",
                          field="weights", key="merge.weights_numbers", weights=text) from None


def cmd_merge(args) -> int:
    from studio.merge_runs import merge_runs, merge_scores
    from studio.workspace import Workspace

    ws = Workspace.open()
    say = (lambda message: print(message, file=sys.stderr, flush=True)) if not args.json else (lambda message: None)
    run_id = merge_runs(ws, args.runs, args.combination, _weights(args.weights), args.density, args.name,
                        progress=say)
    out = {"run_id": run_id, "name": ws.get_run(run_id)["name"]}
    if args.eval:
        out["scores"] = merge_scores(ws, run_id, limit=args.limit, emit=lambda phase: say(str(phase)))
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    print(f"Merged into run {run_id} ({out['name']}).")
    for row in out.get("scores", []):
        kept = f"{100 * row['kept']:.0f}%" if row["kept"] is not None else "-"
        print(f"  {row['task']}: ROUGE-L {row['before']:.3f} -> {row['after']:.3f} (kept {kept}, {row['n']} rows)")
    return 0
