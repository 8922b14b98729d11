"""Training on several processes (`resources.devices`): torchrun with gloo on this CPU, the same path a multi-GPU
machine takes with NCCL. Two processes with batch 4 each must learn what one process learns with batch 8."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.config import parse_recipe
from studio.distributed import EventRelay, check_resources, free_port, rank_env, rank_failure, torchrun_command
from studio.errors import StudioError
from studio.training import execute, prepare_run

ROOT = Path(__file__).resolve().parents[2]


def recipe_dict(model_dir: Path, **train) -> dict:
    return {"name": "ddp", "model": str(model_dir), "method": {"name": "lora", "r": 8},
            "data": {"dataset": "sample-format-tutor", "max_length": 64, "validation": 0},
            "train": {"max_steps": 4, "batch_size": 8, "lr": 5e-3, "precision": "fp32", "group_by_length": False,
                      "save_every": 2, **train}}


def losses(events: list[dict]) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in events if "loss" in e}


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_with_batch_4_follow_one_process_with_batch_8(workspace, tiny_llama_dir, tmp_path):
    single = prepare_run(workspace, parse_recipe(recipe_dict(tiny_llama_dir)))
    single_dir = Path(workspace.get_run(single)["run_dir"])
    events: list[dict] = []
    execute(single_dir, workspace.home, None, events.append, lambda: False)

    recipe = tmp_path / "ddp.yaml"
    recipe.write_text(json.dumps(recipe_dict(tiny_llama_dir)), encoding="utf-8")  # JSON is YAML
    done = subprocess.run([sys.executable, "-m", "studio.cli", "train", str(recipe), "--set", "resources.devices=2",
                           "--set", "train.batch_size=4"], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "STUDIO_HOME": str(workspace.home)}, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    ddp_dir = Path(done.stdout.strip().splitlines()[-1])
    expected, got = losses(events), losses(metrics(ddp_dir))
    assert sorted(got) == sorted(expected) == [1, 2, 3, 4]
    for step, loss in expected.items():
        assert got[step] == pytest.approx(loss, rel=0.02), (step, got, expected)
    # Both ranks ran and kept their logs; rank 0 wrote the one result, a loadable adapter.
    assert (ddp_dir / "ranks" / "rank-1.log").read_text().count("Training process 1 of 2 started") == 1
    assert "Training process 0 of 2 started" in (ddp_dir / "train.log").read_text()
    summary = json.loads((ddp_dir / "summary.json").read_text())
    assert Path(summary["result_dir"]).name == "adapter" and (ddp_dir / "adapter" / "adapter_config.json").exists()
    assert workspace.get_run(ddp_dir.name)["status"] == "completed"
    assert any((ddp_dir / "checkpoints").iterdir())


def test_a_failure_on_a_rank_fails_the_run_with_that_ranks_sentence(workspace, tiny_llama_dir, tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(json.dumps({"instruction": f"Say {i}.", "output": f"{i}"}) for i in range(20)))
    raw = recipe_dict(tiny_llama_dir)
    raw["data"]["dataset"] = str(data)
    raw["resources"] = {"devices": 2}
    run = prepare_run(workspace, parse_recipe(raw))
    run_dir = Path(workspace.get_run(run)["run_dir"])
    data.unlink()  # gone between the check and the run: every rank fails to read it
    with pytest.raises(StudioError) as failed:
        execute(run_dir, workspace.home, None, lambda event: None, lambda: False)
    assert failed.value.message.startswith("Training process ") and " of 2 failed: " in failed.value.message
    assert failed.value.key == "run.rank_failed"
    assert str(data.name) in failed.value.message, failed.value.message


def test_resources_that_cannot_apply_here_are_refused_with_a_sentence(tiny_llama_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("the refusals below are this CPU machine's")

    def refused(resources: dict, method: str = "lora") -> StudioError:
        raw = {**recipe_dict(tiny_llama_dir), "resources": resources, "method": {"name": method}}
        with pytest.raises(StudioError) as error:
            check_resources(parse_recipe(raw))
        return error.value

    assert refused({"devices": [0, 1]}).field == "resources.devices"  # GPU indices on a machine without GPUs
    assert "ddp" in refused({"devices": 2, "strategy": "fsdp"}).message
    assert refused({"devices": (os.cpu_count() or 1) + 1}).key == "recipe.devices_cores"
    assert refused({"devices": 1, "nodes": 2, "master_addr": "10.0.0.1"}).field == "resources.master_port"
    check_resources(parse_recipe({**recipe_dict(tiny_llama_dir), "resources": {"devices": 1}}))


def test_the_launch_command_and_environment_follow_the_recipe(tiny_llama_dir, tmp_path):
    recipe = parse_recipe({**recipe_dict(tiny_llama_dir), "resources": {
        "devices": 2, "nodes": 3, "node_rank": 1, "master_addr": "10.0.0.5", "master_port": 29500}})
    cmd = torchrun_command(recipe, tmp_path / "run", tmp_path / "home", None, 29500, python="python")
    assert cmd[:3] == ["python", "-m", "torch.distributed.run"]
    assert {"--nproc-per-node=2", "--nnodes=3", "--node-rank=1", "--master-addr=10.0.0.5",
            "--master-port=29500"} <= set(cmd)
    assert cmd[-3:] == ["studio.dist_rank", str(tmp_path / "run"), str(tmp_path / "home")]
    listed = parse_recipe({**recipe_dict(tiny_llama_dir), "resources": {"devices": [2, 3]}})
    assert rank_env(listed, {})["CUDA_VISIBLE_DEVICES"] == "2,3"


def test_rank_zeros_events_are_relayed_line_by_line(tmp_path):
    path, seen = tmp_path / "events.jsonl", []
    relay = EventRelay(path, seen.append)
    relay.pump()  # nothing yet
    with open(path, "a") as out:
        out.write(json.dumps({"time": 1, "type": "progress", "step": 1}) + "\n" + '{"type": "progr')
    relay.pump()
    assert seen == [{"type": "progress", "step": 1}]
    with open(path, "a") as out:
        out.write('ess", "step": 2}\n')
    relay.pump()
    assert seen[-1] == {"type": "progress", "step": 2} and len(seen) == 2


def test_a_ranks_reason_reads_in_the_pages_language(tmp_path):
    from studio.ui.i18n import Texts

    (tmp_path / "error-1.json").write_text(json.dumps({
        "rank": 1, "world": 2, "message": "'lr' must be at least 0; got -1.", "key": "setting.too_small",
        "params": {"name": "lr", "low": 0, "value": -1}}))
    error = rank_failure(tmp_path, 1)
    spanish = Texts.load().sentence("es", error.key, json.loads(json.dumps(error.params)), error.message)
    assert spanish == "El proceso de entrenamiento 1 de 2 falló: 'lr' debe ser como mínimo 0, no -1."


def test_without_an_error_file_the_exit_code_is_said(tmp_path):
    error = rank_failure(tmp_path, -9)
    assert error.key == "run.ranks_ended" and "-9" in error.message


AGREE = """
import os, sys, torch.distributed as dist
from studio.stages.progress import agreed
dist.init_process_group("gloo")
rank = dist.get_rank()
print(agreed(rank == 1), agreed(False))
"""


def test_processes_agree_to_stop_when_any_of_them_is_asked(tmp_path):
    script = tmp_path / "agree.py"
    script.write_text(AGREE)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2",
                           f"--master-port={free_port()}",
                           "--tee=3", str(script)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = [line.split(":", 1)[-1].strip() for line in done.stdout.splitlines() if "True" in line or "False" in line]
    assert sorted(lines) == ["True False", "True False"], done.stdout
