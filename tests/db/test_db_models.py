"""db.models: constraints that keep the data honest, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import String, Text, select
from sqlalchemy.exc import IntegrityError

import core.vocabulary as voc
from db.base import Base
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


# --- text lengths: one table (core.vocabulary), the same on every backend --------------------------------------------

BOUNDED = {  # every bounded text column, and the length from core.vocabulary it must have
    ("annotations", "role"): voc.WORD_LENGTH,  # a Role value (or none known)
    ("adjudications", "adjudicator"): voc.PERSON_NAME_LENGTH,  # checked by core.access like every name
    ("adjudications", "role"): voc.WORD_LENGTH,
    ("adjudications", "verdict"): voc.WORD_LENGTH,
    ("adjudications", "anomaly_type"): voc.ANOMALY_TYPE_LENGTH,  # checked by review.adjudicate
    ("machines", "machine_type"): voc.MACHINE_TYPE_LENGTH,  # folder names: checked at ingest and upload
    ("machines", "machine_id"): voc.MACHINE_ID_LENGTH,
    ("clips", "content_hash"): voc.CONTENT_HASH_LENGTH,
    ("clips", "label"): voc.WORD_LENGTH,
    ("clips", "split"): voc.SHORT_WORD_LENGTH,
    ("clips", "split_source"): voc.SHORT_WORD_LENGTH,
    ("clips", "layout"): voc.WORD_LENGTH,
    ("clips", "domain"): voc.WORD_LENGTH,
    ("detector_models", "detector"): voc.DETECTOR_NAME_LENGTH,
    ("detector_models", "scope"): voc.MODEL_SCOPE_LENGTH,
    ("detector_models", "status"): voc.WORD_LENGTH,
    ("thresholds", "method"): voc.THRESHOLD_METHOD_LENGTH,  # checked by set_threshold
    ("thresholds", "set_by"): voc.PERSON_NAME_LENGTH,  # people's names: checked by core.access
    ("annotations", "annotator"): voc.PERSON_NAME_LENGTH,
    ("annotations", "verdict"): voc.WORD_LENGTH,
    ("annotations", "anomaly_type"): voc.ANOMALY_TYPE_LENGTH,  # checked by record_verdict
    ("anomaly_types", "name"): voc.ANOMALY_TYPE_LENGTH,
    ("anomaly_types", "created_by"): voc.PERSON_NAME_LENGTH,
    ("exports", "created_by"): voc.PERSON_NAME_LENGTH,
    ("training_jobs", "backend"): voc.BACKEND_NAME_LENGTH,
    ("training_jobs", "status"): voc.STATE_LENGTH,
    ("rejected_files", "reason"): voc.REASON_LENGTH,
    ("notifications", "channel"): voc.WORD_LENGTH,
    ("notifications", "status"): voc.WORD_LENGTH,
    ("users", "name"): voc.PERSON_NAME_LENGTH,
    ("users", "email"): voc.EMAIL_LENGTH,
    ("users", "role"): voc.WORD_LENGTH,
    ("failed_sign_ins", "name"): voc.PERSON_NAME_LENGTH,
    ("audit_events", "user"): voc.PERSON_NAME_LENGTH,
    ("audit_events", "role"): voc.WORD_LENGTH,
    ("audit_events", "action"): voc.AUDIT_ACTION_LENGTH,
}


def test_every_bounded_text_column_takes_its_length_from_the_vocabulary():
    """A new bounded column must be added here, with the check that keeps its inputs within it (or be Text)."""
    columns = [(table.name, c.name, c.type) for table in Base.metadata.tables.values() for c in table.columns]
    text = [(t, c, type_) for t, c, type_ in columns if isinstance(type_, String)]
    assert not [(t, c) for t, c, type_ in text if not isinstance(type_, Text) and type_.length is None]
    assert {(t, c): type_.length for t, c, type_ in text if type_.length is not None} == BOUNDED


def _words() -> list[tuple[str, list[str], int]]:
    """The product's own words that bounded columns hold: (what, words, the column's length)."""
    from core.access import Action
    from core.detection.registry import detector_names
    from core.errors import Reason
    from core.supervised import local, rekognition
    from core.workflows.tuning import RECORDED_METHODS
    from db.models import NOTIFICATION_STATES

    detectors = detector_names() + detector_names(supervised=True) + [local.DETECTOR, rekognition.DETECTOR]
    return [
        ("labels", list(voc.Label), voc.WORD_LENGTH), ("verdicts", list(voc.Verdict), voc.WORD_LENGTH),
        ("roles", list(voc.Role), voc.WORD_LENGTH), ("splits", list(voc.Split), voc.SHORT_WORD_LENGTH),
        ("split sources", list(voc.SplitSource), voc.SHORT_WORD_LENGTH),
        ("job states", list(voc.JobState), voc.STATE_LENGTH), ("reasons", list(Reason), voc.REASON_LENGTH),
        ("actions", list(Action) + ["undo", "add user", "set role", "disable user", "sign in"],
         voc.AUDIT_ACTION_LENGTH),
        ("layouts", ["plain", "mimii", "dcase2020", "dcase2021"], voc.WORD_LENGTH),
        ("domains", ["source", "target"], voc.WORD_LENGTH),
        ("detectors", detectors, voc.DETECTOR_NAME_LENGTH),
        ("backends", [local.LocalTrainer.name, rekognition.RekognitionTrainer.name], voc.BACKEND_NAME_LENGTH),
        ("threshold methods", [*RECORDED_METHODS, "default"], voc.THRESHOLD_METHOD_LENGTH),
        ("model states", ["ready", "external"], voc.WORD_LENGTH),
        ("channels", ["webhook", "sns"], voc.WORD_LENGTH),
        ("notification states", list(NOTIFICATION_STATES), voc.WORD_LENGTH),
    ]  # fmt: skip


def test_the_products_own_words_fit_their_columns():
    too_long = [(what, word) for what, words, limit in _words() for word in words if len(word) > limit]
    assert not too_long
    assert voc.MODEL_SCOPE_LENGTH >= voc.MACHINE_TYPE_LENGTH + 1 + voc.MACHINE_ID_LENGTH  # a scope is type/id


def test_text_at_its_columns_length_is_stored_on_every_backend(any_db_url):
    """Exactly as long as the vocabulary allows: kept whole (the lengths really are the database's)."""
    machine = Machine(machine_type="t" * voc.MACHINE_TYPE_LENGTH, machine_id="i" * voc.MACHINE_ID_LENGTH)
    with session_scope(any_db_url, write=True) as session:
        clip = _clip(machine)
        session.add(clip)
        session.flush()
        session.add(Annotation(clip_id=clip.id, annotator="a" * voc.PERSON_NAME_LENGTH, verdict="abnormal",
                               anomaly_type="k" * voc.ANOMALY_TYPE_LENGTH))  # fmt: skip
    with session_scope(any_db_url) as session:
        row = session.scalars(select(Annotation)).one()
        assert len(row.annotator) == voc.PERSON_NAME_LENGTH and len(row.anomaly_type) == voc.ANOMALY_TYPE_LENGTH
        assert session.scalars(select(Machine)).one().key == machine.key
