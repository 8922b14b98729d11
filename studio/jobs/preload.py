"""What the fork server imports once for every job it forks (`studio.jobs.processes`): the libraries a training
or export job spends its first seconds importing. Importing is all it does: no model, no tensor, no thread pool,
no GPU, no decision a job makes from its environment (hub kernels are decided in the job, `studio.hub_kernels`),
so a fork of it is as clean as a fresh process. A library that fails to import here (missing, or a broken native
part) is skipped: the job then imports it itself and reports the failure where it matters."""
import importlib

MODULES = ("torch", "transformers.modeling_utils", "transformers.trainer", "peft", "datasets", "trl",
           "studio.stages", "studio.training")

for _name in MODULES:
    try:
        importlib.import_module(_name)
    except Exception:  # noqa: BLE001 - never let a preload take the fork server, and every job, down
        pass

# What was imported lives as long as every forked job: out of the collector's sight, a job's full collections (the
# Trainer runs one after training) walk only what the job made, and walking no longer writes to the pages a fork
# shares with the server (Python's advice for fork servers: `gc.freeze` before forking).
import gc  # noqa: E402

gc.collect()
gc.freeze()
