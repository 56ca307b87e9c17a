"""Compare models and its links in a real browser (``streamlit run`` and headless Chromium, as
``test_browser.py``): Train detector trains and scores with its progress bars, the comparison then shows, and a
clip link ``explore?machine=TYPE/ID&clip=ID`` opens that clip on Explore."""

from __future__ import annotations

import sqlite3

import pytest

from tests.dashboard import test_browser as real
from tests.dashboard.test_browser import SCREENSHOTS, _assert_no_exception, _give_name, _open, _wait_for_app_idle

pytestmark = [pytest.mark.slow, pytest.mark.browser]
dashboard, browser = real.dashboard, real.browser  # the same fixtures (page: conftest), a server of this module's


def _last_clip(data_dir, machine_type: str, machine_id: str) -> int:
    with sqlite3.connect(data_dir / "anomaly.db", timeout=30) as conn:
        (clip_id,) = conn.execute(
            "SELECT MAX(c.id) FROM clips c JOIN machines m ON m.id = c.machine_pk "
            "WHERE m.machine_type = ? AND m.machine_id = ?", (machine_type, machine_id),
        ).fetchone()  # fmt: skip
    return clip_id


def test_a_clip_link_opens_the_clip_on_explore(page, dashboard):
    clip_id = _last_clip(dashboard.data_dir, "fan", "id_02")
    _open(page, dashboard, f"explore?machine=fan/id_02&clip={clip_id}")
    _assert_no_exception(page, dashboard, "Explore opened from a clip link")
    machine = page.get_by_test_id("stSidebar").get_by_role("combobox", name="Machine", exact=True)
    assert machine.input_value() == "fan/id_02"
    clip = page.get_by_test_id("stMain").get_by_role("combobox", name="Clip", exact=True)
    assert clip.input_value().startswith(f"#{clip_id} · ")


def test_train_detector_from_the_compare_page_then_compare(page, dashboard):
    _open(page, dashboard, "compare")
    _assert_no_exception(page, dashboard, "Compare with one model")
    _give_name(page, "carol")  # sign-in off: the model records who trained it
    page.get_by_role("combobox", name="Detector", exact=True).click()
    page.get_by_role("option", name="mahalanobis").click()
    _wait_for_app_idle(page)
    page.get_by_role("button", name="Train detector").click()
    page.get_by_text("Trained Mahalanobis v2 for fan/id_00").wait_for(state="visible")
    _wait_for_app_idle(page)
    _assert_no_exception(page, dashboard, "Compare after training")
    page.get_by_text("Where they disagree").wait_for(state="visible")
    assert page.get_by_text("Model A").is_visible() and page.get_by_text("Model B").is_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "compare-after-training.png"), full_page=True)
