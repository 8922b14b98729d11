"""`studio train RECIPE --emit slurm|skypilot|torchrun` writes scripts that run the same recipe with `studio train` on
every machine (checked with `bash -n` and a YAML load), and `studio runs import` lists a run folder trained elsewhere."""
from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from studio.cli import main
from studio.cluster import emit, import_run
from studio.config import load_recipe, parse_recipe
from studio.errors import StudioError

RECIPE = {"name": "big", "model": "smollm2-135m-instruct", "data": {"dataset": "sample-format-tutor"},
          "resources": {"devices": 4, "nodes": 2, "master_addr": "10.1.2.3", "master_port": 29555}}


def bash_ok(script: str) -> None:
    """`script` (a shell script's text) parses."""
    done = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_slurm_script_runs_one_studio_train_per_machine(tmp_path):
    recipe_file, script = emit(parse_recipe(RECIPE), "slurm", tmp_path)
    bash_ok(script.read_text())
    text = script.read_text()
    assert "#SBATCH --nodes=2" in text and "#SBATCH --gpus-per-node=4" in text and "#SBATCH --ntasks-per-node=1" in text
    assert "resources.node_rank=$SLURM_NODEID" in text and "resources.nodes=$SLURM_JOB_NUM_NODES" in text
    assert "scontrol show hostnames" in text and "29555" in text and str(recipe_file) in text
    assert load_recipe(recipe_file).resources.per_node == 4  # the recipe travels whole


def test_skypilot_task_is_valid_yaml_with_the_launchers_variables(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"instruction": "a", "output": "b"}\n')
    _, task = emit(parse_recipe({**RECIPE, "data": {"dataset": str(data)}}), "skypilot", tmp_path / "out",
                   accelerator="H100")
    spec = yaml.safe_load(task.read_text())
    assert spec["num_nodes"] == 2 and spec["resources"]["accelerators"] == "H100:4"
    assert "make install" in spec["setup"]
    assert "$SKYPILOT_NODE_RANK" in spec["run"] and "$SKYPILOT_NODE_IPS" in spec["run"]
    assert f"~/studio-data/{data.name}" in spec["file_mounts"] and f"data.dataset=$HOME/studio-data/{data.name}" in \
        spec["run"]
    bash_ok(spec["run"])


def test_torchrun_script_names_each_machines_command(tmp_path):
    _, script = emit(parse_recipe(RECIPE), "torchrun", tmp_path)
    bash_ok(script.read_text())
    text = script.read_text()
    assert "machine 0:" in text and "machine 1:" in text and "resources.master_addr=10.1.2.3" in text
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True)  # no machine number given
    assert done.returncode != 0 and "the number of this machine" in done.stderr


def test_the_cli_writes_the_files_and_refuses_an_unknown_target(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    assert main(["train", str(recipe), "--emit", "slurm", "--out", str(tmp_path / "s"), "--json"]) == 0
    files = json.loads(capsys.readouterr().out)["files"]
    assert [p.rsplit("/", 1)[1] for p in files] == ["recipe.yaml", "train.sbatch"]
    with pytest.raises(StudioError) as error:
        emit(parse_recipe(RECIPE), "kubernetes", tmp_path)
    assert error.value.key == "cluster.target"


def test_a_run_folder_from_elsewhere_is_imported_and_listed(workspace, tmp_path):
    folder = tmp_path / "20261207-010101-big-abcd"
    (folder / "adapter").mkdir(parents=True)
    (folder / "recipe.yaml").write_text(yaml.safe_dump(RECIPE))
    (folder / "summary.json").write_text(json.dumps({"result_dir": "/cluster/home/runs/x/adapter",
                                                     "final_loss": 1.25, "steps": 40}))
    run_id = import_run(workspace, folder)
    run = workspace.get_run(run_id)
    assert run["status"] == "completed" and run["final_loss"] == 1.25 and run["step"] == 40
    assert run["result_dir"] == str(workspace.runs_dir / run_id / "adapter")
    assert (workspace.runs_dir / run_id / "recipe.yaml").exists()
    with pytest.raises(StudioError) as again:
        import_run(workspace, folder)
    assert again.value.key == "cluster.run_exists"
    with pytest.raises(StudioError) as not_a_run:
        import_run(workspace, tmp_path)
    assert not_a_run.value.key == "cluster.not_a_run"
