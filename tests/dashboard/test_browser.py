"""The real dashboard in a real browser: ``streamlit run`` on a small seeded plant, driven by headless
Chromium through Playwright. Every registered page renders without an exception or error message (a full-page
screenshot of each lands in ``test-artifacts/screenshots/``), and a verdict given on the triage page
is stored in the database.

Chromium is Debian's (``apt-get install chromium``; ``.ci/run`` installs it). Without it the tests are
skipped locally but fail in CI (``CI`` set), so a broken browser set-up can never pass silently.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from dashboard.registry import PAGES
from tests.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
# Headless on a closed network: without these Chromium waits on connections that never open.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_S = 60  # bounded waits, not timing assertions
PAGE_LOAD_MS = 90_000
ANNOTATOR = "Browser Test Pilot"
SKELETONS = "[data-testid='stSkeleton'], [data-testid='stSkeletonElement'], [data-testid='stAppSkeleton']"


@dataclass(frozen=True)
class Dashboard:
    url: str
    data_dir: Path
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _require_chromium() -> Path:
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser tests: {CHROMIUM} is missing (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.read().decode().strip() == "ok"
    except OSError:
        return False


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory) -> Iterator[Dashboard]:
    """A seeded DATA_DIR (2 machines, Mahalanobis detector, every clip scored) and ``streamlit run`` on it."""
    _require_chromium()
    folder = tmp_path_factory.mktemp("browser") / "data"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {"DATA_DIR": str(folder), "DEMO_PLANT": "0", "PYTHONPATH": str(ROOT)}
    seed = (
        "from core.workflows.bootstrap import seed_demo_plant\n"
        "seed_demo_plant(machines=2, normal=12, abnormal=4, detector='mahalanobis')"
    )
    subprocess.run([sys.executable, "-c", seed], cwd=ROOT, env=env, check=True, timeout=300)

    log = folder.parent / "streamlit.log"
    with streamlit_server(env, log) as (url, _pid):
        yield Dashboard(url=url, data_dir=folder, log=log)


@contextmanager
def streamlit_server(env: dict[str, str], log: Path) -> Iterator[tuple[str, int]]:
    """``streamlit run streamlit_app.py`` on a free loopback port with ``env``, its output in ``log``: ``(its URL,
    its process id)`` once it is healthy; stopped on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # No file watcher: edits made to the pages while the test runs must not rerun them under its feet.
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
               "--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
               "--server.fileWatcherType", "none"]  # fmt: skip
    with log.open("wb") as sink:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not _healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not become healthy on {url}:\n{log.read_text(errors='replace')[-4000:]}")
            time.sleep(0.5)
        yield url, server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)


@contextmanager
def launched_chromium() -> Iterator:
    """The system Chromium, headless, through Playwright; closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@contextmanager
def fresh_page(browser) -> Iterator:
    """A page in a fresh browser context (no cookies, so a fresh Streamlit session); closed on exit."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(PAGE_LOAD_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="module")
def browser(dashboard):
    with launched_chromium() as chromium:
        yield chromium


def _wait_for_app_idle(page) -> None:
    """Wait until the session is connected and its script has finished running (bounded)."""
    page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']")
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']")


def _page_url(dashboard: Dashboard, url_path: str) -> str:
    """Streamlit serves the default (first) page at the root only: ``/<its url_path>`` says "Page not found"."""
    return f"{dashboard.url}/" if url_path == PAGES[0].url_path else f"{dashboard.url}/{url_path}"


def _open(page, dashboard: Dashboard, url_path: str) -> None:
    page.goto(_page_url(dashboard, url_path), wait_until="domcontentloaded")
    page.locator("[data-testid='stMain'] h1").first.wait_for(state="visible")
    _wait_for_app_idle(page)
    # Lazily loaded elements (charts, tables, inputs) show a grey skeleton until their code has arrived.
    page.wait_for_function(f"() => !document.querySelector({SKELETONS!r})")
    page.wait_for_load_state("networkidle")


def _give_name(page, name: str) -> None:
    """Give ``name`` in the sidebar's **Your name** (sign-in off: saving needs one); waits for the rerun."""
    page.get_by_label("Your name", exact=True).fill(name)
    page.get_by_label("Your name", exact=True).press("Enter")
    page.get_by_text(f"Working as {name}").wait_for(state="visible")
    _wait_for_app_idle(page)


def _full_page_screenshot(page, path: Path) -> None:
    """Streamlit scrolls inside its own containers, so grow the viewport to the content before the shot."""
    height = page.evaluate(
        """() => Math.max(document.documentElement.scrollHeight, ...Array.from(
               document.querySelectorAll("[data-testid='stMain'], [data-testid='stSidebarContent']"),
               (el) => el.scrollHeight + el.getBoundingClientRect().top))"""
    )
    viewport = page.viewport_size
    page.set_viewport_size({"width": viewport["width"], "height": min(max(int(height), viewport["height"]), 10_000)})
    page.wait_for_function(f"() => !document.querySelector({SKELETONS!r})")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(viewport)


def _assert_no_exception(page, dashboard: Dashboard, what: str) -> None:
    """No raw exception box, and no error message either: ``streamlit_app.py`` turns a page's
    unexpected exception into an ``st.error``, which must not pass silently."""
    boxes = page.locator("[data-testid='stException'], [data-testid='stAlertContentError'], [role='dialog']")
    if boxes.count():
        shown = "\n---\n".join(boxes.all_inner_texts())
        pytest.fail(f"{what} shows an exception, an error or a modal:\n{shown}\n\nserver log:\n{dashboard.log_tail()}")


@pytest.mark.parametrize("spec", PAGES, ids=[p.url_path for p in PAGES])
def test_every_page_renders_without_exception(page, dashboard, spec):
    _open(page, dashboard, spec.url_path)
    assert page.locator("[data-testid='stMain'] h1").first.inner_text().strip()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    _full_page_screenshot(page, SCREENSHOTS / f"{spec.url_path}.png")
    _assert_no_exception(page, dashboard, f"page {spec.title!r} (/{spec.url_path})")


def _abnormal_verdicts(data_dir: Path, annotator: str) -> int:
    with sqlite3.connect(data_dir / "anomaly.db", timeout=30) as conn:
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM annotations WHERE verdict = 'abnormal' AND annotator = ?", (annotator,)
        ).fetchone()
    return count


def test_triage_confirm_abnormal_is_stored(page, dashboard):
    assert _abnormal_verdicts(dashboard.data_dir, ANNOTATOR) == 0
    _open(page, dashboard, "triage")
    _give_name(page, ANNOTATOR)  # the sidebar's field, on every page

    confirm = page.get_by_role("button", name="Confirm abnormal")
    confirm.wait_for(state="visible")
    _wait_for_app_idle(page)
    _assert_no_exception(page, dashboard, "triage page after giving a name")
    assert page.get_by_text(f"Working as {ANNOTATOR}").is_visible()
    confirm.click()

    page.get_by_text("Last saved: #").first.wait_for(state="visible")  # said under the buttons after the verdict
    _wait_for_app_idle(page)
    _assert_no_exception(page, dashboard, "triage page after a verdict")
    assert page.get_by_text(": abnormal.").first.is_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    _full_page_screenshot(page, SCREENSHOTS / "triage-after-verdict.png")  # the queue itself, for a human look
    assert _abnormal_verdicts(dashboard.data_dir, ANNOTATOR) == 1
