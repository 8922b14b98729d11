"""One training process of a run on several devices: what torchrun starts (`python -m studio.dist_rank RUN_DIR HOME
[RESUME_FROM]`, see `studio.distributed`).

Rank 0 logs to the run's `train.log`, writes its events as JSON lines to `ranks/events.jsonl` (the job's worker
relays them) and its result to `ranks/result.json`; the other ranks log to `ranks/rank-N.log` and report nothing.
A rank that fails writes `ranks/error-N.json` with its sentence before it exits.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path

from studio.distributed import EVENTS, RANKS_DIR, RESULT, STOP
from studio.jobs.worker import ORPHAN_GRACE_S, capture_output, exit_with_parent, failure_message

log = logging.getLogger("studio.dist_rank")


def main(argv: list[str]) -> int:
    run_dir, home = Path(argv[0]), Path(argv[1])
    resume_from = Path(argv[2]) if len(argv) > 2 else None
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    ranks = run_dir / RANKS_DIR
    capture_output(run_dir / "train.log" if rank == 0 else ranks / f"rank-{rank}.log")
    os.environ["STUDIO_HOME"] = str(home)
    exit_with_parent(ORPHAN_GRACE_S)  # torchrun gone: checkpoint at the next step (should_stop), then end
    parent = os.getppid()
    events = open(ranks / EVENTS, "a", encoding="utf-8") if rank == 0 else None

    def emit(event: dict) -> None:
        if event.get("type") == "log":
            if rank == 0:
                log.info("%s", event.get("message", ""))
        elif events is not None:
            events.write(json.dumps({"time": round(time.time(), 3), **event}) + "\n")
            events.flush()

    def should_stop() -> bool:  # this rank's view; the ranks agree on it at each step (progress.agreed)
        return (ranks / STOP).exists() or os.getppid() != parent

    log.info("Training process %s of %s started: pid %s", rank, world, os.getpid())
    try:
        from studio.training import run_stage

        result = run_stage(run_dir, home, resume_from, emit, should_stop)
        if rank == 0:
            result = {k: (str(v) if isinstance(v, Path) else v) for k, v in result.items()}
            (ranks / f"{RESULT}.tmp").write_text(json.dumps(result), encoding="utf-8")
            os.replace(ranks / f"{RESULT}.tmp", ranks / RESULT)
        return 0
    except BaseException as exc:
        log.error("Training process %s failed:\n%s", rank, traceback.format_exc())
        (ranks / f"error-{rank}.json").write_text(json.dumps({
            "rank": rank, "world": world, "message": failure_message(exc),
            "key": getattr(exc, "key", None), "params": getattr(exc, "params", None)}), encoding="utf-8")
        return 1
    finally:
        if events is not None:
            events.close()
        logging.shutdown()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
