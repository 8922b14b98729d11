"""The job side of a run directory: checkpoints to resume from, metrics.jsonl, and train.log.

The supervisor is the only writer of `metrics.jsonl` (one JSON object per progress event, each
with `step` and `time`), so appends need no locking; readers (the UI's status poll, the CLI's
progress bar) read only the tail or what was appended since they last looked. `train.log` belongs
to the worker while it runs; the supervisor adds a last line saying how the run ended. What the
events mean and how the runs row changes is `studio.jobs.manager`'s business.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Iterator

from studio.workspace import read_metrics

SKIP_EVALUATION = "skip-evaluation"  # written in a run folder: the worker cuts the evaluation in progress short


def checkpoint_step(path: Path) -> int:
    return int(Path(path).name.rsplit("-", 1)[-1])


def latest_checkpoint(run_dir: Path) -> Path | None:
    """run_dir/checkpoints/checkpoint-<step> with the highest step, or None."""
    ckpts = [p for p in (Path(run_dir) / "checkpoints").glob("checkpoint-*")
             if p.is_dir() and p.name.rsplit("-", 1)[-1].isdigit()]
    return max(ckpts, key=checkpoint_step) if ckpts else None


def tail_lines(path: Path, max_bytes: int = 65536) -> list[str]:
    """The complete lines among the last `max_bytes` of a file (none if it does not exist)."""
    try:
        with open(path, "rb") as fh:
            start = max(0, fh.seek(0, os.SEEK_END) - max_bytes)
            fh.seek(start)
            lines = fh.read().decode("utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    return lines[1:] if start else lines


def recent_metrics(run_dir: Path) -> list[dict]:
    events = []
    for line in tail_lines(Path(run_dir) / "metrics.jsonl"):
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:  # a line torn by a crash
            continue
    return events


def append_metrics(run_dir: Path, events: list[dict]) -> None:
    if events:
        with open(Path(run_dir) / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(e, default=str) + "\n" for e in events))


def rewind_metrics(run_dir: Path, step: int) -> None:
    """Drop events after `step`: a resumed run trains those steps again, and the plot must not double them."""
    kept = [e for e in read_metrics(run_dir) if e.get("step", 0) <= step]
    tmp = Path(run_dir) / "metrics.jsonl.tmp"
    tmp.write_text("".join(json.dumps(e) + "\n" for e in kept), encoding="utf-8")
    os.replace(tmp, Path(run_dir) / "metrics.jsonl")


def estimate_eta(events: list[dict], since: float, step: int, total_steps: int | None) -> float | None:
    """Seconds left at the step rate of the last 50 events logged since `since` (the job's start)."""
    timed = [e for e in events if "step" in e and e.get("time", 0) >= since][-50:]
    if not total_steps or len(timed) < 2:
        return None
    steps, secs = timed[-1]["step"] - timed[0]["step"], timed[-1]["time"] - timed[0]["time"]
    if steps <= 0 or secs <= 0:
        return None
    return round(max(0, total_steps - step) * secs / steps, 1)


def follow_metrics(run_dir: Path, is_active: Callable[[], bool], poll_s: float = 0.5) -> Iterator[dict]:
    """Yield each event appended to metrics.jsonl until `is_active()` turns false (then a last read)."""
    path, offset, pending = Path(run_dir) / "metrics.jsonl", 0, b""
    while True:
        active = is_active()
        size = path.stat().st_size if path.exists() else 0
        if size < offset:  # rewritten by a resume: start over
            offset, pending = 0, b""
        if size > offset:
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read(size - offset)
            offset += len(chunk)
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue
        if not active:
            return
        time.sleep(poll_s)


def append_log_line(run_dir: Path, message: str) -> None:
    with open(Path(run_dir) / "train.log", "a", encoding="utf-8") as fh:
        fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} studio: {message}\n")
