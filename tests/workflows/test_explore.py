"""core.workflows.explore: one clip's facts, its active model's score and errors, its verdict history, and a typical
normal clip of the same machine to compare it with."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select, update

from core.signal.features import FeatureParams
from core.workflows.explore import ClipDetails, clip_details, typical_normal_clip
from core.workflows.triage import record_verdict, undo_last
from db.frames import unpack_errors
from db.models import Clip, Machine, Score, Threshold
from db.queries import add_threshold
from db.session import session_scope


def _rows(key: str) -> tuple[int, float, list[tuple[int, str, str, float, dict]]]:
    """``(active model id, active threshold, [(clip id, label, split, score, details)])`` from the tables."""
    machine_type, machine_id = key.split("/")
    with session_scope() as session:
        machine = session.scalar(
            select(Machine).where(Machine.machine_type == machine_type, Machine.machine_id == machine_id)
        )
        model_id = machine.active_model_id
        threshold = session.scalar(
            select(Threshold.value).where(Threshold.model_id == model_id).order_by(Threshold.id.desc())
        )
        rows = session.execute(
            select(Clip.id, Clip.label, Clip.split, Score.score, Score.frames)
            .join(Score, (Score.clip_id == Clip.id) & (Score.model_id == model_id))
            .where(Clip.machine_pk == machine.id)
            .order_by(Clip.id)
        ).all()
    return model_id, threshold, [tuple(r) for r in rows]


def test_clip_details_facts_score_and_errors(seeded):
    model_id, threshold, rows = _rows("fan/id_00")
    params = FeatureParams()
    for clip_id, label, split, value, details in rows:
        d = clip_details(clip_id)
        assert isinstance(d, ClipDetails)
        with session_scope() as session:
            clip = session.get(Clip, clip_id)
            facts = (clip.path, clip.label, clip.split, clip.duration_s, clip.n_channels, clip.sample_rate)
        assert (d.clip_id, d.machine, d.model_id) == (clip_id, "fan/id_00", model_id)
        assert (d.path, d.label, d.split, d.duration_s, d.n_channels, d.sample_rate) == facts
        assert (d.label, d.split) == (label, split)
        assert d.score == value and d.threshold == threshold
        assert d.flagged is (value > threshold)
        # one error per feature vector (STFT columns - frames + 1) and one per mel band
        n_columns = 1 + round(d.duration_s * d.sample_rate) // params.hop_length
        assert len(d.frame_errors) == n_columns - params.frames + 1
        assert len(d.band_errors) == params.n_mels
        stored = unpack_errors(details)  # the float16 bytes the score row keeps
        assert d.frame_errors == pytest.approx(stored["frame_errors"])
        assert d.band_errors == pytest.approx(stored["band_errors"])
        assert np.all(np.isfinite(d.frame_errors)) and min(d.frame_errors) >= 0
        assert d.history == []
    flags = {clip_details(c).flagged for c, *_ in rows}
    assert flags == {True, False}  # both cases seen


def test_clip_details_follow_the_latest_threshold(seeded):
    model_id, _, rows = _rows("fan/id_02")
    clip_id, *_, value, _ = max(rows, key=lambda r: r[3])
    with session_scope(write=True) as session:
        add_threshold(session, model_id, value, method="manual", set_by="t", reason="r")
    d = clip_details(clip_id)
    assert (d.score, d.threshold, d.flagged) == (value, value, False)  # flagged means strictly above


def test_clip_details_history_marks_undo_rows(seeded):
    _, _, rows = _rows("fan/id_00")
    clip_id, other = rows[0][0], rows[1][0]
    record_verdict(clip_id, "ana", "abnormal", anomaly_type="bearing", note="grinding")
    record_verdict(other, "ana", "normal")  # another clip's verdicts stay out of this history
    record_verdict(clip_id, "bo", "normal", note="fine")
    undo_last("bo")
    history = clip_details(clip_id).history
    assert [(v.annotator, v.verdict, v.anomaly_type, v.note, v.is_undo) for v in history] == [
        ("ana", "abnormal", "bearing", "grinding", False),
        ("bo", "normal", None, "fine", False),
        ("bo", "normal", None, "undo", True),
    ]
    assert [v.created_at for v in history] == sorted(v.created_at for v in history)
    assert [(v.verdict, v.is_undo) for v in clip_details(other).history] == [("normal", False)]


def test_clip_details_carry_the_final_verdicts_oldest_first(seeded):
    """A clip settled on the Review page: its final verdicts come with it, not only the two disputing ones."""
    from core.access import Actor, Role
    from core.workflows.review import adjudicate

    _, _, rows = _rows("fan/id_00")
    clip_id, other = rows[0][0], rows[1][0]
    record_verdict(clip_id, "ana", "abnormal")
    record_verdict(clip_id, "bo", "normal")
    assert clip_details(clip_id).rulings == []
    adjudicate(clip_id, "abnormal", "whine at 2 s", anomaly_type="bearing", actor=Actor("eve", Role.ENGINEER))
    adjudicate(clip_id, "normal", "the conveyor", actor=Actor("max", Role.MANAGER))
    adjudicate(other, "normal", "another clip's", actor=Actor("eve", Role.ENGINEER))
    rulings = clip_details(clip_id).rulings
    assert [(r.adjudicator, r.role, r.verdict, r.anomaly_type, r.reason) for r in rulings] == [
        ("eve", "engineer", "abnormal", "bearing", "whine at 2 s"),
        ("max", "manager", "normal", None, "the conveyor"),
    ]
    assert rulings[0].created_at <= rulings[1].created_at
    assert [(v.annotator, v.verdict) for v in clip_details(clip_id).history] == [("ana", "abnormal"), ("bo", "normal")]


def test_clip_details_of_an_unknown_clip_is_none(seeded):
    assert clip_details(99999) is None
    assert clip_details(-1) is None


def test_clip_details_without_an_active_model(seeded):
    _, _, rows = _rows("fan/id_00")
    with session_scope(write=True) as session:
        session.execute(update(Machine).values(active_model_id=None))
    d = clip_details(rows[0][0])
    assert (d.clip_id, d.machine, d.model_id, d.score, d.threshold) == (rows[0][0], "fan/id_00", None, None, None)
    assert (d.frame_errors, d.band_errors, d.flagged) == ([], [], False)


def _typical(rows, exclude: int | None = None) -> tuple[list[int], list[float], float]:
    train = [(c, s) for c, label, split, s, _ in rows if label == "normal" and split == "train" and c != exclude]
    ids = [c for c, _ in train]
    scores = [s for _, s in train]
    return ids, scores, float(np.median(scores))


@pytest.mark.parametrize("key", ["fan/id_00", "fan/id_02"])
def test_typical_normal_clip_is_the_median_training_clip_of_the_same_machine(seeded, key):
    _, _, rows = _rows(key)
    ids, scores, median = _typical(rows)
    assert len(ids) >= 3
    distance = {c: abs(s - median) for c, s in zip(ids, scores, strict=True)}
    for clip_id, _, split, *_ in rows:
        if split == "train":
            continue  # a training clip is never its own comparison; see the next test
        typical = typical_normal_clip(clip_id)
        assert typical in ids
        assert distance[typical] == min(distance.values())
        if len(ids) % 2:
            assert scores[ids.index(typical)] == median


def test_typical_normal_clip_of_a_training_clip_is_another_one(seeded):
    _, _, rows = _rows("fan/id_02")
    ids, scores, median = _typical(rows)
    middle = ids[int(np.argmin([abs(s - median) for s in scores]))]
    typical = typical_normal_clip(middle)
    assert typical != middle
    others, other_scores, other_median = _typical(rows, exclude=middle)
    assert typical in others
    assert abs(other_scores[others.index(typical)] - other_median) == min(abs(s - other_median) for s in other_scores)


def test_typical_normal_clip_is_none_without_a_model_or_clip(seeded):
    _, _, rows = _rows("fan/id_00")
    assert typical_normal_clip(99999) is None
    with session_scope(write=True) as session:
        session.execute(update(Machine).values(active_model_id=None))
    assert typical_normal_clip(rows[0][0]) is None
