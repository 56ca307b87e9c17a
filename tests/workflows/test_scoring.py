"""core.workflows.scoring: every clip scored once by its machine's active model; bad files reported, never fatal."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.workflows.ingest import ingest
from core.workflows.model_store import load_detector
from core.workflows.scoring import score
from core.workflows.training import train
from db.models import Clip, DetectorModel, Machine, Score
from db.queries import clip_scores, score_details
from db.session import session_scope
from tests.conftest import tone, write_wav

N_PER_MACHINE = 20 + 6
N_CLIPS = 2 * N_PER_MACHINE


def _n_scores() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count(Score.id)))


def _clip_ids(machine: str | None = None) -> set[int]:
    query = select(Clip.id).join(Clip.machine)
    if machine:
        machine_type, machine_id = machine.split("/")
        query = query.where(Machine.machine_type == machine_type, Machine.machine_id == machine_id)
    with session_scope() as session:
        return set(session.scalars(query))


def test_scores_every_clip_once_with_the_active_model(plant):
    trained = train(detector="mahalanobis")
    calls = []
    report = score(progress=lambda done, total: calls.append((done, total)))

    assert (report.scored, report.models, report.failed, report.machines_without_model) == (N_CLIPS, 2, [], [])
    assert calls[-1] == (N_CLIPS, N_CLIPS)  # one bar across both machines' models
    assert all(0 <= done <= total == N_CLIPS for done, total in calls)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    with session_scope() as session:
        rows = list(session.scalars(select(Score)))
        assert len(rows) == N_CLIPS == len(_clip_ids())
        assert Counter(r.clip_id for r in rows) == {clip_id: 1 for clip_id in _clip_ids()}
        for row in rows:
            clip = session.get(Clip, row.clip_id)
            assert row.model_id == clip.machine.active_model_id
            # when and where: one error per feature vector (1 + 3 s * 16000 // 512 - 5 + 1) and per mel band
            stored = score_details(session, row.model_id, row.clip_id)  # kept as float16 bytes, not JSON
            assert row.details == {"explanation_version": 2}  # mahalanobis's second explain(); errors as bytes:
            assert len(row.frames) == 4 + 2 * (90 + 64)
            assert len(stored["frame_errors"]) == 90 and len(stored["band_errors"]) == 64
        # the stored scores of the training clips are the model's own training scores
        for t in trained.trained:
            model = session.get(DetectorModel, t.model_id)
            ids = model.provenance["clip_ids"]
            stored = clip_scores(session, model.id, ids)
            expected = load_detector(model.artifact_path).decision_scores_
            assert [stored[i] for i in ids] == pytest.approx(expected, rel=1e-5)

    again = score()
    assert (again.scored, again.models, again.failed) == (0, 0, [])
    assert _n_scores() == N_CLIPS


def test_a_clip_added_later_is_the_only_one_scored_next_time(plant, tmp_path):
    train(detector="mahalanobis")
    assert score().scored == N_CLIPS

    extra = write_wav(tmp_path / "extra" / "fan" / "id_02" / "normal" / "late.wav", tone(3.0, freq=300.0))
    assert ingest([str(extra)]).ingested == 1
    with session_scope() as session:
        late = session.scalar(select(Clip).where(Clip.path == str(extra.resolve())))
        assert late.machine.key == "fan/id_02"

    report = score()
    assert (report.scored, report.models, report.failed) == (1, 1, [])
    assert _n_scores() == N_CLIPS + 1
    with session_scope() as session:
        (row,) = session.scalars(select(Score).where(Score.clip_id == late.id))
        assert row.model_id == late.machine.active_model_id
    assert score().scored == 0


def test_an_unreadable_file_is_reported_and_the_others_are_scored(plant_dir, tmp_path):
    copy = tmp_path / "plant"
    shutil.copytree(plant_dir, copy)
    ingest([str(copy)])
    train(detector="mahalanobis")
    with session_scope() as session:
        victim = session.scalar(select(Clip).where(Clip.label == "abnormal").order_by(Clip.id.desc()).limit(1))
    Path(victim.path).write_bytes(b"\x00\x01junk, not RIFF" * 64)

    report = score()
    assert report.scored == N_CLIPS - 1
    (failure,) = report.failed
    assert failure["path"] == victim.path
    assert failure["reason"] in ("not_audio", "corrupt")
    assert failure["detail"]
    assert _n_scores() == N_CLIPS - 1
    with session_scope() as session:
        assert session.scalar(select(func.count(Score.id)).where(Score.clip_id == victim.id)) == 0

    # still unscored, so it is tried (and reported) again; nothing else is rescored
    again = score()
    assert again.scored == 0
    assert [f["path"] for f in again.failed] == [victim.path]
    assert _n_scores() == N_CLIPS - 1


def test_machines_without_a_model_are_listed_and_left_alone(plant):
    (trained,) = train("fan/id_00", detector="mahalanobis").trained
    report = score()
    assert report.machines_without_model == ["fan/id_02"]
    assert (report.scored, report.models) == (N_PER_MACHINE, 1)
    with session_scope() as session:
        scored = set(session.scalars(select(Score.clip_id).where(Score.model_id == trained.model_id)))
    assert scored == _clip_ids("fan/id_00")
    assert _n_scores() == N_PER_MACHINE

    only = score("fan/id_02")
    assert (only.scored, only.models, only.machines_without_model) == (0, 0, ["fan/id_02"])


def test_scoring_follows_a_new_active_model(plant):
    train(detector="mahalanobis")
    score()
    (newer,) = train("fan/id_00", detector="mahalanobis").trained
    lines = []
    report = score(log=lines.append)
    assert (report.scored, report.models) == (N_PER_MACHINE, 1)
    assert lines == [f"scored {N_PER_MACHINE} clips with mahalanobis v2 (fan/id_00)"]
    with session_scope() as session:
        scored = set(session.scalars(select(Score.clip_id).where(Score.model_id == newer.model_id)))
    assert scored == _clip_ids("fan/id_00")
    assert _n_scores() == N_CLIPS + N_PER_MACHINE


def test_a_clip_at_another_sample_rate_than_its_model_is_reported_not_scored(plant_dir, tmp_path):
    copy = tmp_path / "plant"
    shutil.copytree(plant_dir, copy)
    ingest([str(copy)])
    train(detector="mahalanobis")
    odd = write_wav(copy / "fan" / "id_00" / "abnormal" / "odd.wav", tone(3.0, sr=44_100), sr=44_100)
    assert ingest([str(odd)]).ingested == 1

    report = score()

    assert report.scored == N_CLIPS
    assert report.failed == [{
        "path": str(odd), "reason": "wrong_sample_rate",
        "detail": "recorded at 44100 Hz; Mahalanobis v1 (fan/id_00) works at 16000 Hz (resample the file to 16000 Hz)",
    }]  # fmt: skip
    with session_scope() as session:
        odd_id = session.scalar(select(Clip.id).where(Clip.path == str(odd)))
        assert session.scalar(select(func.count(Score.id)).where(Score.clip_id == odd_id)) == 0
