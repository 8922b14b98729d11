"""What a person clicks, in a real Chromium against the real studio: train, watch, queue, cancel, reopen,
browse runs, chat, switch language. Screenshots of every tab land in test-artifacts/.

The model is the tiny random Llama from tests/conftest.py, given to the model picker as a local
path, so a training step takes milliseconds and the test spends its time where a user would:
waiting for the worker to start and watching the page redraw.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"  # same folder as conftest's

pytestmark = pytest.mark.e2e

PROGRESS = "#studio-progress .studio-progress"
FIRST_STEP_TIMEOUT_MS = 240_000
CHART_TRACES_JS = """() => {
  const gd = document.querySelector('#studio-loss .js-plotly-plot');
  return gd && gd.data ? gd.data.length : 0;
}"""
CHART_POINTS_JS = """() => {
  const gd = document.querySelector('#studio-loss .js-plotly-plot');
  return gd && gd.data && gd.data[0] && gd.data[0].x ? gd.data[0].x.length : 0;
}"""


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def progress(page) -> tuple[str, int]:
    bar = page.locator(PROGRESS)
    return bar.get_attribute("data-status"), int(bar.get_attribute("data-step"))


def wait_progress(page, condition: str, timeout: int = 60_000) -> None:
    """Wait until the progress bar's dataset satisfies a JS condition on `s` (status) and `n` (step)."""
    page.wait_for_function(
        f"""() => {{ const el = document.querySelector('{PROGRESS}');
                   if (!el || !el.dataset.status) return false;
                   const s = el.dataset.status, n = +el.dataset.step; return {condition}; }}""",
        timeout=timeout)


def fill(page, elem_id: str, value, commit: str = "Tab") -> None:
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(str(value))
    box.press(commit)


def choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").first.click()
    page.get_by_role("option", name=option, exact=True).click()


def fill_recipe(page, model_dir, name: str) -> None:
    """A long LoRA run on the sample data: enough steps to watch it move before cancelling."""
    fill(page, "studio-model", model_dir, commit="Enter")
    fill(page, "field-train-max_steps", 5000)
    fill(page, "field-train-batch_size", 2)
    fill(page, "field-train-eval_every", 5)
    fill(page, "field-data-max_length", 128)
    choose(page, "field-train-precision", "fp32")  # same numbers on every CPU
    fill(page, "studio-run-name", name)


def wait_until_still(page, selector: str, quiet_s: float = 2.0, timeout_s: float = 120.0) -> None:
    """Wait until an element's text has not changed for `quiet_s` seconds (a stream has ended)."""
    deadline, last, since = time.monotonic() + timeout_s, None, time.monotonic()
    while time.monotonic() < deadline:
        text = page.locator(selector).inner_text()
        if text != last:
            last, since = text, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.25)
    raise AssertionError(f"{selector} kept changing for {timeout_s:.0f} s")


# A page reloaded while a run trains on the same 2 cores (and, under pytest-xdist, another module's browser and
# model beside it) took over 30 s to draw its form.
PAGE_LOAD_MS = 120_000


def open_page(page, url: str) -> None:
    """The studio with the Train tab's full form (All settings) shown, its pickers filled."""
    page.goto(url, timeout=PAGE_LOAD_MS)
    page.wait_for_selector("#studio-start", timeout=PAGE_LOAD_MS)
    page.wait_for_function("() => !!document.querySelector('#studio-progress .studio-progress')",
                           timeout=PAGE_LOAD_MS)
    # The guide fills the form on the page's load event: wait for it rather than racing it.
    page.wait_for_function("() => (document.querySelector('#studio-guide-dataset input') || {}).value",
                           timeout=PAGE_LOAD_MS)
    page.locator("#studio-train-mode label").nth(1).click()  # All settings
    page.wait_for_function("() => (document.querySelector('#studio-dataset input') || {}).value")


