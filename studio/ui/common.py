"""What every tab shares: the app's texts and language state, plus a few rendering helpers.

`UiShared` is built once per app by `studio.ui.app.build_app` and handed to each tab builder:
the `Texts`, the `Localizer` that the language switch walks, the per-user language `gr.State`,
the Blocks (for page-load events), the extra language hooks a tab registers for text it
draws itself (a progress bar, a method summary) and the parts only admins see (`admin_part`:
Gradio cannot reliably hide a tab's button, so a tab's contents are swapped for a one-line
notice). Nothing here calls the engine.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import gradio as gr

from studio.errors import StudioError
from studio.ui.i18n import DEFAULT_LANG, Localizer, Texts


@dataclass
class UiShared:
    texts: Texts
    localizer: Localizer
    lang: gr.State
    demo: gr.Blocks
    default_lang: str = DEFAULT_LANG
    language_hooks: list[tuple[Callable, list, list]] = field(default_factory=list)
    admin_parts: list[tuple[Any, Any]] = field(default_factory=list)

    def on_language(self, fn: Callable, inputs: list, outputs: list) -> None:
        """Also run `fn(lang, *inputs) -> outputs` when the user switches language."""
        self.language_hooks.append((fn, inputs, outputs))

    @contextmanager
    def admin_part(self) -> Iterator[None]:
        """Components built inside are shown to admins only; others see a notice in their place. The app's
        page load decides per account (`studio.ui.app`); the server refuses the handlers anyway."""
        notice = self.localizer.value(gr.Markdown(self.texts.t(self.default_lang, "access.admin_only"), visible=False,
                                                  elem_classes="studio-admin-only"), "access.admin_only")
        with gr.Column() as body:
            yield
        self.admin_parts.append((body, notice))


def error_text(texts: Texts, lang: str, exc: StudioError) -> str:
    """A StudioError as the one-sentence message shown under a button (markdown)."""
    return texts.t(lang, "msg.error", message=texts.error(lang, exc))


def error_notice(texts: Texts, lang: str, exc: StudioError) -> str:
    """A StudioError said twice: as a toast, in view wherever the page is scrolled, and as the sentence returned for
    the message line beside the control that caused it."""
    gr.Warning(texts.error(lang, exc))
    return error_text(texts, lang, exc)


def log_text(tail: Any) -> str:
    if tail is None:
        return ""
    if isinstance(tail, (list, tuple)):
        return "\n".join(str(line).rstrip("\n") for line in tail)
    return str(tail)


def pick_default(choices: list[str], preferred: str) -> str | None:
    """`preferred` if offered, else the first choice containing it, else the first choice."""
    if preferred in choices:
        return preferred
    for choice in choices:
        if preferred in choice:
            return choice
    return choices[0] if choices else None
