"""A stand-in for `studio.training.execute` that trains nothing, for fast tests of the job machinery.

It reads `fake.json` from the run directory (steps, seconds per step, checkpoint interval, and an
optional misbehaviour), emits one progress event per step, writes `checkpoints/checkpoint-<step>/`
like the HF Trainer does, honours `should_stop` by checkpointing and returning `stopped=True`, and
resumes from the step in `resume_from`'s name. Every call is recorded in `calls.jsonl`.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from studio.errors import StudioError


def _checkpoint(run_dir: Path, step: int) -> None:
    ckpt = run_dir / "checkpoints" / f"checkpoint-{step}"
    ckpt.mkdir(parents=True, exist_ok=True)
    (ckpt / "state.json").write_text(json.dumps({"step": step}))


def execute(run_dir: Path, home: Path, resume_from: Path | None, emit, should_stop) -> dict:
    cfg = {"steps": 6, "sleep": 0.05, "every": 2, "fail_at": None, "mode": None}
    if (run_dir / "fake.json").exists():
        cfg.update(json.loads((run_dir / "fake.json").read_text()))
    start = int(Path(resume_from).name.rsplit("-", 1)[-1]) if resume_from else 0
    with open(run_dir / "calls.jsonl", "a") as fh:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")  # the GPUs the job manager gave this job
        fh.write(json.dumps({"resume_from": str(resume_from) if resume_from else None, "start": start,
                             **({"visible": visible} if visible else {})}) + "\n")
    emit({"type": "log", "message": f"fake training from step {start}"})
    print("fake target on stdout", flush=True)
    os.write(2, b"fake target on fd 2\n")
    loss = None
    for step in range(start + 1, cfg["steps"] + 1):
        if should_stop() and cfg["mode"] != "ignore_stop":
            _checkpoint(run_dir, step - 1)
            return {"result_dir": None, "final_loss": loss, "stopped": True}
        if step == cfg["fail_at"]:
            if cfg["mode"] == "studio_error":
                raise StudioError("The dataset 'x' has no 'messages' column; pick a chat dataset.", field="data.dataset")
            raise RuntimeError("boom at step %d" % step)
        if step == cfg.get("phase_at"):  # an evaluation between steps, as the real progress callback reports it
            emit({"type": "phase", "phase": "evaluating", "done": 2, "total": 16})
        time.sleep(cfg["sleep"])
        loss = round(2.0 / step, 4)
        emit({"type": "progress", "step": step, "total_steps": cfg["steps"], "loss": loss, "lr": 1e-4,
              "tokens_per_s": 1000.0 + step, "epoch": step / cfg["steps"]})
        if step % cfg["every"] == 0:
            _checkpoint(run_dir, step)
    (run_dir / "adapter").mkdir(exist_ok=True)
    return {"result_dir": run_dir / "adapter", "final_loss": loss, "stopped": False}
