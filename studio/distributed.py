"""Training on several devices or machines (`resources:` in the recipe), through PyTorch's own launcher.

A run whose `resources` ask for more than one training process is not trained by the job's worker itself: the
worker launches `torch.distributed.run` (torchrun) with one process per device (`studio.dist_rank`), and the
Trainer in each of them joins one process group (NCCL on GPUs, gloo on a CPU, where each "device" is a process).
The worker then relays what rank 0 reports (`ranks/events.jsonl`) to the studio as a single process's events, so
the job row and the live chart follow rank 0; each rank keeps its own log (`train.log` for rank 0,
`ranks/rank-N.log` for the others). A stop asked of the job becomes a `ranks/STOP` file, which every rank reads
and agrees on at the same step (`studio.stages.progress.agreed`). A failure on any rank fails the run with that
rank's sentence (`ranks/error-N.json`). Nothing here writes its own distributed code: the process group, the
gradient averaging and the data sharding are PyTorch's, Accelerate's and the Trainer's.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from studio.errors import StudioError

RANKS_DIR = "ranks"
EVENTS = "events.jsonl"
RESULT = "result.json"
STOP = "STOP"
POLL_S = 0.5


def is_distributed(recipe) -> bool:
    return recipe.resources.world_size > 1


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_resources(recipe) -> None:
    """Refuse, before a run is created, what these resources cannot do on this machine."""
    res = recipe.resources
    gpus = gpu_count()
    if res.world_size == 1 and isinstance(res.devices, int):
        return
    if not gpus:
        if not isinstance(res.devices, int):
            raise StudioError(f"'resources.devices' lists GPUs {res.devices} but this machine has no CUDA GPU; give "
                              "a number of processes instead (e.g. 2).", field="resources.devices",
                              key="recipe.devices_no_gpu", value=str(res.devices))
        if res.strategy != "ddp":
            raise StudioError(f"'resources.strategy' {res.strategy} splits a model between CUDA GPUs and this "
                              "machine has none; use ddp, which runs a whole copy per CPU process.",
                              field="resources.strategy", key="recipe.strategy_needs_gpu", strategy=res.strategy)
        cores = os.cpu_count() or 1
        if res.per_node > cores:
            raise StudioError(f"'resources.devices' asks for {res.per_node} processes but this machine has {cores} "
                              f"CPU cores; ask for at most {cores}.", field="resources.devices",
                              key="recipe.devices_cores", count=res.per_node, cores=cores)
    else:
        wanted = res.devices if not isinstance(res.devices, int) else list(range(res.devices))
        if max(wanted) >= gpus:
            raise StudioError(f"'resources.devices' asks for GPU(s) {wanted} but this machine has {gpus} "
                              f"(numbered 0 to {gpus - 1}); ask for fewer.", field="resources.devices",
                              key="recipe.devices_gpus", value=str(wanted), count=gpus)
    if res.strategy.startswith("deepspeed"):
        import importlib.util

        if importlib.util.find_spec("deepspeed") is None:
            raise StudioError(f"'resources.strategy' {res.strategy} needs DeepSpeed, which is not installed; "
                              "install it (pip install deepspeed) or use ddp or fsdp.", field="resources.strategy",
                              key="recipe.strategy_no_deepspeed", strategy=res.strategy)
    if res.strategy == "fsdp" and recipe.method.name == "qlora":
        raise StudioError("'resources.strategy' fsdp cannot split QLoRA's 4-bit bitsandbytes weights here; use ddp "
                          "or deepspeed-zero2.", field="resources.strategy", key="recipe.strategy_qlora")
    if res.nodes > 1 and res.master_port == 0:
        raise StudioError("'resources.master_port' must be set when several machines train together (every machine "
                          "meets machine 0 on it); pick one such as 29500.", field="resources.master_port",
                          key="recipe.master_port")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun_command(recipe, run_dir: Path, home: Path, resume_from: Path | None, port: int,
                     python: str = sys.executable) -> list[str]:
    """The torchrun command line that trains `run_dir`'s recipe on this machine's share of the processes."""
    res = recipe.resources
    cmd = [python, "-m", "torch.distributed.run", f"--nproc-per-node={res.per_node}", f"--nnodes={res.nodes}",
           f"--node-rank={res.node_rank}", f"--master-addr={res.master_addr}", f"--master-port={port}",
           "-m", "studio.dist_rank", str(run_dir), str(home)]
    return cmd + ([str(resume_from)] if resume_from else [])


def rank_env(recipe, base: dict | None = None) -> dict:
    """The environment torchrun and its ranks start with: the GPUs a list names, and on a CPU each rank's share of
    the cores (several processes each using every core would fight over them)."""
    env = dict(os.environ if base is None else base)
    res = recipe.resources
    if not isinstance(res.devices, int) and "CUDA_VISIBLE_DEVICES" not in env:  # the job manager confines its own
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(d) for d in res.devices)
    if not gpu_count():
        share = str(max(1, int(env.get("OMP_NUM_THREADS") or os.cpu_count() or 1) // res.per_node))
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = share
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def parent_death_signal() -> Callable[[], None] | None:
    """What torchrun's process runs before it starts, so that a killed worker takes it along (Linux's
    PR_SET_PDEATHSIG). Looked up here, in the parent: the child of a fork must not import anything."""
    try:
        import ctypes

        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


class EventRelay:
    """Reads rank 0's events file as it grows and hands each complete line's event on."""

    def __init__(self, path: Path, emit: Callable[[dict], None]):
        self.path, self.emit, self.offset, self.partial = path, emit, 0, b""

    def pump(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as stream:
            stream.seek(self.offset)
            chunk = stream.read()
        self.offset += len(chunk)
        *lines, self.partial = (self.partial + chunk).split(b"\n")
        for line in lines:
            if line.strip():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                event.pop("time", None)
                self.emit(event)


def rank_failure(ranks: Path, returncode: int) -> StudioError:
    """The sentence of the rank that failed first, or what torchrun's exit says."""
    errors = sorted(ranks.glob("error-*.json"), key=lambda p: p.stat().st_mtime)
    if errors:
        error = json.loads(errors[0].read_text(encoding="utf-8"))
        return StudioError(f"Training process {error['rank']} of {error['world']} failed: {error['message']}",
                           key="run.rank_failed", rank=error["rank"], world=error["world"], reason=error["message"],
                           reason_key=error.get("key"), reason_params=error.get("params") or {})
    return StudioError(f"The training processes ended with code {returncode} before reporting a result; see "
                       f"{RANKS_DIR}/torchrun.log in the run folder.", key="run.ranks_ended", code=returncode,
                       ranks=RANKS_DIR)


