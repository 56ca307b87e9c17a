"""Supplied text is shown as text, in a real browser: ``streamlit run`` on a small seeded plant with a machine
folder named like LaTeX (``$\\frac{a}{b}$``) and, on its clip, a verdict from "Mallory" whose note, name and
anomaly type try every trick Streamlit's Markdown offers (a page-size heading, an image from a local HTTP server,
a link, a green badge, colours, LaTeX, emphasis).

Explore opens on that clip with its verdict history.  The page must show the note as typed (``# APPROVED`` in
plain sight) and nothing else: no heading but the page title, no image or link to the server, not one request
reaching it, no KaTeX, badge or coloured text.  The Overview (the machine in a chart and the drift table) draws no
KaTeX either.  Driven by headless Chromium through Playwright, with ``test_browser.py``'s helpers; skipped
without Chromium locally, failed without it in CI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dashboard.components.auth import ROLE_SIGN_IN_OFF
from dashboard.components.text import WORD_JOINER
from tests.dashboard.test_browser import (
    ROOT,
    SCREENSHOTS,
    Dashboard,
    _assert_no_exception,
    _full_page_screenshot,
    _open,
    _require_chromium,
    launched_chromium,
)
from tests.dashboard.test_browser_auth import _server_env, _streamlit

pytestmark = [pytest.mark.slow, pytest.mark.browser]

LATEX_MACHINE = "$\\frac{a}{b}$"  # a folder name: the machine type of the clip below
MACHINE = f"{LATEX_MACHINE}/id_00"
ANNOTATOR = "Mallory :red[boss] **lead**"
ANOMALY_TYPE = "_bearing_ :blue-background[whine] $x^2$"
NOTE_TEMPLATE = (
    "# APPROVED\n"
    "# APPROVED\n"  # at the start of a line: read as Markdown, a page-size heading even inside the history's list
    "![x]({base}/pixel.png) :green-badge[APPROVED] $\\frac{{a}}{{b}}$\n"
    "[sign-off]({base}/link) :green[OK] <b>bold</b> ~~strike~~ -> done"
)


class _Spy(BaseHTTPRequestHandler):
    """Answers every GET with a 1x1 GIF and remembers the path: a request means the note was read as Markdown."""

    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.requests.append(self.path)
        body = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        return


@pytest.fixture(scope="module")
def spy() -> Iterator[tuple[str, list[str]]]:
    """A tiny HTTP server on 127.0.0.1 (a free port) for the note to point at; yields its base URL and requests."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Spy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Spy.requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def hostile_app(spy, tmp_path_factory) -> Iterator[tuple[Dashboard, str]]:
    """The seeded plant (one fan), the LaTeX-named machine's clip and Mallory's verdict on it, served by
    ``streamlit run``; yields the dashboard and the note."""
    _require_chromium()
    base, _ = spy
    note = NOTE_TEMPLATE.format(base=base)
    folder = tmp_path_factory.mktemp("browser-text") / "data"
    env = _server_env(folder)
    seed = f"""
import numpy as np, soundfile as sf
from core.workflows.bootstrap import seed_demo_plant
from core.workflows.ingest import ingest
from core.workflows.triage import record_verdict
from db.session import data_dir
seed_demo_plant(machines=1, normal=12, abnormal=4, detector="mahalanobis")
wav = data_dir() / "field" / {json.dumps(LATEX_MACHINE)} / "id_00" / "clip.wav"
wav.parent.mkdir(parents=True)
sf.write(wav, 0.1 * np.random.default_rng(0).standard_normal((32000, 1)), 16000, subtype="PCM_16")
assert ingest([str(wav.parent)]).ingested == 1
from core.workflows.catalogue import clip_choices
(clip_id,) = clip_choices({json.dumps(MACHINE)})
record_verdict(clip_id, {json.dumps(ANNOTATOR)}, "abnormal", anomaly_type={json.dumps(ANOMALY_TYPE)},
               note={json.dumps(note)})
"""
    subprocess.run([sys.executable, "-c", seed], cwd=ROOT, env=env, check=True, timeout=300)
    with _streamlit(folder, env) as (url, log):
        yield Dashboard(url=url, data_dir=folder, log=log), note


@pytest.fixture(scope="module")
def browser(hostile_app):
    with launched_chromium() as chromium:
        yield chromium


def _assert_nothing_rendered_from_supplied_text(page, base: str) -> None:
    main = page.get_by_test_id("stApp")
    assert not main.locator(".katex, .katex-display, math").count(), "LaTeX from a name or note was typeset"
    assert not main.locator(".stMarkdownBadge, .stMarkdownColoredText, .stMarkdownColoredBackground").count()
    fetched = main.locator(f"img[src^='{base}'], a[href^='{base}']")
    assert not fetched.count(), fetched.evaluate_all("(els) => els.map((el) => el.parentElement.outerHTML)")


def test_a_hostile_note_is_shown_as_typed_and_fetches_nothing(page, hostile_app, spy):
    app, note = hostile_app
    base, requests = spy
    _open(page, app, "explore")  # opens on the first machine (the LaTeX-named one) and its only clip
    _assert_no_exception(page, app, "Explore on the LaTeX-named machine")
    page.wait_for_timeout(500)  # the page is drawn and the network idle: an image would have been requested
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    _full_page_screenshot(page, SCREENSHOTS / "text-explore.png")

    headings = page.locator("h1, h2, h3, h4, h5, h6")
    assert not headings.filter(has_text="APPROVED").count(), headings.all_inner_texts()
    assert page.locator("[data-testid='stMain'] h1").all_inner_texts() == ["Explore a clip"]
    assert requests == [], f"the page fetched {requests} from the note's server"
    _assert_nothing_rendered_from_supplied_text(page, base)

    assert page.get_by_text("# APPROVED").first.is_visible()
    (entry,) = page.locator("[data-testid='stMarkdownContainer'] li", has_text="Mallory").all()
    shown = entry.inner_text().replace(WORD_JOINER, "")
    for line in note.split("\n"):
        assert line in shown, f"{line!r} is not shown as typed in:\n{shown}"
    assert f"{ANNOTATOR} ({ROLE_SIGN_IN_OFF}): abnormal ({ANOMALY_TYPE})" in shown  # the role as every line has it
    assert entry.locator("strong").all_inner_texts() == ["abnormal"]  # the product's bold, nobody else's
    assert not entry.locator("em, del, code, a, img, b").count()
    assert page.get_by_test_id("stMain").get_by_text(MACHINE, exact=False).first.is_visible()
    picker = page.get_by_test_id("stSidebar").get_by_role("combobox", name="Machine")
    assert picker.input_value() == MACHINE
    picker.click()  # the options, as typed too
    options = page.get_by_role("option")
    options.first.wait_for(state="visible")
    assert options.all_inner_texts() == [MACHINE, "fan/id_00"]
    _assert_nothing_rendered_from_supplied_text(page, base)


def test_a_latex_machine_name_is_no_latex_on_the_overview(page, hostile_app, spy):
    app, _ = hostile_app
    base, requests = spy
    _open(page, app, "overview")
    _assert_no_exception(page, app, "Overview with a LaTeX-named machine")
    _assert_nothing_rendered_from_supplied_text(page, base)
    assert requests == []
