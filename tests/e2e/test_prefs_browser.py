"""Runs in a real Chromium: two annotators rank a task set's items with the keyboard only (answer numbers, '=' for a
tie, Enter to submit), every ranking is stored at once, and the export holds the pairs their consensus gives; a
third ranks by dragging the answers in the drag list (and its buttons and keys), which writes the ranking text."""
from __future__ import annotations

import json

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

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


def test_an_annotator_ranks_by_dragging_and_the_text_and_store_follow(page, studio_server):
    url, home = studio_server
    store = PrefStore(Workspace.open(home))
    store.create_task_set("drag-answers", items=ITEMS[:1], overlap=1)
    open_page(page, url)
    page.get_by_role("tab", name="Preferences").click()
    page.get_by_role("tab", name="Rank").click()
    # The page's own refresh picks a task set first; choosing before it lands would be undone by it.
    page.wait_for_function("() => !!(document.querySelector('#studio-prefs-taskset input') || {}).value")
    page.locator("#studio-prefs-taskset input").first.click()
    page.get_by_role("option", name="drag-answers", exact=True).click()
    page.wait_for_function("() => (document.querySelector('#studio-prefs-taskset input') || {}).value "
                           "=== 'drag-answers'")
    name = page.locator("#studio-prefs-annotator input, #studio-prefs-annotator textarea").first
    name.type("cy")
    page.locator("#studio-prefs-start").click()
    try:
        wait_text(page, "#studio-prefs-prompt", "Question 1", timeout=20_000)
    except PlaywrightTimeout:
        # Seen once under a loaded CI machine: the first Start showed nothing. Say what the page said, try once more.
        print("Rank notice after the first Start:", page.locator("#studio-prefs-notice").inner_text())
        page.locator("#studio-prefs-start").click()
        wait_text(page, "#studio-prefs-prompt", "Question 1", timeout=60_000)
    shown = [page.locator(f"#studio-prefs-answer-{n}").inner_text() for n in (1, 2, 3)]
    slot = {kind: next(n for n, text in enumerate(shown, start=1) if kind in text) for kind in ("Good", "Fair", "Bad")}
    row = {kind: page.locator(f"#studio-prefs-dnd-{n}") for kind, n in slot.items()}
    ranked = page.locator("#studio-prefs-dnd ol")
    box = "#studio-prefs-ranking textarea, #studio-prefs-ranking input"

    def expect(text: str) -> None:
        page.wait_for_function("([sel, v]) => (document.querySelector(sel) || {}).value === v", arg=[box, text])

    row["Bad"].wait_for()
    row["Bad"].drag_to(ranked)                                          # into the empty ranking
    expect(f"{slot['Bad']}")
    row["Good"].drag_to(row["Bad"], target_position={"x": 40, "y": 2})  # the upper edge: before Bad
    expect(f"{slot['Good']} > {slot['Bad']}")
    height = row["Good"].bounding_box()["height"]
    row["Fair"].drag_to(row["Good"], target_position={"x": 40, "y": height / 2})  # the middle: tied with Good
    expect(f"{slot['Good']} = {slot['Fair']} > {slot['Bad']}")
    assert page.locator("#studio-prefs-dnd ul li").count() == 0  # nothing left unranked
    page.screenshot(path=str(ARTIFACTS / "19-prefs-drag.png"), full_page=True)
    row["Fair"].locator("button").click()                               # '= above' off: Fair gets its own place
    expect(f"{slot['Good']} > {slot['Fair']} > {slot['Bad']}")
    row["Fair"].locator("button").click()                               # and on again
    expect(f"{slot['Good']} = {slot['Fair']} > {slot['Bad']}")
    # the number keys still work and redraw the list: Backspace takes Bad back out, then it is keyed again
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("Backspace")
    expect(f"{slot['Good']} = {slot['Fair']}")
    page.wait_for_function("(n) => !!document.querySelector('#studio-prefs-dnd ul #studio-prefs-dnd-' + n)",
                           arg=slot["Bad"])
    page.keyboard.press(str(slot["Bad"]))
    expect(f"{slot['Good']} = {slot['Fair']} > {slot['Bad']}")
    row["Bad"].focus()                                                  # Alt+Up / Alt+Down move a focused row
    page.keyboard.press("Alt+ArrowUp")
    expect(f"{slot['Bad']} > {slot['Good']} = {slot['Fair']}")
    page.keyboard.press("Alt+ArrowDown")
    expect(f"{slot['Good']} = {slot['Fair']} > {slot['Bad']}")
    page.keyboard.press("Enter")
    tied = " = ".join(sorted([str(slot["Good"]), str(slot["Fair"])]))
    wait_text(page, "#studio-prefs-notice", f"Saved: {tied} > {slot['Bad']}")
    [item] = store.rankings("drag-answers")
    # candidates are stored Good (0), Bad (1), Fair (2): Good and Fair tied above Bad
    assert [r["ranking"] for r in item["rankings"]] == [[[0, 2], [1]]]
