"""The Thresholds page in a real browser at 1280x720 (``streamlit run`` and headless Chromium, as
``test_browser.py``): Plotly's mode bar, shown on hover, leaves every chart's title clear, and the slider's first
arrow key after a typed threshold moves it a whole stop."""

from __future__ import annotations

import pytest

from tests.dashboard import test_browser as real
from tests.dashboard.test_browser import SCREENSHOTS, _assert_no_exception, _open, _wait_for_app_idle

pytestmark = [pytest.mark.slow, pytest.mark.browser]
dashboard, browser = real.dashboard, real.browser  # the same fixtures (page: conftest), a server of this module's

SMALL_SCREEN = {"width": 1280, "height": 720}


def _overlap(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and (
        a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]
    )  # fmt: skip


def test_the_mode_bar_shown_on_hover_leaves_every_title_clear(page, dashboard):
    page.set_viewport_size(SMALL_SCREEN)
    _open(page, dashboard, "thresholds")
    _assert_no_exception(page, dashboard, "the Thresholds page")
    charts = page.locator("[data-testid='stMain'] .js-plotly-plot")
    assert charts.count() == 6
    for chart in charts.all():
        chart.scroll_into_view_if_needed()
        chart.hover()
        bar = chart.locator(".modebar").first
        bar.wait_for(state="visible")
        title = chart.locator(".gtitle").first
        assert not _overlap(title.bounding_box(), bar.bounding_box()), title.text_content()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "thresholds-mode-bar.png"))


SLIDER = "[data-testid='stSlider'] input[type=range]"
BOX = "input[aria-label='Threshold value']"


def _slider_text(page) -> str:
    return page.locator(SLIDER).first.get_attribute("aria-valuetext")


def _press(page, key: str) -> float:
    """Press ``key`` on the slider; returns the threshold it then shows, once the box beside it shows it too."""
    before = _slider_text(page)
    page.locator(SLIDER).first.focus()
    page.keyboard.press(key)
    page.wait_for_function(f"() => document.querySelector({SLIDER!r}).getAttribute('aria-valuetext') !== {before!r}")
    shown = _slider_text(page)
    page.wait_for_function(f"() => document.querySelector({BOX!r}).value === {shown!r}")  # the page has rerun
    _wait_for_app_idle(page)
    return float(shown)


def _type(page, value: str) -> None:
    box = page.get_by_role("spinbutton", name="Threshold value")
    box.fill(value)
    box.press("Enter")
    page.wait_for_function(f"() => document.querySelector({SLIDER!r}).getAttribute('aria-valuetext') === {value!r}")
    _wait_for_app_idle(page)


def test_the_first_arrow_key_after_a_typed_threshold_moves_a_whole_stop(page, dashboard):
    """A threshold a hair above a stop sat beside it: the first arrow key moved it by that hair (18.2896 to
    18.2897), changing nothing. The threshold now takes the place of the stop nearest to it."""
    page.set_viewport_size(SMALL_SCREEN)
    _open(page, dashboard, "thresholds")
    page.get_by_text("even steps", exact=True).click()
    _wait_for_app_idle(page)
    stop = _press(page, "ArrowLeft")  # a stop of the even grid
    typed = f"{stop * 1.002:.4g}"  # a hair above it, at the 4 significant digits the page keeps
    assert float(typed) > stop
    _type(page, typed)
    first = _press(page, "ArrowLeft")
    second = _press(page, "ArrowLeft")
    assert first < stop and float(typed) - first > (first - second) / 2  # about a whole stop, from the first press
    _assert_no_exception(page, dashboard, "the Thresholds page after arrow keys")
