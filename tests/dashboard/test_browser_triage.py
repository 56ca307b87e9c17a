"""Triage with the keyboard alone, in a real browser at 1280x720: ``streamlit run`` on a small seeded plant whose
every clip is flagged, driven by headless Chromium through Playwright (``test_browser.py``'s helpers).

A pilot gives their name, then judges 10 clips pressing A, N and U only, and the database holds their 10 verdicts;
typing those letters in the note field saves nothing; Z undoes the last verdict, P loops the most anomalous
second and S skips the clip for now; the verdict buttons stay where they were from clip to clip.  The verdict
buttons, the player and one spectrogram (its picture at least 176 px high: it had 88) lie inside the 1280x720
viewport without scrolling.  A shared address
(``?machine=...&clip=...``) opens its clip.  Skipped without Chromium locally, failed without it in CI."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator

import pytest

from tests.dashboard.test_browser import (
    ROOT,
    SCREENSHOTS,
    Dashboard,
    _assert_no_exception,
    _open,
    _require_chromium,
    _wait_for_app_idle,
    launched_chromium,
)
from tests.dashboard.test_browser_auth import _server_env, _streamlit

pytestmark = [pytest.mark.slow, pytest.mark.browser]

MACHINE = "fan/id_00"
PILOT = "Keyboard Pilot"
VIEWPORT = {"width": 1280, "height": 720}
PAGE_LOAD_MS = 90_000
KEYS = "anuanuanua"  # 10 verdicts: confirm abnormal, reject (normal), unsure...
VERDICT_BUTTONS = ("Confirm abnormal", "Reject (normal)", "Unsure")


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[Dashboard]:
    """One fan of 16 clips (Mahalanobis), every clip flagged, one verdict enough; served by ``streamlit run``."""
    _require_chromium()
    folder = tmp_path_factory.mktemp("browser-triage") / "data"
    env = _server_env(folder, OVERLAP_FRACTION="0")
    seed = f"""
from core.workflows.bootstrap import seed_demo_plant
from core.workflows.triage import triage_queue
from core.workflows.tuning import set_threshold
seed_demo_plant(machines=1, normal=12, abnormal=4, detector="mahalanobis")
set_threshold({MACHINE!r}, -1e9, set_by="test", reason="flag every clip")
assert len(triage_queue({MACHINE!r})) == 16
"""
    subprocess.run([sys.executable, "-c", seed], cwd=ROOT, env=env, check=True, timeout=300)
    with _streamlit(folder, env) as (url, log):
        yield Dashboard(url=url, data_dir=folder, log=log)


@pytest.fixture(scope="module")
def browser(app):
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser):
    """A fresh 1280x720 browser context (a fresh Streamlit session) per test."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_LOAD_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _rows(app: Dashboard, annotator: str = PILOT) -> list[tuple]:
    """``(clip_id, verdict, note, undoes_id)`` of every row the annotator's verdicts and undos wrote, in order."""
    with sqlite3.connect(app.data_dir / "anomaly.db", timeout=30) as conn:
        return conn.execute("SELECT clip_id, verdict, note, undoes_id FROM annotations WHERE annotator = ? ORDER BY id",
                            (annotator,)).fetchall()  # fmt: skip


def _queue(app: Dashboard) -> list[int]:
    script = (f"from core.workflows.triage import triage_queue\n"
              f"print(*[q.clip_id for q in triage_queue({MACHINE!r}, annotator={PILOT!r})])")  # fmt: skip
    env = _server_env(app.data_dir)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def _shown_clip(page) -> int:
    caption = page.get_by_text(re.compile(r"^clip #\d+$")).first.inner_text()  # blind: no file name
    return int(caption.split("#", 1)[1].split()[0])


def _wait_for_clip(page, clip_id: int) -> None:
    """The clip is on screen with its player, and the script has finished (bounded waits)."""
    page.get_by_text(re.compile(rf"^clip #{clip_id}$")).first.wait_for(state="visible")
    page.locator("[data-testid='stAudio'] audio, audio").first.wait_for(state="attached")
    _wait_for_app_idle(page)


def _wait_for_rows(page, app: Dashboard, n: int) -> None:
    for _ in range(600):  # bounded: 60 s
        if len(_rows(app)) >= n:
            return
        page.wait_for_timeout(100)
    pytest.fail(f"{n} rows expected, found {_rows(app)}\n{app.log_tail()}")


def _sign_in(page, app: Dashboard, path: str = "triage") -> None:
    _open(page, app, path)
    name = page.get_by_label("Your name", exact=True)
    name.fill(PILOT)
    name.press("Enter")  # the form is submitted from the keyboard too
    page.get_by_role("button", name="Confirm abnormal").wait_for(state="visible")
    _wait_for_app_idle(page)
    _assert_no_exception(page, app, "triage after giving a name")


def _inside_viewport(page, locator, what: str) -> None:
    box = locator.bounding_box()
    assert box is not None, f"{what} is not on screen"
    right, bottom = box["x"] + box["width"], box["y"] + box["height"]
    assert box["x"] >= 0 and box["y"] >= 0 and right <= VIEWPORT["width"] and bottom <= VIEWPORT["height"], (
        f"{what} at {box} is not inside the {VIEWPORT['width']}x{VIEWPORT['height']} viewport"
    )


