"""The real Streamlit app through AppTest: empty database, seeded database, first start."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.workflows.ingest import ingest
from db.queries import count_clips
from db.session import session_scope
from tests.conftest import tone, write_wav

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")


def _run(timeout: float = 60) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=timeout).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_empty_database_shows_guidance():
    app = _run()
    assert [t.value for t in app.title] == ["Overview"]
    assert any("No clips yet" in info.value for info in app.info)


def test_seeded_database_shows_counts(tmp_path):
    for k in range(3):
        write_wav(tmp_path / "plant" / "fan" / "id_00" / "normal" / f"{k}.wav", tone(1.0, seed=k))
    write_wav(tmp_path / "plant" / "pump" / "id_01" / "abnormal" / "0.wav", tone(1.0, freq=300))
    (tmp_path / "plant" / "fan" / "id_00" / "normal" / "bad.wav").write_bytes(b"not audio")
    ingest([str(tmp_path / "plant")], n_jobs=1)
    app = _run()
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Clips"] == "4" and metrics["Machines"] == "2" and metrics["Flagged"] == "0"
    assert any("refused" in e.label for e in app.expander)


@pytest.mark.slow
def test_first_start_generates_and_ingests_the_demo_plant(monkeypatch, data_dir):
    """The app's first start, on a smaller plant than the default 4 x (60 + 15) clips (about 100 s of writing,
    choosing and training on 2 cores, for no more of the app's code): one machine of 12 + 3 clips, trained with
    the default detector (the automatic choice) as a new machine gets it."""
    from core.workflows import bootstrap
    from core.workflows.catalogue import machine_keys

    smaller = partial(bootstrap.run_first_start, machines=1, normal=12, abnormal=3)
    monkeypatch.setattr("dashboard.components.first_start.run_first_start", smaller)
    monkeypatch.setenv("DEMO_PLANT", "1")
    app = _run(timeout=180)
    with session_scope() as session:
        assert count_clips(session) == 15  # 12 normal + 3 abnormal
    assert (data_dir / "demo_plant").is_dir()
    assert int(next(m.value for m in app.metric if m.label == "Clips")) == 15
    assert machine_keys(require_model=True) == machine_keys() == ["fan/id_00"]  # trained


def test_a_worker_re_importing_the_app_script_runs_nothing(tmp_path):
    """Worker processes started from a page re-import the main script as ``__mp_main__`` (multiprocessing's
    spawn/forkserver preparation); the app must then do nothing, or a first start started from the app waits
    on its own lock in every worker (seen: the first start hung with a cold worker pool)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {
        "DATA_DIR": str(tmp_path / "data"),
        "DEMO_PLANT": "1",
    }
    code = (
        "import runpy, sys\n"
        "import dashboard.components.auth as auth\n"
        "def ran(*args, **kwargs): sys.exit('the app ran in the worker')\n"
        "auth.sign_in = ran\n"
        f"runpy.run_path({APP!r}, run_name='__mp_main__')\n"
        "print('imported')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(APP).parent, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "imported", done.stderr[-2000:]
    assert not (tmp_path / "data").exists()  # no database opened, no first start, no lock file


def test_a_run_with_keras_loaded_closes_figures_but_does_not_reset_keras(monkeypatch):
    """Streamlit resets Keras after every run (a full gc.collect, 0.25 s+ once TensorFlow is loaded, paid on
    each key a pilot presses); the app keeps that clean-up to closing matplotlib's figures."""
    import keras
    import matplotlib.pyplot as plt

    resets = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: resets.append(1))
    plt.figure()
    app = _run()
    app.run()  # a rerun, as after a key press
    assert resets == [] and plt.get_fignums() == []
