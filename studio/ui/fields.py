"""Widgets drawn from settings dataclasses, and their values gathered back into recipe sections.

Each settings field (see `studio.settings.setting`) becomes one widget chosen from its type and
metadata: a checkbox for booleans, a dropdown for choices, a slider for small bounded ranges, a
number otherwise, a textbox for text. Labels and tooltips come from `Texts`, so a field added to a
dataclass appears in the UI with no edit here. `collect_sections` turns the widgets' values back
into the nested dict that `studio.config.parse_recipe` validates; validation is not done here.
"""
from __future__ import annotations

import types
import typing
from contextlib import nullcontext as _nothing
from dataclasses import dataclass
from typing import Any, Iterable

import gradio as gr

from studio.settings import field_help
from studio.ui.i18n import Localizer


@dataclass
class FieldWidget:
    """One widget bound to `section.name` of the recipe (section '' for top-level keys)."""

    section: str
    name: str
    component: Any
    meta: dict


def _base_type(tp: Any) -> Any:
    """`int` for `int | None`: the widget follows the non-optional type; text for a choice of kinds such as
    `int | list[int]` ("2" or "0, 1", which the recipe parser reads)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        kinds = [a for a in typing.get_args(tp) if a is not type(None)]
        return kinds[0] if len(kinds) == 1 else str
    return tp


def _slider_range(tp: Any, meta: dict) -> tuple[float, float] | None:
    """A slider suits a float with a small closed range whose default is not a tiny number."""
    low = meta.get("min") if meta.get("min") is not None else meta.get("gt")
    high = meta.get("max")
    default = meta.get("default")
    if tp is not float or low is None or high is None or high - low > 10:
        return None
    if default not in (None, 0) and abs(default) < 0.01:
        return None
    return float(low), float(high)


def make_widget(tp: Any, meta: dict, label: str, info: str, value: Any = None, elem_id: str | None = None) -> Any:
    value = meta.get("default") if value is None else value
    common = dict(label=label, info=info, interactive=True, elem_id=elem_id)
    if tp is bool:
        return gr.Checkbox(value=bool(value), **common)
    if meta.get("choices"):
        return gr.Dropdown(choices=list(meta["choices"]), value=value, **common)
    if tp in (int, float):
        slider = _slider_range(tp, meta)
        if slider:
            low, high = slider
            return gr.Slider(minimum=low, maximum=high, step=0.01 if high - low <= 2 else 0.05, value=value,
                             **common)
        # No minimum/maximum here: gradio would refuse out-of-range values with its own wording, and
        # the recipe parser's StudioError says which field is wrong and what range it accepts.
        return gr.Number(value=value, precision=0 if tp is int else None, **common)
    if isinstance(value, (list, tuple)):
        value = ", ".join(map(str, value))
    return gr.Textbox(value="" if value is None else str(value), **common)


@dataclass
class FieldSpec:
    """A field to draw: which recipe section it fills and which locale keys label it."""

    section: str
    locale_section: str
    name: str
    tp: Any
    meta: dict


def field_specs(cls: type, section: str, *, locale_section: str | None = None, only: Iterable[str] | None = None,
                skip: Iterable[str] = ()) -> list[FieldSpec]:
    """Specs for `cls`'s fields: all of them (minus `skip`), or `only` those, in that order."""
    metas = field_help(cls)
    hints = typing.get_type_hints(cls)
    skip = set(skip)
    names = list(only) if only is not None else [n for n in metas if n not in skip]
    return [FieldSpec(section, locale_section or section, n, _base_type(hints[n]), metas[n]) for n in names]


def draw_fields(specs: list[FieldSpec], localizer: Localizer, lang: str, per_row: int | None = None,
                values: dict | None = None) -> list[FieldWidget]:
    """Draw one widget per spec (in rows of `per_row` when given), registered for relabelling."""
    texts = localizer.texts
    out = []
    rows = [specs[i:i + per_row] for i in range(0, len(specs), per_row)] if per_row else [specs]
    for chunk in rows:
        with gr.Row() if per_row else _nothing():
            for spec in chunk:
                widget = make_widget(spec.tp, spec.meta, texts.field_label(lang, spec.locale_section, spec.name),
                                     texts.field_help(lang, spec.locale_section, spec.name, spec.meta),
                                     (values or {}).get(spec.name),
                                     elem_id=f"field-{spec.locale_section}-{spec.name}")
                localizer.field(widget, spec.locale_section, spec.name, spec.meta)
                out.append(FieldWidget(spec.section, spec.name, widget, spec.meta))
    return out


def build_fields(cls: type, section: str, localizer: Localizer, lang: str, *, locale_section: str | None = None,
                 only: Iterable[str] | None = None, skip: Iterable[str] = (), per_row: int | None = None,
                 values: dict | None = None) -> list[FieldWidget]:
    """Widgets for one settings dataclass (see `field_specs` and `draw_fields`)."""
    specs = field_specs(cls, section, locale_section=locale_section, only=only, skip=skip)
    return draw_fields(specs, localizer, lang, per_row, values)


def collect_sections(fields: Iterable[FieldWidget], values: dict) -> dict:
    """{section: {name: value}} from a gradio inputs-dict, skipping empty text so defaults apply."""
    out: dict[str, Any] = {}
    for f in fields:
        value = values[f.component]
        if isinstance(value, str) and not value.strip() and f.meta.get("default") in (None, ""):
            continue
        target = out.setdefault(f.section, {}) if f.section else out
        target[f.name] = value
    return out
