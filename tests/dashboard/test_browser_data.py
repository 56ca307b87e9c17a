"""The Data page's upload box and the export zip download in a real browser (``streamlit run``, system Chromium
through Playwright): the box's own "… per file" text states MAX_UPLOAD_MB even when the server was started with
another ``server.maxUploadSize``, the box is emptied after each batch, and the downloaded zip is the export's files."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator

import pytest

from tests.conftest import tone, write_wav
from tests.dashboard.test_browser import (
    ROOT,
    Dashboard,
    _give_name,
    _open,
    _require_chromium,
    _wait_for_app_idle,
    fresh_page,
    launched_chromium,
)
from tests.dashboard.test_browser_auth import _streamlit

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[Dashboard, dict]]:
    """A seeded DATA_DIR with one export, served by a ``streamlit run`` started with ``--server.maxUploadSize
    1000`` (a 1 GB box) while MAX_UPLOAD_MB keeps its default, 200; yields the dashboard and the export's summary."""
    _require_chromium()
    folder = tmp_path_factory.mktemp("browser-data") / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MAX_UPLOAD_MB")}
    env |= {"DATA_DIR": str(folder), "DEMO_PLANT": "0", "PYTHONPATH": str(ROOT)}
    seed = "from core.workflows.bootstrap import seed_demo_plant\nseed_demo_plant(machines=2, normal=12, abnormal=4, " \
           "detector='mahalanobis')"  # fmt: skip
    subprocess.run([sys.executable, "-c", seed], cwd=ROOT, env=env, check=True, timeout=300)
    export = subprocess.run(
        [sys.executable, "-m", "core", "export", str(folder / "exports" / "e1"), "--json", "--jobs", "1"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
        capture_output=True,
        text=True,
    )
    with _streamlit(folder, env, "--server.maxUploadSize", "1000") as (url, log):
        yield Dashboard(url=url, data_dir=folder, log=log), json.loads(export.stdout)


@pytest.fixture(scope="module")
def browser(served):
    with launched_chromium() as chromium:
        yield chromium


def test_the_upload_box_says_the_same_limit_as_the_page(served, browser):
    dashboard, _ = served
    with fresh_page(browser) as page:
        _open(page, dashboard, "data")
        uploader = page.locator("[data-testid='stFileUploader']")
        assert "WAV/FLAC files (up to 200 MB each)" in uploader.inner_text()
        box = page.locator("[data-testid='stFileUploaderDropzoneInstructions']").inner_text()
        assert "200MB per file" in box and "GB" not in box, box


def test_after_ingest_the_upload_box_is_empty_and_the_next_batch_sends_only_its_own_files(served, browser, tmp_path):
    dashboard, _ = served
    files = [write_wav(tmp_path / f"take_{k}.wav", tone(2.0, freq=600.0 + 200 * k, seed=20 + k)) for k in range(2)]
    with fresh_page(browser) as page:
        _open(page, dashboard, "data")
        _give_name(page, "carol")  # sign-in off: what is ingested records who added it
        machine = page.get_by_role("textbox", name="Machine for the uploads (type/id)")
        assert machine.get_attribute("placeholder") == "type/id, e.g. fan/id_00"
        machine.fill("fan/id_02")
        machine.press("Enter")
        _wait_for_app_idle(page)
        box = page.locator("[data-testid='stFileUploader']")
        for k, path in enumerate(files):
            _choose_file(page, box, path)
            page.wait_for_load_state("networkidle")
            page.get_by_role("button", name="Ingest uploads").click()
            page.get_by_text("Ingested 1 clip; 0 already known.").wait_for()  # never the earlier file again
            _wait_for_app_idle(page)
            assert box.get_by_text(path.name).count() == 0, f"batch {k}: the box kept its file"
            assert page.get_by_role("button", name="Ingest uploads").count() == 0


def _choose_file(page, box, path) -> None:
    """Put ``path`` in the upload box, as a person dropping it there.  A file chosen while the app still reruns for
    the machine just typed is dropped with the box that rerun replaces (seen once under a loaded suite): a person
    sees the box empty and drops it again, and so does this, at most twice more."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(3):
        page.locator("input[type=file]").set_input_files([str(path)])
        try:
            box.get_by_text(path.name).wait_for(timeout=30_000)
            return
        except PlaywrightTimeout:
            _wait_for_app_idle(page)
    raise AssertionError(f"{path.name} never showed in the upload box")


def test_the_export_downloads_as_a_zip_of_its_files(served, browser):
    dashboard, summary = served
    with fresh_page(browser) as page:
        _open(page, dashboard, "supervised")
        with page.expect_download() as caught:
            page.get_by_role("button", name="Download the export (zip)").click()
        download = caught.value
        assert download.suggested_filename == f"export-{summary['export_id']}.zip"
        content = download.path().read_bytes()
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.testzip() is None
        expected = ["summary.json", "train.manifest", "test.manifest", *(r["file"] for r in summary["images"])]
        assert sorted(archive.namelist()) == sorted(expected)
        folder = dashboard.data_dir / "exports" / "e1"
        assert all(archive.read(name) == (folder / name).read_bytes() for name in expected)
