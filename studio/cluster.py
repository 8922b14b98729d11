"""Hand a recipe to a cluster: `studio train RECIPE --emit slurm|skypilot|torchrun` writes a ready script that runs
the same recipe with `studio train` on every machine, and `studio runs import DIR` brings a finished run folder back.

Every script does the same thing on each machine: `studio train recipe.yaml` with `resources.nodes`,
`resources.node_rank`, `resources.master_addr` and `resources.master_port` filled in from what the launcher knows
(Slurm's node list and node id, SkyPilot's node IPs and rank, or the numbers written per machine for plain
torchrun). Each machine's `studio train` then starts its share of the processes through torchrun
(`studio.distributed`); machine 0 writes the run folder, in the usual layout.
"""
from __future__ import annotations

import json
import shlex
import shutil
import time
from pathlib import Path

import yaml

from studio.config import Recipe, recipe_to_dict
from studio.errors import StudioError

TARGETS = ("slurm", "skypilot", "torchrun")
DEFAULT_PORT = 29500
SCRIPT_NAMES = {"slurm": "train.sbatch", "skypilot": "sky-task.yaml", "torchrun": "train-nodes.sh"}


def _train_line(recipe_file: str, nodes: str, rank: str, addr: str, port: str, devices: str | None = None) -> str:
    sets = [f"resources.nodes={nodes}", f"resources.node_rank={rank}", f"resources.master_addr={addr}",
            f"resources.master_port={port}"] + ([f"resources.devices={devices}"] if devices else [])
    return f"studio train {recipe_file} " + " ".join(f"--set {s}" for s in sets)


def slurm_script(recipe: Recipe, recipe_file: str) -> str:
    res = recipe.resources
    gpus = res.per_node
    return f"""#!/bin/bash
# Fine-tuning Studio: '{recipe.name}' on {res.nodes} machine(s) with {gpus} GPU(s) each, through Slurm.
# Submit it with:  sbatch {SCRIPT_NAMES['slurm']}
# Each machine runs `studio train` once (one task per node), which starts its {gpus} training processes with
# torchrun. The studio must be installed on every machine, and the recipe's model and dataset reachable there
# (set STUDIO_HOME to a shared folder, or use file paths on shared storage); machine 0 writes the run folder.
#SBATCH --job-name={recipe.name}
#SBATCH --nodes={res.nodes}
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node={gpus}
#SBATCH --output=studio-%x-%j.out
set -euo pipefail
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
MASTER_PORT=${{MASTER_PORT:-{res.master_port or DEFAULT_PORT}}}
export MASTER_ADDR MASTER_PORT
srun --kill-on-bad-exit=1 bash -c '{_train_line(recipe_file, "$SLURM_JOB_NUM_NODES", "$SLURM_NODEID",
                                                 "$MASTER_ADDR", "$MASTER_PORT")}'
"""


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (a task's setup and run) as literal blocks, the way people write them."""


_BlockDumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def skypilot_task(recipe: Recipe, recipe_file: str, accelerator: str) -> str:
    """A SkyPilot task: the studio's source is copied to every machine and installed there (`make install`); a
    recipe whose dataset is a file takes that file along."""
    import studio

    res = recipe.resources
    source = Path(studio.__file__).resolve().parents[1]
    mounts = {"~/finetuning-studio": str(source)}
    data = Path(recipe.data.dataset).expanduser()
    if data.is_file():
        mounts[f"~/studio-data/{data.name}"] = str(data.resolve())
        recipe_file += f" --set data.dataset=$HOME/studio-data/{data.name}"
    task = {
        "name": recipe.name,
        "num_nodes": res.nodes,
        "resources": {"accelerators": f"{accelerator}:{res.per_node}"},
        "workdir": ".",
        "file_mounts": mounts,
        "envs": {"MASTER_PORT": res.master_port or DEFAULT_PORT, "STUDIO_HOME": "~/studio-home"},
        "setup": "cd ~/finetuning-studio && make install\n",
        "run": "source ~/finetuning-studio/.venv/bin/activate\n"
               "MASTER_ADDR=$(echo \"$SKYPILOT_NODE_IPS\" | head -n1)\n" + _train_line(
                   recipe_file, "$SKYPILOT_NUM_NODES", "$SKYPILOT_NODE_RANK", "$MASTER_ADDR", "$MASTER_PORT",
                   devices="$SKYPILOT_NUM_GPUS_PER_NODE") + "\n",
    }
    head = (f"# Fine-tuning Studio: '{recipe.name}' on {res.nodes} machine(s) with {res.per_node} {accelerator} "
            f"GPU(s) each, through SkyPilot.\n# Launch it from this folder with:  sky launch -c {recipe.name} "
            f"{SCRIPT_NAMES['skypilot']}\n# Machine 0 writes the run folder under ~/studio-home/runs; copy it back "
            "(sky rsync-down) and open it with `studio runs import FOLDER`.\n")
    return head + yaml.dump(task, Dumper=_BlockDumper, sort_keys=False, width=1000)


def torchrun_script(recipe: Recipe, recipe_file: str) -> str:
    res = recipe.resources
    port = res.master_port or DEFAULT_PORT
    addr = res.master_addr if res.nodes > 1 else "127.0.0.1"
    lines = [
        "#!/bin/bash",
        f"# Fine-tuning Studio: '{recipe.name}' on {res.nodes} machine(s), {res.per_node} training process(es) each.",
        "# Run this script on every machine with that machine's number (0 first; 0 writes the run folder):",
        f"#   bash {SCRIPT_NAMES['torchrun']} NODE_RANK",
        "# `studio train` starts the machine's processes with torchrun; the commands it runs are, per machine:",
    ]
    for rank in range(res.nodes):
        lines.append(f"#   machine {rank}: " + _train_line(recipe_file, str(res.nodes), str(rank), addr, str(port)))
    lines += [
        "set -euo pipefail",
        'NODE_RANK="${1:?give the number of this machine, 0 to ' + str(res.nodes - 1) + '}"',
        f'MASTER_ADDR="${{MASTER_ADDR:-{addr}}}"',
        f'MASTER_PORT="${{MASTER_PORT:-{port}}}"',
        _train_line(recipe_file, str(res.nodes), "$NODE_RANK", "$MASTER_ADDR", "$MASTER_PORT"),
        "",
    ]
    return "\n".join(lines)


def emit(recipe: Recipe, target: str, out_dir: Path, accelerator: str = "A100") -> list[Path]:
    """Write `recipe.yaml` and the `target`'s script into `out_dir`; returns the files written."""
    if target not in TARGETS:
        raise StudioError(f"'--emit' is {target!r}; choose one of {', '.join(TARGETS)}.", field="emit",
                          key="cluster.target", target=target, targets=", ".join(TARGETS))
    out_dir.mkdir(parents=True, exist_ok=True)
    recipe_path = out_dir / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False, allow_unicode=True),
                           encoding="utf-8")
    name = "recipe.yaml"
    if target == "slurm":
        text = slurm_script(recipe, shlex.quote(str(recipe_path.resolve())))
    elif target == "skypilot":
        text = skypilot_task(recipe, name, accelerator)
    else:
        text = torchrun_script(recipe, shlex.quote(str(recipe_path.resolve())))
    script = out_dir / SCRIPT_NAMES[target]
    script.write_text(text, encoding="utf-8")
    if target != "skypilot":
        script.chmod(0o755)
    return [recipe_path, script]


