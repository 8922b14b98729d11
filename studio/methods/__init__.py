"""Fine-tuning methods: how a model's weights are allowed to change.

Each method is one module in this package that subclasses `Method` (or `PeftMethod`) and
registers itself with `@METHODS.register("name")`. Importing this package imports every module
in it, so a new method needs no other edit: the recipe parser, the UI's picker and the
registry-driven tests all see it.
"""
import importlib
import pkgutil

from studio.methods.base import METHODS, Method, PeftMethod

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name != "base" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["METHODS", "Method", "PeftMethod"]
