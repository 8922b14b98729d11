"""Runs in a real Chromium: a finished run opens in the Train tab with every metric and its sample answers, and
two runs compare (overlaid curves, the setting that differs, final/best scores, CSV download)."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from studio.jobs.runfiles import append_metrics
from studio.workspace import Workspace
from tests.e2e.test_studio_browser import ARTIFACTS, open_page
from tests.engine.test_training import run_in_process, tiny_recipe

pytestmark = pytest.mark.e2e

TRACES_JS = """(sel) => { const gd = document.querySelector(sel + ' .js-plotly-plot');
                          return gd && gd.data ? gd.data.length : 0; }"""


@pytest.fixture(scope="module")
def two_finished_runs(studio_server, tiny_llama_dir):
    """Two tiny LoRA runs that differ in learning rate, trained in this process into the server's workspace (their
    events written to metrics.jsonl as the job supervisor does)."""
    _, home = studio_server
    ws = Workspace.open(home)
    ids = []
    for lr in (5e-3, 1e-3):
        run_id, events, result = run_in_process(ws, tiny_recipe(tiny_llama_dir, "lora", lr=lr, max_steps=4,
                                                                 eval_samples=3))
        append_metrics(result["result_dir"].rsplit("/", 1)[0], [e for e in events if e["type"] == "progress"])
        ws.update_run(run_id, status="completed", result_dir=result["result_dir"], step=4, total_steps=4)
        ids.append(run_id)
    return ids


def test_a_finished_run_opens_with_its_metrics_and_two_runs_compare(page, studio_server, two_finished_runs):
    url, _ = studio_server
    open_page(page, url)
    page.get_by_role("tab", name="Runs").click()
    first, second = two_finished_runs
    page.locator("#studio-runs").get_by_text(first, exact=True).first.click()
    expect(page.locator("#studio-run-resume")).to_be_disabled()  # a completed run has nothing to resume
    page.locator("#studio-run-open").click()
    # Opening a run switches to the Train tab, its settings in the form.
    expect(page.get_by_role("tab", name="Train")).to_have_attribute("aria-selected", "true", timeout=30_000)
    expect(page.locator("#studio-run-name input, #studio-run-name textarea").first).to_have_value(
        re.compile(r"\S"), timeout=30_000)
    expect(page.locator("#field-train-lr input").first).to_have_value(re.compile(r"^0?\.005$|^5e-03?$"))
    page.wait_for_function(TRACES_JS, arg="#studio-metrics", timeout=60_000)
    page.wait_for_function("() => (document.querySelector('#studio-metrics').textContent || '').includes('ROUGE')")
    samples = page.locator("#studio-samples")
    samples.get_by_text("Model's answer", exact=True).wait_for()
    page.wait_for_function("() => ((document.querySelector('#studio-samples') || {}).textContent || '')"
                           ".split('trained by Hugging Face').length - 1 >= 3")  # the three sampled prompts
    page.locator("#studio-metrics").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "13-run-metrics.png"), full_page=True)

    page.get_by_role("tab", name="Runs").click()
    page.locator("#studio-compare-box").get_by_text("Compare runs").click()
    for run_id in (first, second):
        page.locator("#studio-compare-runs input").click()
        page.get_by_role("option").filter(has_text=run_id).click()
    page.locator("#studio-compare-go").click()
    page.wait_for_function(f"(sel) => ({TRACES_JS})(sel) === 2", arg="#studio-compare-chart", timeout=60_000)
    settings = page.locator("#studio-compare-settings")
    page.wait_for_function("() => ((document.querySelector('#studio-compare-settings') || {}).textContent || '')"
                           ".includes('train.lr')")
    text = settings.inner_text()
    assert "0.005" in text and "0.001" in text and "train.batch_size" not in text  # only what differs
    page.wait_for_function("() => ((document.querySelector('#studio-compare-scores') || {}).textContent || '')"
                           ".includes('ROUGE-L')")
    # Any logged metric can be overlaid; the chart keeps plotly's PNG download button.
    page.locator("#studio-compare-metric input").click()
    page.get_by_role("option", name="ROUGE-L", exact=True).click()
    page.wait_for_function("() => (document.querySelector('#studio-compare-chart').textContent || '')"
                           ".includes('ROUGE-L')")
    page.locator("#studio-compare-chart .js-plotly-plot").hover()
    with page.expect_download() as png:
        page.locator("#studio-compare-chart .modebar-btn[data-title*='PNG']").click()
    assert png.value.suggested_filename.endswith(".png") and png.value.path().read_bytes()[:4] == b"\x89PNG"
    with page.expect_download() as download:
        page.locator("#studio-compare-csv").click()
    text = download.value.path().read_text(encoding="utf-8")
    assert text.startswith("setting,") and "train.lr" in text and "eval_rougeL" in text
    page.locator("#studio-compare-box").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "14-compare-runs.png"), full_page=True)


def test_evaluate_scores_base_runs_and_prompting_and_shows_answer_differences(page, studio_server, tiny_llama_dir,
                                                                                two_finished_runs):
    url, _ = studio_server
    open_page(page, url)
    page.get_by_role("tab", name="Evaluate").click()
    model = page.locator("#studio-eval-model input")
    model.fill(str(tiny_llama_dir))
    model.press("Enter")
    for run_id in two_finished_runs:
        page.locator("#studio-eval-runs input").click()
        page.get_by_role("option").filter(has_text=run_id).click()
    page.locator("#studio-eval-split").get_by_text("validation", exact=True).click()
    limit = page.locator("#studio-eval-limit input")
    limit.fill("3")
    limit.press("Tab")
    longest = page.locator("#studio-eval-max-new input")
    longest.fill("24")
    longest.press("Tab")
    page.locator("#studio-eval-shots").get_by_text("1", exact=True).click()  # 0 and 1 examples in the prompt
    page.locator("#studio-eval-go").click()
    page.wait_for_function("() => ((document.querySelector('#studio-eval-message') || {}).textContent || '')"
                           ".includes('Scored the first 3 of')", timeout=240_000)
    table = page.locator("#studio-eval-table").inner_text()
    assert "with 1 examples in the prompt" in table and "ROUGE-L" in table and "perplexity" in table
    assert page.locator("#studio-eval-forget").inner_text().count("%") == 2  # each run beside its base
    answers = page.locator("#studio-eval-examples")
    assert answers.locator(".studio-eval-example").count() == 3
    assert answers.locator(".studio-diff-added, .studio-diff-removed").count() > 0
    page.locator("#studio-eval-disagree").get_by_text("Only the examples").click()
    page.locator("#studio-eval-examples").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "15-evaluate.png"), full_page=True)