def test_train_watch_queue_cancel_and_reopen(page, studio_server, tiny_llama_dir):
    url, _ = studio_server
    open_page(page, url)
    assert "sample" in page.locator("#studio-dataset input").input_value()
    shot(page, "01-train")

    fill_recipe(page, tiny_llama_dir, "first")
    page.click("#studio-start")
    wait_progress(page, "(s === 'running' && n > 0) || s === 'failed'", timeout=FIRST_STEP_TIMEOUT_MS)
    state, step = progress(page)
    assert state == "running", page.locator(PROGRESS).inner_text()
    points = page.evaluate(CHART_POINTS_JS)
    wait_progress(page, f"n > {step}")
    page.wait_for_function(f"() => ({CHART_POINTS_JS})() > {points}", timeout=60_000)
    assert re.search(r"\d+ / 5000", page.locator(PROGRESS).inner_text())
    page.wait_for_function(f"() => ({CHART_TRACES_JS})() >= 2", timeout=90_000)  # eval loss joins at step 5
    shot(page, "02-train-running")
    # The jobs line above the tabs names it too (an admin on loopback sees every job).
    jobs_line = "() => /Running now \\(\\d+\\):.*first/.test(document.querySelector('#studio-jobs').innerText)"
    page.wait_for_function(jobs_line, timeout=30_000)

    # Reopening the page picks the running run up again.
    open_page(page, url)
    wait_progress(page, "s === 'running' && n > 0")
    assert "first" in page.locator(PROGRESS).inner_text()

    # A second run waits behind the first; cancelling it while queued is immediate.
    fill_recipe(page, tiny_llama_dir, "second")
    page.click("#studio-start")
    page.wait_for_selector("#studio-train-message :text('Queued: 1 run ahead')")
    wait_progress(page, "s === 'queued'")
    shot(page, "03-train-queued")
    page.click("#studio-cancel")
    wait_progress(page, "s === 'cancelled'")

    # Back on the first run: cancel stops it after the current step, with a checkpoint.
    open_page(page, url)
    wait_progress(page, "s === 'running'")
    page.click("#studio-cancel")
    page.wait_for_selector("#studio-train-message :text('Stopping after the current step')")
    wait_progress(page, "s === 'cancelled'", timeout=120_000)
    assert "Cancelled" in page.locator(PROGRESS).inner_text()
    page.wait_for_function(f"() => !({jobs_line})()", timeout=30_000)  # and the jobs line lets it go
    shot(page, "04-train-cancelled")

    page.get_by_role("tab", name="Runs").click()
    table = page.locator("#studio-runs")

    def cell(text: str):
        return table.get_by_text(text, exact=True).filter(visible=True).first

    cell("first").wait_for()
    assert table.get_by_text("Cancelled", exact=True).filter(visible=True).count() >= 2
    cell("first").click()
    page.wait_for_function("() => document.body.innerText.includes('max_steps: 5000')")
    shot(page, "05-runs")

    # Deleting asks first; only "Confirm delete" removes the run.
    cell("second").click()
    page.get_by_role("button", name="Delete…").click()
    page.locator("#studio-confirm-delete").wait_for()
    assert cell("second").is_visible()
    page.locator("#studio-confirm-delete").click()
    page.get_by_text("Run deleted.").wait_for()
    cell("second").wait_for(state="detached")
    assert cell("first").is_visible()


def test_a_bad_value_is_named_in_one_sentence_and_nothing_starts(page, studio_server):
    url, home = studio_server
    open_page(page, url)
    runs_before = sorted(p.name for p in (home / "runs").glob("*"))
    fill(page, "field-data-max_length", 8)
    page.click("#studio-start")
    page.locator("#studio-train-message").get_by_text("max_length").wait_for()
    text = page.locator("#studio-train-message").inner_text()
    assert "at least 16" in text and "Traceback" not in text
    assert sorted(p.name for p in (home / "runs").glob("*")) == runs_before


