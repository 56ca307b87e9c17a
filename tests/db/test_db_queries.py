"""db.queries: the queries pages and commands share, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.workflows.labels import labels_for_clips
from db.models import Clip, DetectorModel, Machine, utcnow
from db.queries import (
    add_annotation,
    add_anomaly_type,
    add_scores,
    anomaly_type_names,
    clip_scores,
    clips_per_day,
    counts_for_machine,
    get_or_create_machine,
    last_undoable,
    machine_by_key,
    machines_matching,
    unscored_clips,
)
from db.session import session_scope


def _clip(machine: Machine, n: int, **overrides) -> Clip:
    values = dict(path=f"/c{n}.wav", content_hash=f"{n:064x}", machine=machine, label="normal", split="test",
                  sample_rate=16000, n_channels=1, duration_s=10.0, n_bytes=1)  # fmt: skip
    return Clip(**(values | overrides))


@pytest.fixture
def world(any_db_url) -> str:
    with session_scope(any_db_url, write=True) as session:
        fan0 = get_or_create_machine(session, "fan", "id_00")
        assert get_or_create_machine(session, "fan", "id_00") is fan0
        fan2, pump = get_or_create_machine(session, "fan", "id_02"), get_or_create_machine(session, "pump", "id_00")
        session.add_all([_clip(fan0, 1), _clip(fan0, 2), _clip(fan2, 3), _clip(pump, 4)])
        session.add_all([_clip(fan0, 5, ingested_at=utcnow() - timedelta(days=30))])
        session.add(DetectorModel(detector="mahalanobis", scope="fan/id_00", version=1, params={}, provenance={}))
    return any_db_url


def test_machines_matching_by_key_type_or_all(world):
    with session_scope(world) as session:
        assert [m.key for m in machines_matching(session)] == ["fan/id_00", "fan/id_02", "pump/id_00"]
        assert [m.key for m in machines_matching(session, "fan")] == ["fan/id_00", "fan/id_02"]
        assert [m.key for m in machines_matching(session, "fan/id_02")] == ["fan/id_02"]
        assert machines_matching(session, "valve") == []


@pytest.mark.parametrize("spec", ["%", "_", "%/%", "f%", "fan/%", "fan/id_0_", "f_n/id_00", "___/id_00"])
def test_machine_names_are_compared_exactly_never_as_like_patterns(world, spec):
    with session_scope(world) as session:
        assert machines_matching(session, spec) == []
        assert machine_by_key(session, spec) is None


def test_machine_by_key_names_exactly_one_machine(world):
    with session_scope(world) as session:
        assert machine_by_key(session, "fan/id_02").key == "fan/id_02"
        assert machine_by_key(session, "fan") is None  # a type is not one machine
        assert machine_by_key(session, "fan/id_09") is None


def test_scores_are_stored_once_and_unscored_clips_shrink(world):
    with session_scope(world, write=True) as session:
        (fan0,) = machines_matching(session, "fan/id_00")
        model_id = session.query(DetectorModel.id).scalar()
        assert [c.id for c in unscored_clips(session, model_id, [fan0.id])] == [1, 2, 5]
        add_scores(session, model_id, {1: 0.5, 2: 1.5}, {1: {"band_errors": [1.0]}})
        add_scores(session, model_id, {1: 9.9})  # already scored: left as it was
    with session_scope(world) as session:
        assert clip_scores(session, model_id, [1, 2, 3]) == {1: 0.5, 2: 1.5}
        assert [c.id for c in unscored_clips(session, model_id, [fan0.id])] == [5]
        assert counts_for_machine(session, machines_matching(session, "fan/id_00")[0]) == (0, 0, 0, 0)  # none active


def test_standing_verdicts_follow_undo_rows(world):
    with session_scope(world, write=True) as session:
        first = add_annotation(session, 1, "ana", "abnormal", "bearing")
        add_annotation(session, 1, "ana", "normal")
        second = last_undoable(session, "ana")
        add_annotation(session, 2, "bob", "unsure")
        undo = add_annotation(session, 1, "ana", second.verdict)
        undo.undoes_id = second.id
    with session_scope(world) as session:
        clips = [session.get(Clip, i) for i in (1, 2, 3)]
        labels = labels_for_clips(session, clips)
        assert {i: {who: v.verdict for who, v in labels[i].verdicts.items()} for i in (1, 2, 3)} == {
            1: {"ana": "abnormal"}, 2: {"bob": "unsure"}, 3: {}}
        assert last_undoable(session, "ana").id == first.id
        assert last_undoable(session, "nobody") is None


def test_clips_per_day_counts_the_last_week(world):
    with session_scope(world) as session:
        (fan0,) = machines_matching(session, "fan/id_00")
        assert clips_per_day(session, fan0.id) == pytest.approx(2 / 7)
        assert clips_per_day(session, fan0.id, days=60) == pytest.approx(3 / 60)


def test_anomaly_types_are_seeded_and_extended_once(world):
    with session_scope(world, write=True) as session:
        assert {"bearing", "imbalance", "other"} <= set(anomaly_type_names(session))
        add_anomaly_type(session, "whistle", "ana")
        add_anomaly_type(session, "whistle", "bob")
    with session_scope(world) as session:
        assert anomaly_type_names(session).count("whistle") == 1
