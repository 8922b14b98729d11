"""Dropping files into a Gradio File box the way a person does, without losing the drop.

Gradio's File box keeps its file input in an action that replaces the input whenever the box re-renders (seen
1 s and 4.4 s after a page load on a quiet machine, later on a loaded one), and the change handler of a replaced
input reads the new, empty one: a drop that lands in that moment is lost without a trace. CI lost the RAG tab's
drop twice (nothing listed after 60 s, then after 180 s). So the drop is repeated when the box shows neither an
upload under way nor the file after 20 s. Once an upload is under way it is never repeated: a second drop of
the RAG files would index every file twice.

A listed file is found by its row's aria-label: the list shows the name's stem and extension in separate spans,
so the box's text never holds "name.pdf" once the upload is done (only Gradio's progress line does, while it
lasts). Waiting for that text is what made CI time out when an upload finished between two polls.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

# "listed" once the box lists the file, "uploading" while Gradio's upload progress is up, "" otherwise.
UPLOAD_STATE_JS = """([sel, name]) => {
  const box = document.querySelector(sel);
  if (!box) return '';
  if (box.querySelector(`td.filename[aria-label="${CSS.escape(name)}"]`)) return 'listed';
  return box.querySelector('.uploading') ? 'uploading' : '';
}"""


def drop_files(page, box: str, files: list[Path], timeout_ms: int = 180_000) -> None:
    """Sets `files` on the file input inside the `box` selector and waits until the box lists the last one."""
    name, began = files[-1].name, time.monotonic()
    for attempt in range(1, 4):
        page.locator(f"{box} input[type=file]").set_input_files([str(p) for p in files])
        try:
            page.wait_for_function(UPLOAD_STATE_JS, arg=[box, name], timeout=20_000)
            break
        except PlaywrightTimeout:
            warnings.warn(f"drop {attempt} into {box} started no upload within 20 s; dropping again")
    else:
        pytest.fail(f"three drops into {box} started no upload; the box held: "
                    + page.locator(box).inner_html()[:2000])
    page.wait_for_function(f"(arg) => ({UPLOAD_STATE_JS})(arg) === 'listed'", arg=[box, name], timeout=timeout_ms)
    if time.monotonic() - began > 20:
        console = getattr(page, "studio_console", [])
        warnings.warn(f"the upload into {box} took {time.monotonic() - began:.0f} s to be listed; browser console: "
                      + " | ".join(console[-10:]))
