"""Runs in a real Chromium: a finished tiny LoRA run is exported as a merged fp32 model with its report (table,
chart, samples), the files and size are shown and the folder is on disk, the zip downloads; then a GGUF Q8_0
export shows its Ollama Modelfile, a previous export's row shows its report again, and the tab reads in Spanish."""
from __future__ import annotations

import pytest

from studio.workspace import Workspace
from tests.e2e.test_studio_browser import ARTIFACTS, open_page

pytestmark = pytest.mark.e2e
END_STATES = ("completed", "failed", "cancelled", "interrupted")


def wait_text(page, selector: str, needle: str, timeout: int = 30_000) -> None:
    page.wait_for_function("([sel, needle]) => ((document.querySelector(sel) || {}).textContent || '').includes(needle)",
                           arg=[selector, needle], timeout=timeout)


@pytest.fixture
def finished_lora_run(studio_server, tiny_llama_dir, monkeypatch) -> dict:
    """A completed tiny LoRA run in the served studio's home, trained in this process."""
    from tests.engine.test_training import run_in_process, tiny_recipe

    _, home = studio_server
    monkeypatch.setenv("STUDIO_HOME", str(home))
    ws = Workspace.open(home)
    run_id, _, result = run_in_process(ws, tiny_recipe(tiny_llama_dir, "lora", max_steps=3, lr=2e-2))
    ws.update_run(run_id, status="completed", result_dir=result["result_dir"])
    return ws.get_run(run_id)


def export(page, format_label: str) -> None:
    """Pick the format, click Export and wait until the job ends; it must have completed."""
    page.locator("#studio-export-format").get_by_text(format_label, exact=True).click()
    # The bar of an earlier export loses its state here: only this export's bar can end the wait below.
    page.evaluate("() => document.querySelector('#studio-export-job')?.removeAttribute('data-status')")
    page.locator("#studio-export-start").click()
    # Queued, running, then an end state: a small export can finish between two polls, so wait for the end.
    page.wait_for_selector(", ".join(f"#studio-export-job[data-status={s}]" for s in END_STATES), timeout=600_000)
    bar = page.locator("#studio-export-job")
    assert bar.get_attribute("data-status") == "completed", bar.inner_text()


def test_export_a_finished_run_see_its_report_and_download_it(page, studio_server, finished_lora_run):
    url, home = studio_server
    run = finished_lora_run
    open_page(page, url)
    page.get_by_role("tab", name="Export").click()
    page.locator("#studio-export-refresh").click()
    page.locator("#studio-export-source input").click()
    page.get_by_role("option", name=f"{run['name']} · lora · {run['id']}").click()
    wait_text(page, "#studio-export-describe", f"Run {run['name']}")
    wait_text(page, "#studio-export-explain", "any transformers app loads")

    page.locator("#studio-export-format").get_by_text("Merged model", exact=True).click()
    page.locator("#studio-export-dtype").get_by_text("fp32", exact=True).click()
    export(page, "Merged model")
    wait_text(page, "#studio-export-table", "merged")
    folder = home / "exports" / f"{run['name']}-merged"
    assert (folder / "export.json").exists() and (folder / "report.json").exists()
    files = page.locator("#studio-export-files").inner_text()
    assert str(folder) in files and "model.safetensors" in files and " MB" in files
    assert "fp32" in page.locator("#studio-export-table").inner_text()
    assert "Explain in two sentences" in page.locator("#studio-export-samples").inner_text()
    page.screenshot(path=str(ARTIFACTS / "20-export.png"), full_page=True)

    page.locator("#studio-export-zip").click()
    page.locator("#studio-export-download").wait_for(state="visible")
    with page.expect_download() as download:
        page.locator("#studio-export-download").click()
    assert download.value.suggested_filename == f"{folder.name}.zip"
    assert (home / "exports" / "zips" / f"{folder.name}.zip").stat().st_size > 1000

    page.locator("#studio-export-format").get_by_text("GGUF", exact=True).click()
    page.locator("#studio-export-gguf-quant").wait_for(state="visible")
    assert page.locator("#studio-export-dtype").is_hidden()
    export(page, "GGUF")
    wait_text(page, "#studio-export-job", f"Exported {run['name']} as GGUF Q8_0")
    wait_text(page, "#studio-export-files", "Modelfile")
    assert (home / "exports" / f"{run['name']}-gguf-Q8_0" / "Modelfile").exists()
    wait_text(page, "#studio-export-table", "gguf Q8_0")

    page.locator("#studio-export-previous").get_by_text(str(folder), exact=True).click()
    wait_text(page, "#studio-export-files", f"Merged model of {run['name']}")

    page.locator("#studio-lang").get_by_text("Español").click()
    page.get_by_role("tab", name="Exportar").wait_for()
    wait_text(page, "#studio-export-table", "Artefacto", timeout=120_000)  # every tab redraws: slow on a busy CPU
    wait_text(page, "#studio-export-explain", "Un solo archivo para llama.cpp")
    wait_text(page, "#studio-export-previous", "Carpeta")
    page.screenshot(path=str(ARTIFACTS / "21-export-es.png"), full_page=True)
