"""Saved prompt templates: one JSON file per custom template under `<workspace>/templates/`.

A template is checked (Jinja syntax, no include/import/extends) before it is written, and written
atomically through a temp file of its own writer, so a bad edit never replaces a good saved template and two
saves of one name at once leave one of them whole (the last to finish). Rendering and tokenizing are
`studio.data.templates`' job; which template a dataset was built with is recorded by the dataset store.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

from studio.data.templates import BUILTIN_TEMPLATES, PromptTemplate, custom_template
from studio.errors import StudioError

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def _dir(ws: Any) -> Path:
    return Path(ws.home) / "templates"


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise StudioError(f"Template name '{name}' is not allowed; use 1-64 lowercase letters, digits, '-' or '_', "
                          "starting with a letter or digit.", field="data.template_name",
                          key="data.template_store.bad_name", name=name)
    if name in BUILTIN_TEMPLATES:
        raise StudioError(f"'{name}' is a built-in template; save yours under another name.",
                          field="data.template_name", key="data.template_store.builtin_name", name=name)
    return name


def save_template(ws: Any, name: str, prompt: str, response: str = "{{ output }}",
                  description: str = "") -> PromptTemplate:
    """Check and store a custom template (replacing one of the same name); returns it."""
    template = custom_template(prompt, response, _check_name(name), description)
    folder = _dir(ws)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"name": name, "description": description, "prompt": template.prompt,
               "response": template.response, "saved_at": _dt.datetime.now(_dt.timezone.utc).isoformat()}
    tmp = folder / f".{name}.json.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, folder / f"{name}.json")
    finally:
        tmp.unlink(missing_ok=True)
    return template


def load_template(ws: Any, name: str) -> PromptTemplate:
    """A saved template by name; a missing one is a StudioError listing the saved names."""
    path = _dir(ws) / f"{_check_name(name)}.json"
    if not path.is_file():
        names = ", ".join(t.name for t in list_templates(ws)) or "none saved yet"
        raise StudioError(f"No saved template '{name}' (saved: {names}).", field="data.template",
                          key="data.template_store.unknown", name=name)
    data = json.loads(path.read_text(encoding="utf-8"))
    return PromptTemplate(data["name"], data.get("description", ""), prompt=data["prompt"],
                          response=data.get("response") or "{{ output }}")


def list_templates(ws: Any) -> list[PromptTemplate]:
    """Saved templates, sorted by name (files that are not valid templates are skipped)."""
    templates = []
    for path in sorted(_dir(ws).glob("*.json")):
        try:
            templates.append(load_template(ws, path.stem))
        except (StudioError, ValueError, KeyError):
            continue
    return templates


def get_template(name: str, ws: Any = None) -> PromptTemplate:
    """A built-in template, or one saved in the workspace `ws`."""
    if name in BUILTIN_TEMPLATES:
        return BUILTIN_TEMPLATES[name]
    saved = list_templates(ws) if ws is not None else []
    for template in saved:
        if template.name == name:
            return template
    names = ", ".join([*BUILTIN_TEMPLATES, *(t.name for t in saved)])
    raise StudioError(f"Unknown template '{name}'; choose one of {names}.", field="data.template",
                      key="data.templates.unknown", name=name, choices=names)
