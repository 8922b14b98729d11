"""The browser studio (Gradio). `build_app(engine)` builds the Blocks; `launch(host, port, auth)` serves it.

One module per tab (`train_tab`, `runs_tab`, `playground_tab`), each with a `build_<tab>` that
returns a small dataclass of its components and wires thin handlers to the engine facade
(`studio.engine.Engine`). Words come from `studio/locales/*.json` through `studio.ui.i18n`.
This package is the only part of the studio that imports gradio.
"""
from studio.ui.app import build_app  # noqa: F401
from studio.ui.serve import launch  # noqa: F401
