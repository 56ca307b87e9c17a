"""Shared fixtures: a private DATA_DIR and SQLite database per test, real WAV files on disk."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from db.session import dispose_engines

SHARED_REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
SR = 16_000


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files holding ``slow`` tests run first, then those driving a browser (a stable sort, the same on every
    worker): pytest-xdist gives each file to one worker in this order, and a long file handed out last would keep
    the run going on one worker while the others sit idle."""
    slow, browser = ({item.path for item in items if item.get_closest_marker(mark)} for mark in ("slow", "browser"))
    items.sort(key=lambda item: (item.path not in slow, item.path not in browser))


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
    return SHARED_REAL.resolve()  # resolved, as discovery reports paths (shared/ may be a link)


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


# --- The dashboard through Streamlit's AppTest (tests/dashboard/test_page_*.py) ---------------------------------------

APP_SCRIPT = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")
SEEDED_MACHINES = ("fan/id_00", "fan/id_02")  # what seed_demo_plant(machines=2) writes


@pytest.fixture(scope="session")
def _seeded_template(tmp_path_factory) -> Path:
    """A demo plant seeded once per test session: 2 fans x (12 normal + 4 abnormal) clips,
    a Mahalanobis model per fan, every clip scored.  Tests get a copy of its database."""
    from core.workflows.bootstrap import seed_demo_plant
    from db.session import DB_FILENAME

    folder = tmp_path_factory.mktemp("seeded") / "data"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATA_DIR", str(folder))
        patch.delenv("DATABASE_URL", raising=False)
        patch.setenv("DEMO_PLANT", "0")
        seed_demo_plant(machines=2, normal=12, abnormal=4, detector="mahalanobis")
        dispose_engines()
    assert (folder / DB_FILENAME).is_file()
    return folder


@pytest.fixture
def seeded(data_dir, _seeded_template) -> Path:
    """This test's DATA_DIR holding its own copy of the seeded SQLite database (clips and model files stay,
    read-only, in the session's template folder); returns DATA_DIR."""
    import shutil

    from db.session import DB_FILENAME

    dispose_engines()
    data_dir.mkdir(parents=True, exist_ok=True)
    for file in _seeded_template.glob(f"{DB_FILENAME}*"):
        shutil.copy2(file, data_dir / file.name)
    return data_dir


@pytest.fixture
def open_page():
    """``open_page("triage")``: the real app run once, then switched to ``dashboard/pages/triage.py``;
    fails on any exception the page raised.  ``name``: given in the sidebar's **Your name** then (with sign-in
    off, what a page saves needs one)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()  # cached page data is keyed by machine, not by database: no leaks between tests

    def _open(page: str, timeout: float = 60, *, name: str | None = None):
        app = AppTest.from_file(APP_SCRIPT, default_timeout=timeout).run()
        no_exception(app)
        app.switch_page(f"dashboard/pages/{page}.py").run()
        no_exception(app)
        if name is not None:
            app.sidebar.text_input(key="annotator_input").input(name).run()
            no_exception(app)
        return app

    return _open


PAGE_FAILED = ("This page hit an unexpected problem", "check what is named here and try again")
"""What streamlit_app.py's guard shows instead of a traceback when a page raises."""


def no_exception(app) -> None:
    """Assert the last run of ``app`` raised nothing: no exception element, and no error from the app's
    page guard (which turns a page's exception into an ``st.error``)."""
    assert not app.exception, [e.value for e in app.exception]
    guarded = [e.value for e in app.error if any(text in e.value for text in PAGE_FAILED)]
    assert not guarded, guarded


def infos(app) -> list[str]:
    return [i.value for i in app.info]


SMALL_PLANT_CLIPS = 2 * (20 + 6)


def free_port() -> int:
    """A TCP port free on the loopback interface now (for a server a test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition, timeout_s: float = 20.0) -> bool:
    """Poll ``condition()`` every 20 ms until it holds or ``timeout_s`` passes; its last value."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture(scope="session")
def plant_dir(tmp_path_factory) -> Path:
    """A small demo plant on disk (fan/id_00 and fan/id_02, 20 normal + 6 abnormal 3 s clips each), written once."""
    from core.datasets.demo import write_plant

    out = tmp_path_factory.mktemp("plant")
    write_plant(out, machines=2, normal=20, abnormal=6, duration_s=3.0, seed=0, n_jobs=1)
    return out


@pytest.fixture
def plant(plant_dir) -> Path:
    """The small plant ingested into this test's own database."""
    from core.workflows.ingest import ingest

    report = ingest([str(plant_dir)])
    assert (report.ingested, report.rejected) == (SMALL_PLANT_CLIPS, [])
    return plant_dir


# --- AWS, isolated from this machine (moto, botocore's Stubber) -------------------------------------------------

AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CREDENTIAL_FILE", "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "REKOGNITION_BUCKET", "REKOGNITION_PREFIX", "REKOGNITION_PROJECT", "REKOGNITION_PROFILE", "REKOGNITION_REGION",
    "REKOGNITION_INFERENCE_UNITS", "REKOGNITION_COST_PER_UNIT_HOUR", "NOTIFY_WEBHOOK_URL", "NOTIFY_SNS_TOPIC_ARN",
)  # fmt: skip


@pytest.fixture
def no_aws(tmp_path, monkeypatch):
    """No AWS or product cloud settings from this machine: no AWS_*/REKOGNITION_*/NOTIFY_* variables, empty
    config files, no instance metadata, the cached credentials check forgotten.  Yields ``monkeypatch``."""
    from core.supervised.cloud.config import forget_credentials_check

    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "aws-empty"
    empty.write_text("")
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "BOTO_CONFIG"):
        monkeypatch.setenv(name, str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    forget_credentials_check()
    yield monkeypatch
    forget_credentials_check()  # no cached answer for these settings leaks into other tests


@pytest.fixture
def fake_aws(no_aws):
    """:func:`no_aws` plus fake credentials (what moto expects); yields ``monkeypatch``."""
    no_aws.setenv("AWS_ACCESS_KEY_ID", "testing")
    no_aws.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return no_aws


# --- Ray, started once per session and only when a test asks for it ----------------------------------------------


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray instance with two CPUs for the whole session (starting one takes seconds), shut down at the
    end; never started when no selected test asks for it.  ``--engine ray`` joins it (Ray is initialised)."""
    import logging

    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)  # never a cluster
    yield ray
    ray.shutdown()
