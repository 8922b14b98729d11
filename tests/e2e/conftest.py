"""Browser fixtures: the real studio served by `python -m studio.cli ui` on a temp home, and a Chromium page.

One server, started for the first browser test, serves all of them. It runs as a subprocess with its own STUDIO_HOME (so the test sees exactly what a user
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

from tests.processes import descendants

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
# One server log per test process (pytest-xdist workers each serve their own studio).
SERVER_LOG = ARTIFACTS / f"e2e-server{'-' + os.environ['PYTEST_XDIST_WORKER'] if 'PYTEST_XDIST_WORKER' in os.environ else ''}.log"
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
            raise RuntimeError(f"the studio exited with code {proc.returncode}; see {SERVER_LOG}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the studio did not answer at {url} within {timeout:.0f} s")


@pytest.fixture(scope="session")
def studio_server(tmp_path_factory, converted_smollm2):
    """(base url, STUDIO_HOME) of a studio served from a fresh home, shared by every browser test of the session
    (as one studio is shared by the people who use it: a test finds what others left, so each names and finds its
    own runs, datasets and exports); stopped at the end. The home shares the session's converted SmolLM2 (the Train
    tab's guide reads its shape on every page load)."""
    from studio.models.embedded import SMOLLM2_DIRNAME

    ARTIFACTS.mkdir(exist_ok=True)
    home = tmp_path_factory.mktemp("e2e-home")
    (home / "models").mkdir(parents=True)
    (home / "models" / SMOLLM2_DIRNAME).symlink_to(converted_smollm2, target_is_directory=True)
    port = _free_port()
    env = {**os.environ, "STUDIO_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false"}
    log = open(SERVER_LOG, "w", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "ui", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_up(url, proc, timeout=180)
        yield url, home
    finally:
        workers = descendants(proc.pid)
        proc.terminate()  # SIGTERM: the studio stops its jobs (training checkpoints, up to a minute) and exits
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    from studio.jobs.worker import pid_alive

    deadline = time.monotonic() + 30
    while any(pid_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [pid for pid in workers if pid_alive(pid)]
    assert proc.returncode == 0, f"the studio ended with code {proc.returncode} on SIGTERM; see the server log"
    assert not left, f"worker processes {left} outlived the studio"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed browser test carries the end of the studio's log (CI keeps no artifacts, only this output)."""
    report = yield
    if report.failed and SERVER_LOG.exists():
        lines = SERVER_LOG.read_text(encoding="utf-8", errors="replace").splitlines()
        report.sections.append(("studio server log (last 80 lines)", "\n".join(lines[-80:])))
    console = getattr(item.funcargs.get("page"), "studio_console", None)
    if report.failed and console:
        report.sections.append(("browser console (last 40 messages)", "\n".join(console[-40:])))
    return report


@pytest.fixture(scope="module")
def browser():
    """Chromium for one module. Not the session: Playwright's sync API keeps its event loop running in this
    thread while it is open, and a later module's `asyncio.run` would then refuse to start."""
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
    page.studio_console = []  # shown with a failure (see pytest_runtest_makereport)
    page.on("console", lambda message: page.studio_console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: page.studio_console.append(f"page error: {error}"))
    try:
        yield page
    finally:
        context.close()
