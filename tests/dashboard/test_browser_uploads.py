"""Uploads cost the server a bounded amount of memory: three large WAV files uploaded at once through the
Data page in a real browser, then ingested, grow the Streamlit server's peak resident memory by a small
multiple of one file.

The server is warmed up first (a batch of small uploads ingested, so libraries are imported), then its
peak is reset (``/proc/PID/clear_refs``) and the three large files go through the same path.  Where the
memory goes: Streamlit receives each upload into memory (about twice the file while it arrives, once
until its session ends); storing writes from that buffer without a copy (``getvalue``), and ingest reads
one channel of one file at a time.
"""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.dashboard.test_browser import (
    ROOT,
    _give_name,
    _require_chromium,
    _wait_for_app_idle,
    fresh_page,
    launched_chromium,
    streamlit_server,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

FILE_MB = 40  # each large upload; 8 channels at 48 kHz is 52 s, well inside MAX_CLIP_SECONDS
FILES = 3
# Measured 6.7-7.2 x one file (Streamlit holds each upload about twice while it arrives, concurrently);
# the bound leaves room for allocator noise, far below what a decoded copy of every file would cost.
MAX_GROWTH_FILES = 9


def _write_wav(path: Path, megabytes: float, seed: int) -> Path:
    """An 8-channel 16-bit 48 kHz WAV of about ``megabytes`` MB of noise, written a few seconds at a time."""
    channels, sr = 8, 48_000
    frames = int(megabytes * 1e6 / (2 * channels))
    rng = np.random.default_rng(seed)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(sr)
        for start in range(0, frames, 5 * sr):
            n = min(5 * sr, frames - start)
            out.writeframes((rng.standard_normal((n, channels)) * 3000).astype("<i2").tobytes())
    return path


def _memory_mb(pid: int) -> dict[str, float]:
    """``VmRSS`` (now) and ``VmHWM`` (peak since the last reset) of process ``pid``, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def _upload_and_ingest(browser, url: str, files: list[Path]) -> None:
    """Upload ``files`` on the Data page of a fresh session and ingest them; wait for the report."""
    with fresh_page(browser) as page:
        page.goto(f"{url}/data", wait_until="domcontentloaded")
        page.get_by_text("WAV/FLAC files").first.wait_for()
        _wait_for_app_idle(page)
        _give_name(page, "carol")  # sign-in off: what is ingested records who added it
        machine = page.get_by_role("textbox", name="Machine for the uploads (type/id)")
        machine.fill("uploads/id_00")  # no machine is assumed: the upload names one
        machine.press("Enter")
        _wait_for_app_idle(page)
        page.locator("input[type=file]").set_input_files([str(f) for f in files])
        for f in files:
            page.get_by_text(f.name).first.wait_for()
        page.wait_for_load_state("networkidle")
        page.get_by_role("button", name="Ingest uploads").click()
        page.get_by_text(f"Ingested {len(files)} clips").wait_for(timeout=300_000)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``streamlit run`` on an empty database (no demo plant), uploads up to 300 MB allowed."""
    _require_chromium()
    folder = tmp_path_factory.mktemp("uploads")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {"DATA_DIR": str(folder / "data"), "DEMO_PLANT": "0", "PYTHONPATH": str(ROOT), "MAX_UPLOAD_MB": "300"}
    with streamlit_server(env, folder / "streamlit.log") as (url, pid):
        yield url, pid, folder


def test_three_large_uploads_at_once_grow_the_server_by_a_small_multiple_of_one_file(server):
    url, pid, folder = server
    small = [_write_wav(folder / f"warm_{i}.wav", 1, 100 + i) for i in range(FILES)]
    large = [_write_wav(folder / f"large_{i}.wav", FILE_MB, i) for i in range(FILES)]
    with launched_chromium() as browser:
        _upload_and_ingest(browser, url, small)  # imports and caches: not what an upload costs
        before = _memory_mb(pid)["VmRSS"]
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        _upload_and_ingest(browser, url, large)
    growth = _memory_mb(pid)["VmHWM"] - before
    one_file = large[0].stat().st_size / 2**20
    assert growth <= MAX_GROWTH_FILES * one_file, f"peak grew {growth:.0f} MB for {FILES} x {one_file:.0f} MB"
    stored = sorted(p.name for p in (folder / "data" / "uploads" / "uploads" / "id_00").iterdir())
    assert stored == sorted(p.name for p in small + large)
