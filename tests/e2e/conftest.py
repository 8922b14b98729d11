"""Browser fixtures: the real studio served by `python -m studio.cli ui` on a temp home, and a Chromium page.

The server runs as a subprocess with its own STUDIO_HOME (so the test sees exactly what a user
would: real engine, real worker processes, real SQLite), and its output goes to
test-artifacts/e2e-server.log. Chromium is Debian's (/usr/bin/chromium); without it the browser
tests skip with a message saying how to install it. Screenshots go to test-artifacts/.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("STUDIO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the studio exited with code {proc.returncode}; see test-artifacts/e2e-server.log")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the studio did not answer at {url} within {timeout:.0f} s")


@pytest.fixture(scope="module")
def studio_server(tmp_path_factory):
    """(base url, STUDIO_HOME) of a studio served from a fresh home; stopped after the module."""
    ARTIFACTS.mkdir(exist_ok=True)
    home = tmp_path_factory.mktemp("e2e-home")
    port = _free_port()
    env = {**os.environ, "STUDIO_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false"}
    log = open(ARTIFACTS / "e2e-server.log", "w", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "ui", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_up(url, proc, timeout=180)
        yield url, home
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        if os.environ.get("STUDIO_REQUIRE_BROWSER"):  # CI installs Chromium: a missing one is a failure there
            pytest.fail(f"Chromium not found at {CHROMIUM} although STUDIO_REQUIRE_BROWSER is set")
        pytest.skip(f"Chromium not found at {CHROMIUM}; install it with `apt-get install -y chromium` "
                    "or point STUDIO_CHROMIUM at a Chromium binary")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        context.close()


def pytest_collection_modifyitems(session, config, items):
    """Run the export browser test last of the whole session: on this 2-core machine the browser tests that came
    after it failed (the RAG test's upload never reached its server; once the method picker's Spanish table), while
    each passes alone and all passed before it existed. Cause not found yet; see issue 8's note."""
    last = [item for item in items if item.nodeid.startswith("tests/e2e/test_export_browser.py")]
    items[:] = [item for item in items if item not in last] + last
