"""Offline GPUs train: without network and without the kernels in the cache, Hub kernels are switched off for the
process (and the jobs it starts) before any model is built, and every run records the decision."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from studio import hub_kernels
from studio.hub_kernels import ENV, cached_repos, decide_hub_kernels, mapped_kernel_repos

ROTARY = "kernels-community/rotary"


def test_offline_without_cached_kernels_switches_them_off():
    env: dict = {}
    decision = decide_hub_kernels(env, offline=lambda: True, repos=lambda: {ROTARY}, cached=lambda r: set())
    assert decision["enabled"] is False and ROTARY in decision["why"]
    assert env[ENV] == "NO"
    again = decide_hub_kernels(env)  # a job started by this process inherits the variable and the reason
    assert again == decision


def test_online_or_fully_cached_keeps_them_and_the_users_choice_wins():
    env: dict = {}
    assert decide_hub_kernels(env, offline=lambda: False)["enabled"] and ENV not in env
    cached = decide_hub_kernels(env, offline=lambda: True, repos=lambda: {ROTARY}, cached=lambda r: set(r))
    assert cached["enabled"] and ENV not in env
    mine = {ENV: "YES"}
    assert decide_hub_kernels(mine, offline=lambda: True, repos=lambda: {ROTARY}, cached=lambda r: set())["enabled"]
    assert mine == {ENV: "YES"}


def test_the_cache_check_reads_the_hub_layout(tmp_path):
    (tmp_path / "models--kernels-community--rotary" / "snapshots" / "abc").mkdir(parents=True)
    assert cached_repos({ROTARY, "kernels-community/activation"}, tmp_path) == {ROTARY}
    assert ROTARY in mapped_kernel_repos()  # transformers' own mapping names the kernel an offline GPU failed on


def test_a_simulated_offline_cuda_machine_never_asks_the_hub(tmp_path):
    """A fresh process like a job's: offline, empty kernel cache, CUDA claimed present. After the studio's decision
    transformers reports kernels disabled, so no layer tries to fetch one."""
    code = """
import json, torch
torch.cuda.is_available = lambda: True
from studio.hub_kernels import ensure_decided
decision = ensure_decided()
from transformers.integrations import hub_kernels
print(json.dumps({"decision": decision, "transformers_enabled": hub_kernels._kernels_enabled()}))
"""
    env = {k: v for k, v in os.environ.items() if k not in (ENV, hub_kernels.WHY)}
    env.update(HF_HUB_OFFLINE="1", KERNELS_CACHE=str(tmp_path / "empty-cache"), HF_HUB_CACHE=str(tmp_path / "hub"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["decision"]["enabled"] is False and "offline" in result["decision"]["why"]
    assert result["transformers_enabled"] is False


def test_every_run_records_the_decision(workspace, tiny_llama_dir):
    from tests.engine.test_training import run_in_process, tiny_recipe

    run_id, _, result = run_in_process(workspace, tiny_recipe(tiny_llama_dir, "lora", max_steps=1))
    summary = json.loads((Path(workspace.get_run(run_id)["run_dir"]) / "summary.json").read_text())
    assert set(summary["hub_kernels"]) == {"enabled", "why"} and summary["hub_kernels"] == result["hub_kernels"]
