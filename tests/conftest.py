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


def tone(
    seconds: float = 1.0, *, sr: int = SR, freq: float = 440.0, amplitude: float = 0.5, channels: int = 1, seed: int = 0
) -> np.ndarray:
    """A sine plus a little noise, float32 ``(n, channels)``; channel k has frequency ``freq * (k + 1)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    columns = [
        amplitude * np.sin(2 * np.pi * freq * (k + 1) * t) + 0.01 * rng.standard_normal(t.size) for k in range(channels)
    ]
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


def _fresh_postgres_database(server_url: str) -> tuple[str, callable]:
    """Create an empty database on the test server; returns its URL and a dropper."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_db_url(request, data_dir) -> str:
    """A fresh, empty database on each backend: a SQLite file, and a PostgreSQL database.

    PostgreSQL comes from ``TEST_POSTGRES_URL`` (``.ci/run`` starts a server and sets it).
    Without it the PostgreSQL case is skipped locally but fails in CI (``CI`` set), so a
    broken server set-up can never pass silently.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{data_dir / 'backend.db'}"
        return
    server = postgres_url()
    if not server:
        if os.environ.get("CI"):
            pytest.fail("CI must test PostgreSQL: TEST_POSTGRES_URL is not set")
        pytest.skip("TEST_POSTGRES_URL not set (no PostgreSQL server)")
    url, drop = _fresh_postgres_database(server)
    yield url
    drop()