def test_ten_clips_judged_with_the_keyboard_alone(page, app):
    queue = _queue(app)
    _sign_in(page, app)
    main = page.get_by_test_id("stMain")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "triage-1280x720.png"))
    for label in VERDICT_BUTTONS:  # no scrolling needed for the player, the verdict buttons and a spectrogram
        _inside_viewport(page, main.get_by_role("button", name=label), f"the {label!r} button")
    _inside_viewport(page, main.locator("audio").first, "the player")
    _inside_viewport(page, main.locator("[data-testid='stPlotlyChart']").first, "the first spectrogram")
    _inside_viewport(page, main.get_by_role("button", name="Skip for now"), "the 'Skip for now' button")
    picture = main.locator("[data-testid='stPlotlyChart']").first.locator(".nsewdrag").first.bounding_box()
    assert picture["height"] >= 176, f"the spectrogram's picture is {picture['height']} px high"  # it was 88 px
    assert page.get_by_role("button", name="Confirm abnormal").inner_text().replace("\n", " ").strip().endswith("A")
    assert page.get_by_role("button", name="Skip for now").inner_text().replace("\n", " ").strip().endswith("S")
    confirm = main.get_by_role("button", name="Confirm abnormal")
    where = confirm.bounding_box()  # a repeated click lands on the same button, clip after clip

    note = page.get_by_role("textbox", name="Note (optional)")
    note.focus()
    page.keyboard.type("anu sza")  # typing in the note never triggers a shortcut
    page.wait_for_timeout(1500)
    assert _rows(app) == [] and _shown_clip(page) == queue[0]
    page.keyboard.press("Tab")  # out of the field: the note is kept for the verdict
    _wait_for_app_idle(page)

    for k, key in enumerate(KEYS):
        assert _shown_clip(page) == queue[k]
        page.keyboard.press(key)
        _wait_for_rows(page, app, k + 1)
        _wait_for_clip(page, queue[k + 1])  # the next clip, its player ready
    verdicts = {"a": "abnormal", "n": "normal", "u": "unsure"}
    assert _rows(app) == [(queue[k], verdicts[key], "anu sza" if k == 0 else "", None) for k, key in enumerate(KEYS)]
    assert page.get_by_text(f"Last saved: #{queue[9]}: abnormal.").is_visible()
    assert confirm.bounding_box() == where
    _assert_no_exception(page, app, "triage after 10 verdicts from the keyboard")
    assert page.get_by_text(f"10 judged this session; {len(queue) - 10} left for {MACHINE}").is_visible()

    page.keyboard.press("z")  # undo my last verdict: appended, and the clip is back on screen
    _wait_for_rows(page, app, 11)
    assert _rows(app)[-1][0] == queue[9] and _rows(app)[-1][3] is not None
    _wait_for_clip(page, queue[9])
    page.keyboard.press("p")  # loop the most anomalous second
    page.get_by_text("Looping ").first.wait_for(state="visible")
    assert page.get_by_text("(the most anomalous second)").first.is_visible()
    player = page.locator("audio").first  # Streamlit loops it from its "ended" event (no loop attribute)
    player.evaluate(
        "(a) => new Promise((done) => a.readyState >= 1 ? done() : a.addEventListener('loadedmetadata', done))"
    )
    assert player.evaluate("(a) => a.duration") == pytest.approx(1.0, abs=0.01)  # the second itself, sliced
    assert confirm.bounding_box() == where  # the looping line takes the place of the whole clip's line
    _assert_no_exception(page, app, "triage after undo and play")

    page.keyboard.press("s")  # skip for now: no verdict, the next clip; the skipped one comes back at the end
    _wait_for_clip(page, queue[10])
    assert len(_rows(app)) == 11
    assert page.get_by_text("Skipped for now: 1 clip, back at the end of the queue.").is_visible()
    assert confirm.bounding_box() == where


def test_a_shared_link_opens_its_clip(page, app):
    queue = _queue(app)
    wanted = queue[3]  # not the first in the queue
    query = urllib.parse.urlencode({"machine": MACHINE, "clip": wanted})
    _sign_in(page, app, f"triage?{query}")
    _wait_for_clip(page, wanted)
    assert _shown_clip(page) == wanted
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query) == {"machine": [MACHINE], "clip": [str(wanted)]}
    page.keyboard.press("n")  # judged: the address follows the next clip on screen
    _wait_for_clip(page, queue[0])
    assert f"clip={queue[0]}" in page.url


def test_a_span_selected_on_the_spectrogram_loops(page, app):
    queue = _queue(app)
    _sign_in(page, app)
    _wait_for_clip(page, queue[0])
    chart = page.get_by_test_id("stMain").locator("[data-testid='stPlotlyChart']").first  # the mel spectrogram
    plot = chart.locator(".nsewdrag").first  # plotly's drawing area
    plot.wait_for(state="visible")
    box = plot.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.4, y + 10, steps=8)
    page.mouse.up()
    page.get_by_text("(your selection)").first.wait_for(state="visible")
    _wait_for_app_idle(page)
    looping = page.get_by_text("Looping ").first.inner_text()
    start, end = (float(x) for x in re.findall(r"[\d.]+", looping.split("(")[0]))
    assert 1.0 < start < end < 5.0 and end - start > 1.0, looping  # about 2 to 4 s of a 10 s clip
    player = page.locator("audio").first
    player.evaluate(
        "(a) => new Promise((done) => a.readyState >= 1 ? done() : a.addEventListener('loadedmetadata', done))"
    )
    assert player.evaluate("(a) => a.duration") == pytest.approx(end - start, abs=0.02)
