"""What the `studio` subcommands share: plain-text tables, progress bars only for a person at a terminal, and
following a training run."""
from __future__ import annotations

import sys
import time


def bars_wanted(args=None) -> bool:
    """A progress bar (redrawn in place) only for a person: not with --json, not when stderr is a pipe or a file."""
    return not getattr(args, "json", False) and sys.stderr.isatty()


def table(rows: list[dict], cols: list[str]) -> str:
    widths = {c: max([len(c)] + [len(str(r.get(c, "") if r.get(c) is not None else "")) for r in rows]) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
    for r in rows:
        lines.append("  ".join(str(r.get(c) if r.get(c) is not None else "").ljust(widths[c]) for c in cols))
    return "\n".join(lines)


def follow_run(manager, run_id: str, title: str) -> int:
    """Show a submitted run's progress bar until it ends (Ctrl-C: cancel with a checkpoint; twice: stop waiting);
    prints its folder. Exit code 0 when it completed."""
    from tqdm import tqdm

    bar = tqdm(total=None, unit="step", desc=title, file=sys.stderr, dynamic_ncols=True, disable=not bars_wanted())
    cancelled, said_queued = False, False
    try:
        while True:
            try:
                status = manager.status(run_id)
                if status["status"] == "queued" and not said_queued:
                    said_queued = True
                    behind = manager.queued_behind(run_id)
                    if behind:
                        tqdm.write(f"Queued behind run {behind} ({status.get('queue_position') or 1} ahead): this run "
                                   f"starts when the studio is free. Cancel it with `studio runs cancel {run_id}`.",
                                   file=sys.stderr)
                if status.get("total_steps"):
                    bar.total = status["total_steps"]
                bar.n = status.get("step") or 0
                postfix = {}
                if status.get("final_loss") is not None:
                    postfix["loss"] = f"{status['final_loss']:.4f}"
                if status.get("tokens_per_s"):
                    postfix["tok/s"] = f"{status['tokens_per_s']:.0f}"
                bar.set_postfix(postfix, refresh=False)
                bar.refresh()
                if status["status"] not in ("queued", "running", "cancelling"):
                    break
                time.sleep(0.5)
            except KeyboardInterrupt:
                if cancelled:
                    raise
                cancelled = True
                print("\nCancelling: saving a checkpoint (Ctrl-C again to stop waiting)...", file=sys.stderr)
                manager.cancel(run_id)
    finally:
        bar.close()
        manager.shutdown()
    status = manager.status(run_id)
    if status["status"] == "completed":
        print(status["run_dir"])
        return 0
    reason = status.get("error") or status["status"]
    print(f"Run {run_id} ended {status['status']}: {reason}", file=sys.stderr)
    print(status["run_dir"])
    return 1


def train_foreground(recipe) -> int:
    """Queue `recipe` in this workspace and follow it to the end in the terminal (`studio train`, `studio guide`)."""
    from studio.jobs import JobManager
    from studio.models.loading import precision_reason
    from studio.training import prepare_run
    from studio.workspace import Workspace

    ws = Workspace.open()
    run_id = prepare_run(ws, recipe)
    print(precision_reason(recipe.train.precision), file=sys.stderr)
    manager = JobManager(ws)
    manager.start()
    try:
        manager.submit(run_id)
    except BaseException:
        manager.shutdown()
        raise
    return follow_run(manager, run_id, recipe.name)
