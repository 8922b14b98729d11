"""What the `studio` subcommands share: plain-text tables and following a training run in the terminal."""
from __future__ import annotations

import sys
import time


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

    bar = tqdm(total=None, unit="step", desc=title, file=sys.stderr, dynamic_ncols=True)
    cancelled = False
    try:
        while True:
            try:
                status = manager.status(run_id)
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
