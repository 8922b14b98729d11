"""The Train tab's method picker in a real Chromium: the verdict follows the chosen method and the
"Compare methods" table lists every registered method for the tiny random Llama."""
from __future__ import annotations

import pytest

from studio.methods import METHODS
from tests.e2e.test_studio_browser import ARTIFACTS, choose, fill, open_page

pytestmark = pytest.mark.e2e

VERDICT = "#studio-method-verdict"


def verdict(page) -> str:
    return page.locator(VERDICT).inner_text().strip()


def wait_verdict(page, starts: str, other_than: str = "") -> str:
    page.wait_for_function(
        """([sel, starts, old]) => { const t = (document.querySelector(sel) || {}).innerText || '';
                                     return t.trim().startsWith(starts) && t.trim() !== old; }""",
        arg=[VERDICT, starts, other_than], timeout=60_000)
    return verdict(page)


def big_llama_config(folder):
    """An 8B Llama's config alone: the picker plans from the config, no weights needed."""
    from transformers import LlamaConfig

    LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                num_key_value_heads=8, vocab_size=128256).save_pretrained(folder)
    return folder


def test_the_verdict_follows_the_method_and_the_table_lists_every_method(page, studio_server, tiny_llama_dir,
                                                                         tmp_path):
    url, _ = studio_server
    open_page(page, url)
    fill(page, "studio-model", tiny_llama_dir, commit="Enter")
    fill(page, "field-data-max_length", 64)
    lines = [wait_verdict(page, "LoRA:")]
    for name in ("ia3", "full"):
        title = METHODS.get(name).title
        choose(page, "studio-method", title)
        lines.append(wait_verdict(page, f"{title}:", other_than=lines[-1]))
    assert len(set(lines)) == 3, lines
    assert all("trainable" in line and "GB" in line and ("fits" in line or "does not fit" in line) for line in lines)

    # A batch size change redraws the verdict of the selected method.
    fill(page, "field-train-batch_size", 64)
    wait_verdict(page, "Full fine-tuning:", other_than=lines[-1])

    page.locator("#studio-compare").get_by_text("Compare methods").click()
    page.locator("#studio-estimate").click()
    titles = [m.title for _, m in METHODS.items()]
    # The table scrolls inside itself, so rows below its fold exist but are hidden: check the page's text.
    page.wait_for_function(
        """(titles) => { const t = (document.querySelector('#studio-method-table') || {}).textContent || '';
                          return t.includes('Est. peak memory (GB)') && titles.every(x => t.includes(x)); }""",
        arg=titles, timeout=120_000)

    page.locator("#studio-suggest-box").get_by_text("Suggest a method").click()
    page.locator("#studio-suggest").click()
    page.locator("#studio-suggestion").get_by_text("LoRA").first.wait_for(timeout=60_000)
    page.locator("#studio-use-method").click()
    wait_verdict(page, "LoRA:")
    page.locator(VERDICT).scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "11-method-picker.png"), full_page=True)

    # A model too big for this machine: the verdict's fix is one click away and makes the plan fit.
    fill(page, "studio-model", big_llama_config(tmp_path / "llama-8b"), commit="Enter")
    page.wait_for_function("(sel) => ((document.querySelector(sel) || {}).innerText || '').includes('does not fit')",
                           arg=VERDICT, timeout=120_000)
    fix = page.locator("#studio-fix")
    fix.get_by_text("QLoRA").wait_for(timeout=60_000)
    assert fix.locator("input").first.is_checked()
    page.screenshot(path=str(ARTIFACTS / "11-method-picker-fix.png"), full_page=True)
    page.locator("#studio-apply-fix").click()
    line = wait_verdict(page, "QLoRA:")
    assert page.locator("#studio-method input").first.input_value() == "QLoRA"
    assert "does not fit" not in line and "fits" in line, line
    assert not page.locator("#studio-fix").is_visible()


def test_in_spanish_a_classifier_gets_its_own_table_and_a_stage_aware_suggestion(page, studio_server):
    """MiniLM (a BERT) for classification: feature extraction trains only the 2-label head (384 x 2 + 2 weights),
    prompt tuning is greyed out with its reason, and everything reads in Spanish."""
    url, _ = studio_server
    open_page(page, url)
    page.locator("#studio-lang").get_by_text("Español").click()
    choose(page, "studio-stage", "Clasificación de textos")
    fill(page, "studio-model", "all-minilm-l6-v2", commit="Enter")
    choose(page, "studio-method", "Extracción de características")
    line = wait_verdict(page, "Extracción de características:")
    assert "770 entrenables" in line and "libres" in line, line

    page.locator("#studio-compare").get_by_text("Comparar métodos").click()
    page.locator("#studio-estimate").click()
    page.wait_for_function(
        """() => { const t = (document.querySelector('#studio-method-table') || {}).textContent || '';
                   return t.includes('Prompt tuning (ajuste de prompt)') && t.includes('770'); }""", timeout=120_000)
    page.locator("#studio-suggest-box").get_by_text("Sugerir un método").click()
    page.locator("#studio-suggest").click()
    page.locator("#studio-suggestion").get_by_text("LoRA es la opción por defecto").wait_for(timeout=60_000)
    page.locator(VERDICT).scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "12-method-picker-classify-es.png"), full_page=True)
