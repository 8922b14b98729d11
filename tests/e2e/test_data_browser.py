"""The Data tab in a real Chromium against the real studio: upload a CSV, check the guess, preview, save.

The CSV uses a semicolon delimiter and an 'answer' column, so the tab is only right if the
builder's guess (instruction format, question -> instruction, answer -> output) reaches the widgets.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.drop import drop_files

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"  # same folder as conftest's

pytestmark = pytest.mark.e2e


def test_uploaded_csv_is_guessed_previewed_and_saved(page, studio_server, tmp_path):
    url, home = studio_server
    csv = tmp_path / "capitals.csv"
    csv.write_text("question;answer;notes\nCapital of France?;Paris;easy\nCapital of Peru?;Lima;easy\n"
                   "Capital of Chad?;;missing\nCapital of Laos?;Vientiane;hard\nCapital of Chile?;Santiago;easy\n",
                   encoding="utf-8")
    page.goto(url)
    page.wait_for_selector("#studio-start")
    # The page's load events have filled the guide (as a person sees the page ready) before anything is typed.
    page.wait_for_function("() => (document.querySelector('#studio-guide-dataset input') || {}).value",
                           timeout=120_000)
    page.get_by_role("tab", name="Data").click()
    page.get_by_text("Cleaning and split").click()
    box = page.locator("#field-split-validation input").first
    box.fill("1")
    box.press("Enter")
    page.wait_for_function("() => document.querySelector('#field-split-validation input').value === '1'")
    drop_files(page, "#studio-data-file", [csv])

    page.wait_for_function("() => document.querySelector('#studio-data-format input').value === 'instruction'",
                           timeout=60_000)
    assert page.locator("#studio-data-map-0 input").input_value() == "question"
    assert page.locator("#studio-data-map-1 input").input_value() == "answer"
    page.locator("#studio-data-facts").get_by_text("';'").wait_for()
    page.wait_for_function("() => document.querySelector('#studio-data-table').textContent.includes('Vientiane')")
    # The first records, rendered with the chat template; the answers are the highlighted (loss) part.
    preview = page.locator("#studio-data-preview")
    preview.get_by_text("Capital of France?", exact=False).first.wait_for(timeout=120_000)
    assert "Paris" in preview.inner_text()
    page.locator("#studio-data-preview-note").get_by_text("1 of the first rows").wait_for()

    # Set before the file arrives (4 rows: a 10% validation share would be empty); still 1 once the page has settled.
    page.wait_for_function("() => document.querySelector('#field-split-validation input').value === '1'")
    page.locator("#studio-data-name input, #studio-data-name textarea").first.fill("capitals")
    page.locator("#studio-data-save").click()
    message = page.locator("#studio-data-message")
    page.wait_for_function("() => document.querySelector('#studio-data-message').textContent.match(/imported|⚠/)",
                           timeout=60_000)
    assert "4 imported, 1 skipped (see list)" in message.inner_text()
    page.wait_for_function("() => document.querySelector('#studio-data-problems').textContent.includes('is empty')")
    page.wait_for_function("() => document.querySelector('#studio-data-list').textContent.includes('capitals')")
    assert (home / "datasets" / "capitals" / "v1" / "card.json").exists()
    # Saving picks the new dataset: its token-length histogram and column stats appear.
    page.wait_for_function("() => document.querySelector('#studio-data-stats').textContent.includes('examples')",
                           timeout=60_000)
    assert "Train once" in page.locator("#studio-data-stats").inner_text()  # no finished run: no epoch estimate
    page.wait_for_function("() => document.querySelector('#studio-data-columns').textContent.includes('instruction')")
    page.get_by_text("Browse records").click()
    page.wait_for_function("() => ((document.querySelector('#studio-browse-rows') || {}).textContent || '')"
                           ".includes('Capital of')", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "09-data.png"), full_page=True)

    page.get_by_role("tab", name="Train").click()  # the guided path offers the saved dataset at once
    page.locator("#studio-guide-dataset input").click()
    page.get_by_role("option", name="capitals").first.wait_for()


def test_a_custom_template_is_saved_and_a_mix_is_built(page, studio_server, tmp_path):
    url, home = studio_server
    src = tmp_path / "faq.jsonl"
    src.write_text("".join(f'{{"instruction": "q{i}", "output": "a{i}"}}\n' for i in range(12)))
    page.goto(url)
    page.wait_for_selector("#studio-start")
    page.get_by_role("tab", name="Data").click()
    drop_files(page, "#studio-data-file", [src])
    page.wait_for_function("() => document.querySelector('#studio-data-format input').value === 'instruction'",
                           timeout=60_000)

    page.get_by_text("Custom template (Jinja)").click()
    page.locator("#studio-tpl-name input, #studio-tpl-name textarea").first.fill("qa")
    page.locator("#studio-tpl-save").click()
    page.locator("#studio-tpl-message").get_by_text("saved").wait_for(timeout=30_000)
    assert page.locator("#studio-data-template input").input_value() == "qa"
    assert (home / "templates" / "qa.json").exists()

    page.locator("#studio-data-name input, #studio-data-name textarea").first.fill("faq")
    page.locator("#studio-data-save").click()
    page.wait_for_function("() => document.querySelector('#studio-data-message').textContent.includes('imported')",
                           timeout=60_000)
    page.get_by_text("Mix datasets").click()
    page.locator("#studio-mix-sources input, #studio-mix-sources textarea").first.fill("faq=8")
    page.locator("#studio-mix-name input, #studio-mix-name textarea").first.fill("faq-mix")
    page.locator("#studio-mix-build").click()
    page.wait_for_function("() => document.querySelector('#studio-mix-message').textContent.includes('imported')",
                           timeout=60_000)
    assert "8 imported" in page.locator("#studio-mix-message").inner_text()
    page.screenshot(path=str(ARTIFACTS / "10-data-template-mix.png"), full_page=True)


def test_a_bad_file_is_named_beside_the_file_box_in_view(page, studio_server, tmp_path):
    """At 1440x900 the sentence about a file that cannot be read shows in the viewport, next to the file box."""
    url, _ = studio_server
    bad = tmp_path / "empty.csv"
    bad.write_text("question;answer\n", encoding="utf-8")  # a header and no rows
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(url)
    page.wait_for_selector("#studio-start")
    page.get_by_role("tab", name="Data").click()
    drop_files(page, "#studio-data-file", [bad])
    facts = page.locator("#studio-data-facts")
    page.wait_for_function("() => (document.querySelector('#studio-data-facts').textContent || '').includes('empty.csv')",
                           timeout=60_000)
    box = facts.bounding_box()
    assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= 900, box
    assert page.locator("#studio-data-message").inner_text().strip() == ""


def test_an_arena_duel_without_a_prompt_says_why_in_view(page, studio_server):
    """An error far down a long tab is also said as a toast, which stays in the viewport wherever the page is."""
    url, _ = studio_server
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(url)
    page.wait_for_selector("#studio-start")
    page.get_by_role("tab", name="Preferences", exact=True).click()
    page.get_by_role("tab", name="Arena", exact=True).click()
    page.locator("#studio-arena-go").click()
    toast = page.locator("[data-testid=toast-body]").filter(has_text="The arena prompt is empty")
    toast.wait_for(timeout=60_000)
    box = toast.bounding_box()
    assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= 900, box
    assert "The arena prompt is empty" in page.locator("#studio-arena-reveal").inner_text()
