"""Shared fixtures: a private DATA_DIR and SQLite database per test, real WAV files on disk."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from db.session import dispose_engines

SHARED_REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
SR = 16_000


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch) -> Path:
    """Every test gets its own DATA_DIR (and so its own SQLite file); no demo plant unless asked."""
    folder = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(folder))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DEMO_PLANT", "0")
    yield folder
    dispose_engines()


@pytest.fixture
def db_url(data_dir) -> str:
    return f"sqlite:///{data_dir / 'test.db'}"


def tone(seconds: float = 1.0, *, sr: int = SR, freq: float = 440.0, amplitude: float = 0.5,
         channels: int = 1, seed: int = 0) -> np.ndarray:
    """A sine plus a little noise, float32 ``(n, channels)``; channel k has frequency ``freq * (k + 1)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    columns = [amplitude * np.sin(2 * np.pi * freq * (k + 1) * t) + 0.01 * rng.standard_normal(t.size)
               for k in range(channels)]
    return np.stack(columns, axis=1).astype(np.float32)


def write_wav(path: Path, data: np.ndarray, *, sr: int = SR, subtype: str = "PCM_16") -> Path:
    """Write ``data`` ``(n, channels)`` as a real audio file (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sr, subtype=subtype)
    return path


@pytest.fixture
def real_data() -> Path:
    """../shared/data/real, or skip (a user's fresh clone has no such folder)."""
    if not SHARED_REAL.is_dir():
        pytest.skip("../shared/data/real is not present")
    return SHARED_REAL


def postgres_url() -> str | None:
    return os.environ.get("TEST_POSTGRES_URL")
