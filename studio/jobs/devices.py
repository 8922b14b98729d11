"""Which devices a training job asks for, which are free, and how a worker is confined to its own.

The job manager runs side by side as many training jobs as there are free devices: each GPU is one device (a job
asks for `resources.devices` of them: a number, or a list of indices), and a machine without a GPU is one device,
the CPU, whatever number of processes a job runs on it. A worker sees only its devices (`CUDA_VISIBLE_DEVICES`),
so a job that asks for 2 GPUs finds them as cuda:0 and cuda:1. `STUDIO_DEVICES` ("0,1", or "cpu") limits what the
studio may use on a shared machine.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

CPU = "cpu"


def detect() -> list[str]:
    """This machine's devices as the job manager counts them: GPU indices, or the CPU alone."""
    limit = os.environ.get("STUDIO_DEVICES", "").strip()
    if limit:
        return [d.strip() for d in limit.split(",") if d.strip()]
    try:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:
        count = 0
    return [str(i) for i in range(count)] or [CPU]


def wanted(run_dir: Path, devices: list[str]) -> int | list[str]:
    """What the run's recipe asks for: a count of devices or named GPUs; one device (the CPU) on a CPU machine."""
    if devices == [CPU]:
        return 1
    try:
        from studio.config import load_recipe

        asked = load_recipe(Path(run_dir) / "recipe.yaml").resources.devices
    except Exception:  # an unreadable recipe fails in its worker, with its own sentence
        return 1
    return asked if isinstance(asked, int) else [str(d) for d in asked]


def pick(want: int | list[str], free: list[str]) -> list[str] | None:
    """The devices to give a job from `free`, or None while it must wait."""
    if isinstance(want, int):
        return free[:want] if len(free) >= want else None
    return list(want) if set(want) <= set(free) else None


def visible(ids: list[str], parent_env: dict | None = None) -> str | None:
    """CUDA_VISIBLE_DEVICES for a worker on GPUs `ids` (indices among those the studio sees, which may themselves
    be a subset the person chose); None on the CPU."""
    if ids == [CPU]:
        return None
    env = os.environ if parent_env is None else parent_env
    seen = [d.strip() for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return ",".join(seen[int(i)] if seen and int(i) < len(seen) else i for i in ids)


def claim_next(ws: Any, devices: list[str], max_concurrent: int) -> tuple[dict, dict, list[str]] | str | None:
    """Mark the oldest queued training job running on free `devices` it asks for, atomically across processes (the
    jobs table says which devices each running job holds): (job, run, devices given), None while it must wait for
    its devices (the jobs behind it wait their turn), or "taken" when another process claimed it first."""
    with ws.db() as conn:
        head = conn.execute("SELECT j.id, r.run_dir FROM jobs j JOIN runs r ON r.id = j.run_id WHERE "
                            "j.kind = 'train' AND j.status = 'queued' ORDER BY j.id LIMIT 1").fetchone()
    if head is None:
        return None
    want, now = wanted(Path(head["run_dir"]), devices), time.time()
    with ws.db() as conn:
        conn.execute("BEGIN IMMEDIATE")
        held = [r["devices"] for r in conn.execute("SELECT devices FROM jobs WHERE kind = 'train' AND status IN "
                                                    "('running', 'cancelling')")]
        taken = {d for h in held if h for d in h.split(",")}
        free = [d for d in devices if d not in taken][sum(1 for h in held if not h):]  # unrecorded rows hold one
        given = pick(want, free) if len(held) < max_concurrent else None
        job = given and conn.execute("SELECT * FROM jobs WHERE id = ? AND status = 'queued'", (head["id"],)).fetchone()
        run = job and conn.execute("SELECT * FROM runs WHERE id = ?", (job["run_id"],)).fetchone()
        if job:
            conn.execute("UPDATE jobs SET status = 'running', started_at = ?, devices = ? WHERE id = ?",
                         (now, ",".join(given), job["id"]))
            conn.execute("UPDATE runs SET status = 'running', started_at = COALESCE(started_at, ?), "
                         "finished_at = NULL, error = NULL, pid = NULL WHERE id = ?", (now, job["run_id"]))
        conn.execute("COMMIT")
    if given is None:
        return None
    return (dict(job), dict(run), given) if job else "taken"
