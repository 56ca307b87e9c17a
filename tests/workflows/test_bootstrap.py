"""core.workflows.bootstrap: a fresh, empty database gets a working demo plant: clips, models, scores."""

from __future__ import annotations

from sqlalchemy import func, select

from core.workflows.bootstrap import DEMO_SUBDIR, database_is_empty, demo_enabled, seed_demo_plant
from core.workflows.triage import machine_summaries
from db.models import Clip, Score
from db.session import session_scope


def test_seed_demo_plant_ingests_trains_and_scores(data_dir):
    assert database_is_empty()
    calls = []
    report = seed_demo_plant(machines=2, normal=6, abnormal=2, detector="mahalanobis",
                             progress=lambda stage, fraction: calls.append((stage, fraction)))  # fmt: skip
    assert (report.ingested, report.already_known, report.rejected) == (16, 0, [])
    assert not database_is_empty()
    assert len(list((data_dir / DEMO_SUBDIR).rglob("*.wav"))) == 16
    with session_scope() as session:
        assert session.scalar(select(func.count(Score.id))) == session.scalar(select(func.count(Clip.id))) == 16
    summaries = {s.machine: s for s in machine_summaries()}
    assert set(summaries) == {"fan/id_00", "fan/id_02"}
    assert all(s.detector == "mahalanobis" and s.threshold is not None for s in summaries.values())
    fractions = [fraction for _, fraction in calls]
    assert fractions == sorted(fractions) and calls[-1] == ("ready", 1.0)
    assert [stage for stage, _ in calls if stage != "ready"][0] == "writing demo clips"
    assert {"ingesting", "training", "scoring"} <= {stage for stage, _ in calls}


def test_seed_without_a_detector_only_ingests(data_dir):
    seed_demo_plant(machines=1, normal=3, abnormal=1, detector=None)
    with session_scope() as session:
        assert session.scalar(select(func.count(Score.id))) == 0
        assert session.scalar(select(func.count(Clip.id))) == 4


def test_demo_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("DEMO_PLANT", "0")
    assert not demo_enabled()
    monkeypatch.setenv("DEMO_PLANT", "1")
    assert demo_enabled()
