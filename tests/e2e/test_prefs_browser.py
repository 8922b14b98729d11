"""Runs in a real Chromium: two annotators rank a task set's items with the keyboard only (answer numbers, '=' for a
tie, Enter to submit), every ranking is stored at once, and the export holds the pairs their consensus gives."""
from __future__ import annotations

import json

import pytest

from studio.prefs.store import PrefStore
from studio.workspace import Workspace
from tests.e2e.test_studio_browser import ARTIFACTS, open_page

pytestmark = pytest.mark.e2e

ITEMS = [{"prompt": f"Question {n}: how do I water tomatoes?",
          "candidates": [{"text": f"Good answer {n}: at the base, in the morning.", "model": "m1"},
                         {"text": f"Bad answer {n}: never.", "model": "m2"},
                         {"text": f"Fair answer {n}: sometimes.", "model": "m1"}]} for n in (1, 2)]


def wait_text(page, selector: str, needle: str, timeout: int = 30_000) -> None:
    page.wait_for_function("([sel, needle]) => ((document.querySelector(sel) || {}).textContent || '').includes(needle)",
                           arg=[selector, needle], timeout=timeout)


def rank_everything(page, annotator: str) -> list[str]:
    """Rank every item shown to `annotator` best -> worst by its answer texts, keys only; returns what was keyed."""
    name = page.locator("#studio-prefs-annotator input, #studio-prefs-annotator textarea").first
    name.fill("")
    name.type(annotator)
    page.locator("#studio-prefs-start").click()
    keyed = []
    for _ in ITEMS:
        wait_text(page, "#studio-prefs-prompt", "Question")
        shown = [page.locator(f"#studio-prefs-answer-{n}").inner_text() for n in (1, 2, 3)]
        slot = {kind: next(n for n, text in enumerate(shown, start=1) if kind in text) for kind in ("Good", "Fair", "Bad")}
        page.evaluate("document.activeElement && document.activeElement.blur()")
        keys = [str(slot["Good"]), "=", str(slot["Fair"]), str(slot["Bad"])] if annotator == "bo" else \
            [str(slot["Good"]), str(slot["Fair"]), str(slot["Bad"])]
        for key in keys:
            page.keyboard.press(key)
        expected = (f"{slot['Good']} = {slot['Fair']} > {slot['Bad']}" if annotator == "bo"
                    else f"{slot['Good']} > {slot['Fair']} > {slot['Bad']}")
        page.wait_for_function("(v) => (document.querySelector('#studio-prefs-ranking textarea, "
                               "#studio-prefs-ranking input') || {}).value === v", arg=expected)
        if annotator == "ana" and not keyed:
            page.screenshot(path=str(ARTIFACTS / "19-prefs-rank.png"), full_page=True)
        page.keyboard.press("Enter")
        tied = " = ".join(sorted([str(slot["Good"]), str(slot["Fair"])]))  # a tie group is saved in number order
        saved = f"{tied} > {slot['Bad']}" if annotator == "bo" else expected
        wait_text(page, "#studio-prefs-notice", f"Saved: {saved}")
        keyed.append(expected)
    wait_text(page, "#studio-prefs-prompt", "All done")
    return keyed


def test_two_annotators_rank_with_the_keyboard_and_the_export_has_their_pairs(page, studio_server):
    url, home = studio_server
    store = PrefStore(Workspace.open(home))
    store.create_task_set("garden-answers", items=ITEMS, overlap=2, guidelines="Prefer **correct** advice.")
    open_page(page, url)
    page.get_by_role("tab", name="Preferences").click()
    page.get_by_role("tab", name="Rank").click()
    page.wait_for_function("() => (document.querySelector('#studio-prefs-taskset input') || {}).value "
                           "=== 'garden-answers'")
    rank_everything(page, "ana")
    rank_everything(page, "bo")
    progress = store.progress("garden-answers")
    assert progress["complete"] == 2 and progress["rankings"] == 4

    page.get_by_role("tab", name="Results & export").click()
    page.wait_for_function("() => (document.querySelector('#studio-prefs-results-set input') || {}).value "
                           "=== 'garden-answers'")
    page.locator("#studio-prefs-results-show").click()
    wait_text(page, "#studio-prefs-summary", "2 of 2 items complete")
    page.locator("#studio-prefs-export").click()
    wait_text(page, "#studio-prefs-exported", "into dataset 'garden-answers-dpo'")
    page.screenshot(path=str(ARTIFACTS / "20-prefs-results.png"), full_page=True)
    rows = [json.loads(line) for line in
            (home / "prefs" / "exports" / "garden-answers-dpo.jsonl").read_text(encoding="utf-8").splitlines()]
    # Consensus (Borda over ana's G > F > B and bo's G = F > B): G > F > B, so all_pairs gives 3 pairs per item.
    assert len(rows) == 6
    assert all(r["chosen"].startswith(("Good", "Fair")) and not r["chosen"].startswith("Bad") for r in rows)
    assert sum(r["chosen"].startswith("Good") and r["rejected"].startswith("Fair") for r in rows) == 2
