"""User-facing errors.

`StudioError` is the one exception a person may cause (a bad recipe value, a missing file, an
unknown model). Its message is one sentence: what is wrong, which field, how to fix it. The UI
shows it as a message and the CLI prints it and exits 1; anything else is a bug and goes to the
log with its stack trace.
"""
from __future__ import annotations


class StudioError(Exception):
    """An error the user can fix. `field` names the recipe/UI field at fault, when there is one."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message
