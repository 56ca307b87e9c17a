"""The real Streamlit app through AppTest: empty database, seeded database, first start."""

from __future__ import annotations

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
    monkeypatch.setenv("DEMO_PLANT", "1")
    app = _run(timeout=180)
    with session_scope() as session:
        assert count_clips(session) == 300  # 4 machines x (60 normal + 15 abnormal)
    assert (data_dir / "demo_plant").is_dir()
    assert int(next(m.value for m in app.metric if m.label == "Clips")) == 300
