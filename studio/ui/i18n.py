"""Words on screen: locale files, field labels and tooltips, and redrawing a page in another language.

`Texts` holds every locale in `studio/locales/*.json` plus `studio/locales/<lang>/*.json` (flat dotted keys;
`error.*` sentences for `StudioError` keys live in the latter) and answers
`texts.t(lang, key, **values)`, falling back to English and then to the key itself, so a missing
translation shows up as English rather than as an error. Recipe fields get their label from
`field.<section>.<name>.label` and their tooltip from the settings dataclass metadata in English
or from `field.<section>.<name>.help` in other languages. `Localizer` remembers, for one built
app, which component shows which text, so the language switch can return one `gr.update` per
component. The words themselves live in the JSON files, never here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gradio as gr

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
LANGUAGES = (("English", "en"), ("Español", "es"))
DEFAULT_LANG = "en"


def _humanize(name: str) -> str:
    return name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Texts:
    """All locales, read once; `t` never raises for a missing key."""

    locales: dict[str, dict[str, str]]

    @classmethod
    def load(cls, directory: Path = LOCALES_DIR) -> "Texts":
        locales = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.json"))}
        for lang, table in locales.items():  # <lang>/*.json: more keys of that language (e.g. error sentences)
            for part in sorted((directory / lang).glob("*.json")):
                table.update(json.loads(part.read_text(encoding="utf-8")))
        return cls(locales)

    def error(self, lang: str, exc: Any) -> str:
        """A StudioError's sentence in `lang`: its `error.<key>` translation filled with its params, else its
        English message."""
        return self.sentence(lang, getattr(exc, "key", None), getattr(exc, "params", {}), exc.message)

    def sentence(self, lang: str, key: str | None, params: dict, english: str, prefix: str = "error.") -> str:
        """`<prefix><key>` in `lang` filled with `params`; the `english` sentence when there is no translation.
        A param `x` that comes with `x_key` (and `x_params`) is an error's sentence of its own, e.g. the reason a
        training process gave, and reads in `lang` too."""
        params = dict(params)
        for name in [name for name in params if params.get(f"{name}_key")]:
            params[name] = self.sentence(lang, params[f"{name}_key"], params.get(f"{name}_params") or {},
                                         str(params[name]), prefix)
        template = self.locales.get(lang, {}).get(f"{prefix}{key}") if key and lang != DEFAULT_LANG else None
        if template is None:
            return english
        try:
            return template.format(**params)
        except (KeyError, IndexError, ValueError):
            return english

    def phase(self, lang: str, phase: Any, key: str | None = None, params: dict | None = None) -> str:
        """A job's progress words in `lang`: a `studio.phase.Phase` (or a row's `phase_key` / `phase_params`)
        through `phase.<key>`, the two words every job shares ('starting', 'done'), else the words as recorded."""
        if phase in ("starting", "done"):
            return self.t(lang, f"jobs.phase.{phase}")
        key = key or getattr(phase, "key", None)
        params = params if params is not None else getattr(phase, "params", {})
        return self.sentence(lang, key, params or {}, str(phase or ""), prefix="phase.")

    def get(self, lang: str, key: str) -> str | None:
        for code in (lang, DEFAULT_LANG):
            value = self.locales.get(code, {}).get(key)
            if value is not None:
                return value
        return None

    def t(self, lang: str, key: str, **values: Any) -> str:
        text = self.get(lang, key)
        if text is None:
            return key
        return text.format(**values) if values else text

    def field_label(self, lang: str, section: str, name: str) -> str:
        return self.get(lang, f"field.{section}.{name}.label") or _humanize(name)

    def field_help(self, lang: str, section: str, name: str, meta: dict) -> str:
        """Tooltip of a recipe field: the dataclass help in English, the locale's translation otherwise."""
        if lang != DEFAULT_LANG:
            translated = self.locales.get(lang, {}).get(f"field.{section}.{name}.help")
            if translated:
                return translated
        return meta.get("help") or self.get(lang, f"field.{section}.{name}.help") or ""

    def method_title(self, lang: str, method: Any) -> str:
        return self.locales.get(lang, {}).get(f"method.{method.name}.title") or method.title or method.name

    def stage_title(self, lang: str, stage: Any) -> str:
        return self.locales.get(lang, {}).get(f"stage.{stage.name}.title") or stage.title or stage.name

    def method_summary(self, lang: str, method: Any) -> str:
        return self.locales.get(lang, {}).get(f"method.{method.name}.summary") or method.summary


@dataclass
class Localizer:
    """Per-app table of (component, lang -> gr.update) used by the language switch."""

    texts: Texts
    entries: list[tuple[Any, Callable[[str], Any]]] = field(default_factory=list)

    def add(self, component: Any, redraw: Callable[[str], Any]) -> Any:
        self.entries.append((component, redraw))
        return component

    def label(self, component: Any, key: str, info_key: str | None = None, placeholder_key: str | None = None):
        """Register a component whose label (and optional info/placeholder) come from locale keys."""
        def redraw(lang: str):
            extra = {}
            if info_key:
                extra["info"] = self.texts.t(lang, info_key)
            if placeholder_key:
                extra["placeholder"] = self.texts.t(lang, placeholder_key)
            return gr.update(label=self.texts.t(lang, key), **extra)

        return self.add(component, redraw)

    def value(self, component: Any, key: str, fmt: Callable[[str], str] | None = None):
        """Register a component whose shown value is text (Button, Markdown): `fmt` wraps the text."""
        def redraw(lang: str):
            text = self.texts.t(lang, key)
            return gr.update(value=fmt(text) if fmt else text)

        return self.add(component, redraw)

    def field(self, component: Any, section: str, name: str, meta: dict):
        """Register a recipe-field widget: label from the locale, tooltip from the metadata."""
        return self.add(component, lambda lang: gr.update(
            label=self.texts.field_label(lang, section, name),
            info=self.texts.field_help(lang, section, name, meta)))

    @property
    def components(self) -> list[Any]:
        return [component for component, _ in self.entries]

    def redraw(self, lang: str) -> list[Any]:
        return [redraw(lang) for _, redraw in self.entries]
