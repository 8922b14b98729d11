"""Generation settings per candidate slot of a ranking task set: which model writes candidate j, and how.

A task set has K candidate slots per prompt. By default slot j samples at the j-th of a few
temperatures in turn with seed j (`candidate_settings`), and is written by the j-th picked model in
turn. A slot may override any of that: its own model, temperature, top-p, top-k, max new tokens and
seed, given as a dict (the Create form) or as text "temperature=0.7,top_p=0.9,max_new_tokens=128,seed=3"
(`studio prefs generate --slot`). `slot_plan` turns the picked models, the defaults and the overrides
into one model spec and one `GenerationSettings` per slot, which the service's generation job uses
as they are. Resolving the models and generating are `sources`' and `service`'s jobs.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any, Sequence

from studio.errors import StudioError
from studio.generation import GenerationSettings
from studio.settings import parse_settings

# What a slot may set besides its model; the other GenerationSettings stay the defaults.
SLOT_SETTINGS = ("temperature", "top_p", "top_k", "max_new_tokens", "seed")
SLOT_KEYS = ("model", *SLOT_SETTINGS)


def default_settings(k: int) -> list[GenerationSettings]:
    """One setting per candidate: sampling at temperature 0.7 and 1.0 in turn, candidate j seeded with j, so
    the K answers differ and the same prompts give the same candidates again."""
    return candidate_settings(k)


def candidate_settings(k: int, temperatures: str | Sequence[float] = (0.7, 1.0), max_new_tokens: int = 128
                       ) -> list[GenerationSettings]:
    """K sampling settings: candidate j takes the j-th temperature in turn and seed j, so candidates sharing a
    temperature still differ. `temperatures` may be a comma list such as "0.7,1.0" (each from 0 to 2)."""
    values: list[float] = []
    try:
        values = [float(t) for t in (temperatures.split(",") if isinstance(temperatures, str) else temperatures)
                  if str(t).strip()]
    except ValueError:
        pass
    if not values or any(not 0 <= v <= 2 for v in values):
        text = temperatures if isinstance(temperatures, str) else ",".join(map(str, temperatures))
        raise StudioError(f"Temperatures '{text}' must be a comma list of numbers from 0 to 2, such as 0.7,1.0.",
                          field="prefs.temperatures", key="prefs.service.bad_temperatures", value=text)
    return [GenerationSettings(do_sample=True, temperature=values[j % len(values)], seed=j,
                               max_new_tokens=max_new_tokens) for j in range(k)]


def parse_slot(text: str, slot: int) -> dict[str, str]:
    """{"temperature": "0.7", ...} from "temperature=0.7,seed=3" (slot is 1-based, for the message); "" is {}."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not value.strip():
            raise StudioError(f"Slot {slot}: '{part.strip()}' is not key=value; write e.g. "
                              "temperature=0.7,top_p=0.9,max_new_tokens=128,seed=3.", field="prefs.slots",
                              key="prefs.slots.not_key_value", slot=slot, part=part.strip())
        out[key] = value.strip()
    return out


def _slot_overrides(spec: dict | str | None, slot: int) -> dict[str, Any]:
    values = parse_slot(spec, slot) if isinstance(spec, str) else {k: v for k, v in (spec or {}).items()
                                                                      if v is not None and v != ""}
    unknown = sorted(set(values) - set(SLOT_KEYS))
    if unknown:
        raise StudioError(f"Slot {slot}: '{unknown[0]}' is not a candidate setting; use {', '.join(SLOT_KEYS)}.",
                          field="prefs.slots", key="prefs.slots.unknown_key", slot=slot, name=unknown[0],
                          known=", ".join(SLOT_KEYS))
    return values


def slot_plan(k: int, models: Sequence[str], slots: Sequence[dict | str | None] = (),
              base: Sequence[GenerationSettings] | None = None) -> tuple[list[str], list[GenerationSettings]]:
    """(model spec per slot, settings per slot) for K candidates. Slot j starts from base[j] (K settings,
    default: `default_settings(k)`) and models[j % len(models)], then takes what slots[j] sets: a dict or
    "key=value,..." text with keys from SLOT_KEYS (sampling stays on; temperature 0 means greedy). Checks
    every value against GenerationSettings' bounds, naming the slot."""
    if len(slots) > k:
        raise StudioError(f"{len(slots)} slot settings were given for K={k} candidates; give at most {k}.",
                          field="prefs.slots", key="prefs.slots.too_many", count=len(slots), k=k)
    base = list(base or default_settings(k))
    picked = [m.strip() for m in models if m and m.strip()]
    plan_models: list[str] = []
    plan_settings: list[GenerationSettings] = []
    for j in range(k):
        values = _slot_overrides(slots[j] if j < len(slots) else None, j + 1)
        model = str(values.pop("model", "") or "").strip() or (picked[j % len(picked)] if picked else "")
        if not model:
            raise StudioError("No model was chosen; pick one or more models or runs to write the candidates.",
                              field="prefs.models", key="prefs.service.no_models")
        plan_models.append(model)
        plan_settings.append(parse_settings(GenerationSettings, {**asdict(base[j]), **values}, f"slot {j + 1}"))
    return plan_models, plan_settings
