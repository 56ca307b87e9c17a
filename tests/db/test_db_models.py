"""db.models: constraints that keep the data honest, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from db.models import Annotation, Clip, Machine, Score, Threshold
from db.session import session_scope


def _clip(machine: Machine, content_hash: str = "a" * 64, **overrides) -> Clip:
    values = dict(
        path="/x.wav",
        content_hash=content_hash,
        machine=machine,
        label="normal",
        split="none",
        sample_rate=16000,
        n_channels=1,
        duration_s=10.0,
        n_bytes=320044,
    )
    return Clip(**(values | overrides))


def test_clip_roundtrip_with_defaults(any_db_url):
    with session_scope(any_db_url, write=True) as session:
        session.add(_clip(Machine(machine_type="fan", machine_id="id_00"), n_bytes=3_000_000_000))
    with session_scope(any_db_url) as session:
        clip = session.scalars(select(Clip)).one()
        assert clip.machine.key == "fan/id_00"
        assert clip.n_bytes == 3_000_000_000
        assert clip.ingested_at is not None and clip.layout == "plain"


@pytest.mark.parametrize("field, value", [("label", "broken"), ("split", "dev")])
def test_label_and_split_are_constrained(any_db_url, field, value):
    with pytest.raises(IntegrityError), session_scope(any_db_url, write=True) as session:
        session.add(_clip(Machine(machine_type="fan", machine_id="id_00"), **{field: value}))


def test_content_hash_is_unique(any_db_url):
    with pytest.raises(IntegrityError), session_scope(any_db_url, write=True) as session:
        machine = Machine(machine_type="fan", machine_id="id_00")
        session.add_all([_clip(machine), _clip(machine, path="/y.wav")])


def test_machine_key_is_unique(any_db_url):
    with pytest.raises(IntegrityError), session_scope(any_db_url, write=True) as session:
        session.add_all(
            [Machine(machine_type="fan", machine_id="id_00"), Machine(machine_type="fan", machine_id="id_00")]
        )


def test_foreign_keys_are_enforced(any_db_url):
    with pytest.raises(IntegrityError), session_scope(any_db_url, write=True) as session:
        session.add(Score(clip_id=999, model_id=999, score=1.0))


def test_verdict_is_constrained_and_history_is_kept(any_db_url):
    with session_scope(any_db_url, write=True) as session:
        clip = _clip(Machine(machine_type="fan", machine_id="id_00"))
        session.add(clip)
        session.flush()
        first = Annotation(clip_id=clip.id, annotator="ana", verdict="abnormal", anomaly_type="bearing")
        session.add(first)
        session.flush()
        session.add(Annotation(clip_id=clip.id, annotator="ana", verdict="unsure", undoes_id=first.id))
    with session_scope(any_db_url) as session:
        assert [a.verdict for a in session.scalars(select(Annotation).order_by(Annotation.id))] == [
            "abnormal",
            "unsure",
        ]
    with pytest.raises(IntegrityError), session_scope(any_db_url, write=True) as session:
        session.add(Annotation(clip_id=clip.id, annotator="bob", verdict="maybe"))


def test_threshold_requires_a_model(any_db_url):
    with pytest.raises(IntegrityError), session_scope(any_db_url, write=True) as session:
        session.add(Threshold(model_id=12345, value=1.0, set_by="eve", reason="test"))