def launch(recipe, run_dir: Path, home: Path, resume_from: Path | None, emit: Callable[[dict], None],
           should_stop: Callable[[], bool]) -> dict:
    """Train `run_dir`'s recipe with torchrun and return rank 0's result (see the module's docstring)."""
    ranks = run_dir / RANKS_DIR
    ranks.mkdir(exist_ok=True)
    for stale in (EVENTS, RESULT, STOP, *(p.name for p in ranks.glob("error-*.json"))):
        (ranks / stale).unlink(missing_ok=True)
    res = recipe.resources
    port = res.master_port or free_port()
    cmd = torchrun_command(recipe, run_dir, home, resume_from, port)
    emit({"type": "log", "message": f"Launching {res.world_size} training processes ({res.per_node} here, "
                                    f"strategy {res.strategy}): {' '.join(cmd)}"})
    relay = EventRelay(ranks / EVENTS, emit)
    with open(ranks / "torchrun.log", "ab") as out:
        proc = subprocess.Popen(cmd, env=rank_env(recipe), stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=parent_death_signal())
        try:
            while proc.poll() is None:
                relay.pump()
                if should_stop() and not (ranks / STOP).exists():
                    (ranks / STOP).touch()
                time.sleep(POLL_S)
        except BaseException:
            proc.terminate()
            proc.wait(timeout=30)
            raise
    relay.pump()
    if proc.returncode == 0 and (ranks / RESULT).exists():
        return json.loads((ranks / RESULT).read_text(encoding="utf-8"))
    if proc.returncode == 0 and res.node_rank != 0:
        return {"result_dir": None, "stopped": False, "node_rank": res.node_rank}
    raise rank_failure(ranks, proc.returncode)
