"""Progress words of a background job: English text that also carries its locale key and values.

A `Phase` is a `str` (the English words that logs, `studio jobs` and old callers see) with a `key` and `params`,
so a page shows it in its own language (`phase.<key>` in the locale files). It survives pickling (export workers
send it through a queue) and is stored in a jobs row's `phase_key` / `phase_params` columns beside the words.
"""
from __future__ import annotations

import json
from typing import Any


class Phase(str):
    key: str | None
    params: dict[str, Any]

    def __new__(cls, english: str, key: str | None = None, **params: Any) -> "Phase":
        phase = super().__new__(cls, english)
        phase.key, phase.params = key, params
        return phase

    def __reduce__(self):
        return _rebuild, (str(self), self.key, self.params)


def _rebuild(english: str, key: str | None, params: dict) -> Phase:
    return Phase(english, key, **params)


def phase_columns(phase: str | None) -> dict[str, Any]:
    """A jobs row's phase columns: the words and, for a Phase, its key and values as JSON."""
    key = getattr(phase, "key", None)
    return {"phase": None if phase is None else str(phase), "phase_key": key,
            "phase_params": json.dumps(phase.params, default=str) if key else None}


def phase_text(event: dict) -> Phase | None:
    """'evaluating 5/16', 'generating 0/4' or None (training steps again) from a worker's phase event."""
    if not event.get("phase"):
        return None
    name = str(event["phase"])
    if event.get("done") is None:
        return Phase(name, name)
    total = event.get("total") or "?"
    return Phase(f"{name} {event['done']}/{total}", name, done=event["done"], total=total)
