"""Typed settings: dataclass fields with help text and range checks, parsed strictly from dicts.

Every settings dataclass in the studio (a recipe section, a method's options) declares its fields
with `setting(...)`, which stores the help text, the allowed choices and the numeric bounds in
the field's metadata. `parse_settings` turns a plain dict (from YAML or the UI) into an instance,
refusing unknown keys, wrong types and out-of-range values with a `StudioError` that names the
dotted field path. The UI renders labels and tooltips from the same metadata.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from studio.errors import StudioError


def setting(default: Any = dataclasses.MISSING, *, help: str, choices: tuple | None = None,
            min: float | None = None, max: float | None = None, gt: float | None = None,
            default_factory: Any = dataclasses.MISSING, advanced: bool = False) -> Any:
    """A dataclass field carrying help text and validation bounds in its metadata."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "gt": gt, "advanced": advanced}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check `value` against the annotation `tp`, with the few lossless coercions YAML needs."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except StudioError as exc:
                errors.append(exc)
        raise errors[0]
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise StudioError(f"'{path}' must be a list, got {value!r}.", field=path,
                              key="setting.not_list", name=path, value=value)
        return [_coerce(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise StudioError(f"'{path}' must be a mapping of settings, got {value!r}.", field=path,
                              key="setting.not_mapping", name=path, value=value)
        return parse_settings(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            return value.lower() in ("true", "yes")
        raise StudioError(f"'{path}' must be true or false, got {value!r}.", field=path,
                          key="setting.not_bool", name=path, value=value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise StudioError(f"'{path}' must be a whole number, got {value!r}.", field=path,
                              key="setting.not_int", name=path, value=value)
        if isinstance(value, int):
            return value  # as is: through float, 99999999999999999999999 would come back as another number
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass  # maybe "1e3"
        try:
            as_float = float(value)
        except (ValueError, OverflowError):
            raise StudioError(f"'{path}' must be a whole number, got {value!r}.", field=path,
                              key="setting.not_int", name=path, value=value) from None
        if not as_float.is_integer():
            raise StudioError(f"'{path}' must be a whole number, got {value!r}.", field=path,
                              key="setting.not_int", name=path, value=value)
        return int(as_float)
    if tp is float:
        if isinstance(value, bool):
            raise StudioError(f"'{path}' must be a number, got {value!r}.", field=path,
                              key="setting.not_number", name=path, value=value)
        try:
            return float(value)
        except (TypeError, ValueError, OverflowError):
            raise StudioError(f"'{path}' must be a number, got {_shown(value)}.", field=path,
                              key="setting.not_number", name=path, value=_param(value)) from None
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise StudioError(f"'{path}' must be text, got {value!r}.", field=path,
                              key="setting.not_text", name=path, value=value)
        return str(value)
    raise TypeError(f"unsupported settings type {_type_name(tp)} at {path}")


def _huge(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1000


def _shown(value: Any) -> str:
    """A value as a message shows it; a whole number past ~300 digits by its size (Python refuses to print
    one past 4300 digits, and one typo should not fill the screen)."""
    if _huge(value):
        return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
    return repr(value) if isinstance(value, str) else str(value)


def _param(value: Any) -> Any:
    """`value` for an error's params: as is, unless it is too long a number to print."""
    return _shown(value) if _huge(value) else value


def check_field(f: dataclasses.Field, value: Any, path: str) -> None:
    """Apply the choices and numeric bounds stored in a field's metadata."""
    meta = f.metadata
    if value is None:
        return
    choices = meta.get("choices")
    if choices and value not in choices:
        options = ', '.join(map(str, choices))
        raise StudioError(f"'{path}' is {_shown(value)}; choose one of {options}.", field=path,
                          key="setting.not_a_choice", name=path, value=_param(value), choices=options)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        shown = _shown(value)
        if isinstance(value, float) and not math.isfinite(value):
            # NaN compares false with every bound, so without this it would pass them all.
            raise StudioError(f"'{path}' must be a finite number, got {shown}.", field=path,
                              key="setting.not_finite", name=path, value=_param(value))
        if meta.get("gt") is not None and not value > meta["gt"]:
            raise StudioError(f"'{path}' must be greater than {meta['gt']}, got {shown}.", field=path,
                              key="setting.not_greater", name=path, low=meta["gt"], value=_param(value))
        if meta.get("min") is not None and value < meta["min"]:
            raise StudioError(f"'{path}' must be at least {meta['min']}, got {shown}.", field=path,
                              key="setting.too_small", name=path, low=meta["min"], value=_param(value))
        if meta.get("max") is not None and value > meta["max"]:
            raise StudioError(f"'{path}' must be at most {meta['max']}, got {shown}.", field=path,
                              key="setting.too_large", name=path, high=meta["max"], value=_param(value))


def user_fields(cls: type) -> list[dataclasses.Field]:
    """The fields a recipe or form sets: not those the code fills (`init=False` or metadata `internal`)."""
    return [f for f in dataclasses.fields(cls) if f.init and not f.metadata.get("internal")]


def parse_settings(cls: type, data: dict | None, path: str = "", also_known: tuple[str, ...] = ()) -> Any:
    """Build `cls` from `data`, refusing unknown keys and bad values with a field-naming error. `also_known`: keys
    the caller reads itself (listed in that error, never in `data`)."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in user_fields(cls)}
    for key in data:
        if key not in fields:
            where = f"{path}.{key}" if path else key
            known = ', '.join([*fields, *(name for name in also_known if name not in fields)])
            raise StudioError(
                f"Unknown key '{where}' in the recipe; known keys here: {known}.", field=where,
                key="setting.unknown_key", name=where, known=known,
            )
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            continue
        where = f"{path}.{name}" if path else name
        value = _coerce(data[name], hints[name], where)
        check_field(f, value, where)
        kwargs[name] = value
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        where = f"{path}.{missing[0]}" if path else missing[0]
        raise StudioError(f"'{where}' is required in the recipe.", field=where,
                          key="setting.required", name=where)
    return cls(**kwargs)


def settings_to_dict(obj: Any) -> Any:
    """Plain dict/list/scalar form of a settings object, for YAML and JSON."""
    if dataclasses.is_dataclass(obj):
        return {f.name: settings_to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [settings_to_dict(v) for v in obj]
    return obj


def field_help(cls: type) -> dict[str, dict]:
    """Field name -> metadata (help, choices, bounds, default): what the UI needs to draw a widget."""
    out = {}
    for f in user_fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        out[f.name] = {**f.metadata, "default": default}
    return out
