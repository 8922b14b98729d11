"""Training stages: what the model learns (SFT, and later CPT, seq2seq, classification, ...).

Each stage is one module in this package that subclasses `Stage` and registers itself with
`@STAGES.register("name")`; importing this package imports every module in it.
"""
import importlib
import pkgutil

from studio.stages.base import STAGES, Stage, TrainContext

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in ("base", "progress") and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["STAGES", "Stage", "TrainContext"]
