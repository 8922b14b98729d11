"""User-facing errors.

`StudioError` is the one exception a person may cause (a bad recipe value, a missing file, an
unknown model). Its message is one sentence: what is wrong, which field, how to fix it. The UI
shows it as a message and the CLI prints it and exits 1; anything else is a bug and goes to the
log with its stack trace.

The message is English. An error people meet in the browser also carries a `key` and the values
its sentence needs (`params`): the UI looks up `error.<key>` in its language (the Spanish ones in
`studio/locales/es/errors-*.json`) and fills it with `params`, so a Spanish page reads Spanish;
without a key, or without that translation, it shows the English message.

    raise StudioError(f"'{name}' must be at least {low}; got {value}.", field=name,
                      key="setting.too_small", name=name, low=low, value=value)
"""
from __future__ import annotations

from typing import Any


class StudioError(Exception):
    """An error the user can fix. `field` names the recipe/UI field at fault, when there is one."""

    def __init__(self, message: str, field: str | None = None, *, key: str | None = None, **params: Any):
        super().__init__(message)
        self.message = message
        self.field = field
        self.key = key
        self.params = params

    def __str__(self) -> str:
        return self.message
