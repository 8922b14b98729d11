"""Runs in a real Chromium: PDFs dropped into a new collection are indexed with a progress bar, a question gets an
answer citing file and page, a source opens its page, a thumbs up is saved, an unrelated question is refused, and
the retrieval check scores the approved questions."""
from __future__ import annotations

import pytest

from studio.rag.samples import write_sample_pdfs
from tests.e2e.drop import drop_files
from tests.e2e.test_studio_browser import ARTIFACTS, open_page

pytestmark = pytest.mark.e2e


READ_JS = "sel => (document.querySelector(sel) || {}).innerText || '(nothing there)'"  # reads without waiting


def text_of(page, selector: str) -> str:
    return page.locator(selector).inner_text()


def wait_text(page, selector: str, needle: str, timeout: int = 120_000) -> None:
    page.wait_for_function("([sel, needle]) => ((document.querySelector(sel) || {}).textContent || '').includes(needle)",
                           arg=[selector, needle], timeout=timeout)


def test_upload_ask_and_see_a_citation_with_its_page(page, studio_server, tmp_path):
    url, _ = studio_server
    pdfs = write_sample_pdfs(tmp_path)
    open_page(page, url)
    page.get_by_role("tab", name="RAG Chat").click()
    # The tab's refresh fills the answer model (its first call starts the RAG service: slow on a loaded machine):
    # wait for it rather than type while it may still redraw the tab.
    page.wait_for_function("() => (document.querySelector('#studio-rag-model input') || {}).value", timeout=180_000)
    page.locator("#studio-rag-collection input").fill("house-docs")
    page.locator("#studio-rag-collection input").press("Enter")
    drop_files(page, "#studio-rag-files", pdfs[:2])
    assert page.locator("#studio-rag-collection input").input_value() == "house-docs"
    page.locator("#studio-rag-index").click()
    try:
        page.wait_for_selector("#studio-rag-job[data-status=completed]", timeout=180_000)
    except Exception:
        print("RAG progress:", page.evaluate(READ_JS, "#studio-rag-progress"), "| notice:",
              page.evaluate(READ_JS, "#studio-rag-notice"))
        raise
    wait_text(page, "#studio-rag-job", "pages/s")
    wait_text(page, "#studio-rag-library", "brewmatic-300-manual.pdf")
    assert "16 of 16 pages" in text_of(page, "#studio-rag-job")

    # The default style with the embedded 135M model is the grounded one: the manual's own sentence, cited.
    ask(page, "How much water does the Brewmatic 300 tank hold?")
    wait_text(page, "#studio-rag-notice", "Cites: [1] brewmatic-300-manual.pdf p. 1")
    assert "1.8 litres" in text_of(page, "#studio-rag-chat")
    assert "brewmatic-300-manual.pdf" in text_of(page, "#studio-rag-sources")
    page.locator("#studio-rag-sources .virtual-row").first.locator(".body-cell").nth(1).click()
    page.wait_for_selector("#studio-rag-page-text mark", timeout=30_000)
    assert "[1] brewmatic-300-manual.pdf, page 1" in text_of(page, "#studio-rag-page-text")
    page.screenshot(path=str(ARTIFACTS / "16-rag-chat.png"), full_page=True)

    page.locator("#studio-rag-chat button[aria-label='Like']").first.click()
    wait_text(page, "#studio-rag-feedback", "Saved.")
    assert "rag-feedback" in text_of(page, "#studio-rag-feedback")

    ask(page, "Who won the football world cup in 2010?")
    wait_text(page, "#studio-rag-chat", "do not seem to contain")
    assert "brewmatic" not in text_of(page, "#studio-rag-sources")  # a refusal lists no sources as if they backed it

    page.locator("#studio-rag-eval").get_by_text("Retrieval check").click()
    page.locator("#studio-rag-eval-run").click()
    wait_text(page, "#studio-rag-eval-table", "hybrid")
    wait_text(page, "#studio-rag-eval-notice", "1 questions")
    page.screenshot(path=str(ARTIFACTS / "17-rag-eval.png"), full_page=True)

    page.get_by_text("Español").click()
    page.get_by_role("tab", name="Chat con documentos").wait_for()
    wait_text(page, "#studio-rag-ask", "Preguntar")
    ask(page, "¿Quién ganó el mundial de fútbol de 2010?")
    wait_text(page, "#studio-rag-chat", "no parecen contener")
    wait_text(page, "#studio-rag-library", "archivo(s)")
    wait_text(page, "#studio-rag-sources", "Archivo")
    page.screenshot(path=str(ARTIFACTS / "18-rag-es.png"), full_page=False)


def ask(page, question: str) -> None:
    page.locator("#studio-rag-question textarea").fill(question)
    page.locator("#studio-rag-ask").click()