def import_run(ws, folder: Path) -> str:
    """Copy a run folder written elsewhere (a cluster's machine 0) into this workspace and list it; returns its id."""
    from studio.config import load_recipe

    folder = Path(folder).expanduser()
    if not (folder / "recipe.yaml").is_file():
        raise StudioError(f"'{folder}' is not a run folder (it has no recipe.yaml); give the folder `studio train` "
                          "printed last.", field="folder", key="cluster.not_a_run", folder=str(folder))
    run_id = folder.name
    if ws.get_run(run_id) is not None or (ws.runs_dir / run_id).exists():
        raise StudioError(f"A run '{run_id}' is already in this workspace; it was imported before.", field="folder",
                          key="cluster.run_exists", run_id=run_id)
    recipe = load_recipe(folder / "recipe.yaml")
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8")) \
        if (folder / "summary.json").is_file() else {}
    result = summary.get("result_dir")
    status = "completed" if result else "failed" if not summary else "cancelled"
    shutil.copytree(folder, ws.runs_dir / run_id, ignore=shutil.ignore_patterns("STOP", "*.tmp"))
    result_dir = ws.runs_dir / run_id / Path(result).name if result else None
    ws.insert_run({"id": run_id, "name": recipe.name, "model": recipe.model, "stage": recipe.stage,
                   "method": recipe.method.name, "dataset": recipe.data.dataset, "status": status,
                   "run_dir": str(ws.runs_dir / run_id), "created_at": time.time(), "finished_at": time.time(),
                   "final_loss": summary.get("final_loss"), "step": summary.get("steps") or 0, "result_dir": str(result_dir) if result_dir else None,
                   "error": None if result else "Imported without a result (see train.log)."})
    return run_id
