"""Fine-tuning methods: how a model's weights are allowed to change.

Each method is one module that subclasses `Method` and registers itself with
`@METHODS.register("name")`. Importing this package imports every method module, so the
recipe parser, the UI's picker and the registry-driven tests see them all.
"""
from studio.methods.base import METHODS, Method  # noqa: F401
from studio.methods import full, lora  # noqa: F401  (registration)