def test_uploaded_jsonl_becomes_the_selected_dataset(page, studio_server, tmp_path):
    url, _ = studio_server
    source = Path(__file__).resolve().parents[2] / "assets" / "sample-format-tutor.jsonl"
    upload = tmp_path / "my-notes.jsonl"
    upload.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    open_page(page, url)
    page.locator("#studio-upload input[type=file], input[type=file]").first.set_input_files(str(upload))
    page.wait_for_function("() => document.querySelector('#studio-dataset input').value.includes('my-notes')",
                           timeout=60_000)


def test_playground_streams_an_answer_and_language_switch_relabels(page, studio_server, tiny_llama_dir):
    url, _ = studio_server
    open_page(page, url)
    page.get_by_role("tab", name="Playground").click()
    base = page.locator("#studio-play-a input")
    base.fill(str(tiny_llama_dir))
    base.press("Enter")
    page.locator("#studio-play-system textarea").fill("Answer in one sentence.")
    message = page.get_by_label("Message")
    message.fill("Hello, who are you?")
    message.press("Enter")
    page.locator("#studio-chat").get_by_text("Hello, who are you?").wait_for()
    # The placeholder "…" gives way to the streamed answer, which then stops growing.
    page.wait_for_function("() => !document.querySelector('#studio-chat').innerText.includes('…')",
                           timeout=120_000)
    wait_until_still(page, "#studio-chat")
    page.locator("#studio-chat-speed").get_by_text("tokens/s").wait_for()
    assert "Answer in one sentence" not in page.locator("#studio-chat").inner_text()  # a setting, not a bubble
    page.locator("#studio-play-save").click()
    page.locator("#studio-play-notice").get_by_text("Saved 1 conversation(s) into dataset 'playground'").wait_for()
    shot(page, "06-playground")

    page.locator("#studio-lang").get_by_text("Español").click()
    page.get_by_role("tab", name="Entrenar").click()
    page.get_by_role("button", name="Empezar a entrenar").wait_for()
    page.get_by_text("Tasa de aprendizaje").first.wait_for()
    shot(page, "08-train-es")


def test_finished_run_started_through_the_api_answers_beside_its_base(page, studio_server, tiny_llama_dir):
    from gradio_client import Client

    url, _ = studio_server
    client = Client(url, verbose=False)
    recipe = (f"name: api-short\nmodel: {tiny_llama_dir}\nmethod: {{name: lora, r: 4}}\n"
              "data: {dataset: sample-format-tutor, max_length: 64, validation: 0}\n"
              "train: {max_steps: 3, batch_size: 2, precision: fp32, eval_every: 100, save_every: 100}\n")
    run_id = client.predict(recipe, api_name="/train_start")
    deadline = time.monotonic() + 240
    while (status := client.predict(run_id, api_name="/run_status"))["status"] not in (
            "completed", "failed", "cancelled", "interrupted"):
        assert time.monotonic() < deadline, f"run still {status['status']} after 240 s"
        time.sleep(1)
    assert status["status"] == "completed", status.get("error")

    open_page(page, url)
    page.get_by_role("tab", name="Playground").click()
    page.locator("#studio-play-a input").click()
    page.get_by_role("option", name=re.compile("api-short")).click()
    other = page.locator("#studio-play-b input")  # a path typed in, as for any model
    other.fill(str(tiny_llama_dir))
    other.press("Enter")
    page.locator("#studio-chat-b").wait_for()
    message = page.get_by_label("Message")
    message.fill("Hi")
    message.press("Enter")
    for chat in ("#studio-chat", "#studio-chat-b"):  # each side loads its model first: minutes on a busy CPU
        page.locator(chat).get_by_text("Hi", exact=True).wait_for(timeout=120_000)
    page.wait_for_function("() => !document.querySelector('#studio-chat-b').innerText.includes('…')",
                           timeout=120_000)
    wait_until_still(page, "#studio-chat-b")
    assert page.locator("#studio-chat-c").is_hidden()  # the third slot is empty
    shot(page, "07-playground-compare")
