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

A value a person typed can be any length, and a sentence that echoes a 10,000-character name
whole is unreadable (and a cheap way to flood logs). So `StudioError` shortens long params with
`shorten` (first and last part, and the length) and puts the short form wherever the message
quoted the long one: call sites pass values as they are and none is missed.
"""
from __future__ import annotations

import os
from typing import Any

SHORT = 80  # longest user value a message echoes whole
# Params that list the studio's own names (choices, known keys) or quote a library's error text: long
# ones are still useful read whole, so they get more room before they are cut.
LISTING = frozenset({"available", "candidates", "choices", "columns", "fields", "files", "ids", "known", "labels",
                     "modes", "names", "needs", "samples", "sheets", "sizes", "stages", "strays", "student_labels",
                     "suggested", "supported", "teacher_labels",
                     "detail", "error", "problem", "reason", "report", "why"})
LISTING_LIMIT = 400
# A path is read from its end (the file name) and is often long for good reasons, so paths get room too.
PATHS = frozenset({"path", "file", "folder", "out", "source", "gguf", "heldout", "run_dir", "saved"})
PATH_LIMIT = 300
MESSAGE_LIMIT = 1200  # a last guard for long text that reached the message without being a param


def shorten(text: Any, limit: int = SHORT) -> str:
    """`text` as is when it has at most `limit` characters, else its start and end (a path keeps its file
    name) around '…', with the full length: 'aaaa…report.pdf (10000 characters)'."""
    text = str(text)
    if len(text) <= limit:
        return text
    tail = (limit - 1) // 2
    return f"{text[:limit - 1 - tail]}…{text[-tail:]} ({len(text)} characters)"


def _shortened(message: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Shorten long str params, and the same text wherever the message quotes it (plain or as repr)."""
    short_params = dict(params)
    swaps = []
    for name, value in params.items():
        if not isinstance(value, str):
            continue
        limit = (LISTING_LIMIT if name in LISTING else
                 PATH_LIMIT if name in PATHS or os.sep in value or "/" in value else SHORT)
        if len(value) > limit:
            short_params[name] = shorten(value, limit)
            swaps.append((value, short_params[name]))
    for long, short in sorted(swaps, key=lambda swap: -len(swap[0])):
        message = message.replace(repr(long), repr(short)).replace(long, short)
    return shorten(message, MESSAGE_LIMIT), short_params


class StudioError(Exception):
    """An error the user can fix. `field` names the recipe/UI field at fault, when there is one."""

    def __init__(self, message: str, field: str | None = None, *, key: str | None = None, **params: Any):
        message, params = _shortened(message, params)
        super().__init__(message)
        self.message = message
        self.field = shorten(field, LISTING_LIMIT) if field is not None and len(field) > LISTING_LIMIT else field
        self.key = key
        self.params = params

    def __str__(self) -> str:
        return self.message
