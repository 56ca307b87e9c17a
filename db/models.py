"""Typed SQLAlchemy 2.0 models: machines, clips, detector models, scores, thresholds,
annotations, adjudications, exports, training jobs, rejected files, the notifications outbox, users,
failed sign-ins and the audit log.

Schema changes go through Alembic (``db/migrations``); never ``create_all``.
Annotations and thresholds are append-only histories: the latest row is current.
Every bounded text column takes its length from :mod:`core.vocabulary`, the one table of text lengths
that ``core`` also checks inputs against before they get here (PostgreSQL enforces lengths, SQLite does
not); text without a natural bound is ``Text``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.vocabulary import (
    ANOMALY_TYPE_LENGTH,
    AUDIT_ACTION_LENGTH,
    BACKEND_NAME_LENGTH,
    CONTENT_HASH_LENGTH,
    DETECTOR_NAME_LENGTH,
    EMAIL_LENGTH,
    MACHINE_ID_LENGTH,
    MACHINE_TYPE_LENGTH,
    MODEL_SCOPE_LENGTH,
    PERSON_NAME_LENGTH,
    REASON_LENGTH,
    SHORT_WORD_LENGTH,
    STATE_LENGTH,
    THRESHOLD_METHOD_LENGTH,
    WORD_LENGTH,
    JobState,
    Label,
    Role,
    Split,
    SplitSource,
    Verdict,
)
from db.base import Base

LABELS = tuple(label.value for label in Label)
SPLITS = tuple(split.value for split in Split)
VERDICTS = tuple(verdict.value for verdict in Verdict)
LABEL_VERDICTS = (Verdict.NORMAL.value, Verdict.ABNORMAL.value)  # what an adjudication may say
ROLES = tuple(role.value for role in Role)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


Timestamp = DateTime(timezone=True)


class Machine(Base):
    """One machine, known by its type and id (``fan/id_00``; DCASE 2021+: ``fan/section_00``)."""

    __tablename__ = "machines"
    __table_args__ = (UniqueConstraint("machine_type", "machine_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    machine_type: Mapped[str] = mapped_column(String(MACHINE_TYPE_LENGTH))
    machine_id: Mapped[str] = mapped_column(String(MACHINE_ID_LENGTH))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    active_model_id: Mapped[int | None] = mapped_column(ForeignKey("detector_models.id", ondelete="SET NULL"))

    clips: Mapped[list[Clip]] = relationship(back_populates="machine")
    active_model: Mapped[DetectorModel | None] = relationship()

    @property
    def key(self) -> str:
        return f"{self.machine_type}/{self.machine_id}"


class Clip(Base):
    """A recording, registered once per content (``content_hash`` is the SHA-256 of its bytes).

    ``split`` is the layout's train/test hint where it has one (``split_source`` "layout"),
    else the deterministic split of :mod:`core.datasets.splits` (``split_source`` "assigned").
    """

    __tablename__ = "clips"
    __table_args__ = (
        CheckConstraint(_one_of("label", LABELS), name="label"),
        CheckConstraint(_one_of("split", SPLITS), name="split"),
        # a machine's clips by label, rate and time, read from the index alone: drift's normal candidates, the
        # training clips' rates, the clips at another rate
        Index(None, "machine_pk", "label", "sample_rate", "ingested_at", "split", "id"),
        Index(None, "machine_pk", "ingested_at", "id"),  # newest first per machine: triage, drift; Overview's counts
        Index(None, "id", "machine_pk"),  # a clip's machine without reading its row: Overview's grouped counts
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(CONTENT_HASH_LENGTH), unique=True)
    machine_pk: Mapped[int] = mapped_column(ForeignKey("machines.id", ondelete="RESTRICT"))
    label: Mapped[str] = mapped_column(String(WORD_LENGTH), default=Label.UNKNOWN.value)
    split: Mapped[str] = mapped_column(String(SHORT_WORD_LENGTH), default=Split.NONE.value)
    split_source: Mapped[str] = mapped_column(
        String(SHORT_WORD_LENGTH), default=SplitSource.LAYOUT.value, server_default="layout"
    )
    layout: Mapped[str] = mapped_column(String(WORD_LENGTH), default="plain")
    snr_db: Mapped[float | None] = mapped_column(Float)
    domain: Mapped[str | None] = mapped_column(String(WORD_LENGTH))
    sample_rate: Mapped[int] = mapped_column(Integer)
    n_channels: Mapped[int] = mapped_column(Integer)
    duration_s: Mapped[float] = mapped_column(Float)
    n_bytes: Mapped[int] = mapped_column(BigInteger)
    ingested_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, index=True)

    machine: Mapped[Machine] = relationship(back_populates="clips")


class DetectorModel(Base):
    """A trained detector: one version of ``detector`` for a ``scope`` (``fan/id_00`` or ``fan``)."""

    __tablename__ = "detector_models"
    __table_args__ = (UniqueConstraint("detector", "scope", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    detector: Mapped[str] = mapped_column(String(DETECTOR_NAME_LENGTH))
    scope: Mapped[str] = mapped_column(String(MODEL_SCOPE_LENGTH))
    version: Mapped[int] = mapped_column(Integer, default=1)
    artifact_path: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(WORD_LENGTH), default="ready")
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    @property
    def hyper_parameters(self) -> dict[str, Any]:
        """The detector's hyper-parameters as trained (``params["detector"]``; empty when none were saved)."""
        return (self.params or {}).get("detector") or {}

    @property
    def front_end(self) -> str | None:
        """The detector's front end as trained (None for a detector without one, or a model trained before front
        ends)."""
        return self.hyper_parameters.get("front_end")


class Score(Base):
    """A model's anomaly score for a clip (higher means more abnormal).

    ``frames`` keeps ``frame_errors`` (one per feature vector, i.e. per hop in time) and
    ``band_errors`` (one per mel band) compactly, as little-endian float16 arrays behind a 4-byte
    frame count (:func:`db.frames.pack_errors`; about 0.8 kB for a 10 s clip, against about 3 kB as
    JSON), so pages can show when and where a clip is abnormal.  ``details`` is JSON for anything
    else (rows written before revision 0009 had their errors moved into ``frames``).

    ``(model_id, score, clip_id)`` serves the triage queue (flagged clips, highest score or closest to
    the threshold first, ``LIMIT`` in SQL), the threshold pages' counts and histograms, and Overview's
    flagged counts without reading the rows (which hold ``frames``).
    """

    __tablename__ = "scores"
    __table_args__ = (UniqueConstraint("clip_id", "model_id"), Index(None, "model_id", "score", "clip_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(ForeignKey("detector_models.id", ondelete="CASCADE"), index=True)
    score: Mapped[float] = mapped_column(Float)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    frames: Mapped[bytes | None] = mapped_column(LargeBinary)
    computed_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Threshold(Base):
    """One setting of a model's decision threshold; the latest row is the active one."""

    __tablename__ = "thresholds"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("detector_models.id", ondelete="CASCADE"), index=True)
    value: Mapped[float] = mapped_column(Float)
    method: Mapped[str] = mapped_column(String(THRESHOLD_METHOD_LENGTH), default="manual")
    set_by: Mapped[str] = mapped_column(String(PERSON_NAME_LENGTH))
    reason: Mapped[str] = mapped_column(Text, default="")
    set_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Annotation(Base):
    """A pilot's verdict on a clip. Append-only: an undo is a new row pointing at the one it undoes."""

    __tablename__ = "annotations"
    __table_args__ = (
        CheckConstraint(_one_of("verdict", VERDICTS), name="verdict"),
        Index(None, "clip_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"))
    annotator: Mapped[str] = mapped_column(String(PERSON_NAME_LENGTH))
    verdict: Mapped[str] = mapped_column(String(WORD_LENGTH))
    anomaly_type: Mapped[str | None] = mapped_column(String(ANOMALY_TYPE_LENGTH))
    note: Mapped[str] = mapped_column(Text, default="")
    undoes_id: Mapped[int | None] = mapped_column(ForeignKey("annotations.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # the annotator's role when they judged (None: not known, e.g. a name the CLI's operator recorded for
    # someone without an account, or a verdict older than this column)
    role: Mapped[str | None] = mapped_column(String(WORD_LENGTH))


class Adjudication(Base):
    """An adjudicator's final verdict on a clip (engineer or higher), with the reason.  Append-only: the
    latest row of a clip stands, and the label policy puts it above every individual verdict."""

    __tablename__ = "adjudications"
    __table_args__ = (
        CheckConstraint(_one_of("verdict", LABEL_VERDICTS), name="verdict"),
        CheckConstraint(_one_of("role", ROLES), name="role"),
        Index(None, "clip_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"))
    adjudicator: Mapped[str] = mapped_column(String(PERSON_NAME_LENGTH))
    role: Mapped[str] = mapped_column(String(WORD_LENGTH))  # the adjudicator's role when they ruled
    verdict: Mapped[str] = mapped_column(String(WORD_LENGTH))  # normal or abnormal: never unsure
    anomaly_type: Mapped[str | None] = mapped_column(String(ANOMALY_TYPE_LENGTH))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class AnomalyType(Base):
    """A kind of fault the team names when confirming an anomaly (the list is team-editable)."""

    __tablename__ = "anomaly_types"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(ANOMALY_TYPE_LENGTH), unique=True)
    created_by: Mapped[str] = mapped_column(String(PERSON_NAME_LENGTH), default="system")
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Export(Base):
    """A curated dataset written to disk for supervised training."""

    __tablename__ = "exports"

    id: Mapped[int] = mapped_column(primary_key=True)
    out_dir: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(PERSON_NAME_LENGTH), default="")
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class TrainingJob(Base):
    """A supervised training run, local or in the cloud, followed until it ends."""

    __tablename__ = "training_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    backend: Mapped[str] = mapped_column(String(BACKEND_NAME_LENGTH))
    status: Mapped[str] = mapped_column(String(STATE_LENGTH), default=JobState.PENDING.value)
    message: Mapped[str] = mapped_column(Text, default="")
    export_id: Mapped[int | None] = mapped_column(ForeignKey("exports.id", ondelete="SET NULL"))
    model_id: Mapped[int | None] = mapped_column(ForeignKey("detector_models.id", ondelete="SET NULL"))
    external: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)


class RejectedFile(Base):
    """A file that could not be ingested, and why (``reason`` is a :class:`core.errors.Reason` value)."""

    __tablename__ = "rejected_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(REASON_LENGTH))
    detail: Mapped[str] = mapped_column(Text, default="")
    seen_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


NOTIFICATION_STATES = ("pending", "sent", "failed")


class Notification(Base):
    """An outbox row: tell ``channel`` (``webhook`` or ``sns``) at ``target`` that a clip was flagged.

    Unique per clip, model and channel, so a restarted watcher never notifies twice;
    ``attempts`` and ``next_attempt_at`` drive the sender's retries with backoff.  A webhook's
    ``target`` is never its URL (a secret) but its scheme and host and the URL's fingerprint
    (``core.workflows.notify.webhook_reference``); an SNS topic's is its ARN.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("clip_id", "model_id", "channel"),
        CheckConstraint(_one_of("status", NOTIFICATION_STATES), name="status"),
        Index(None, "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(ForeignKey("detector_models.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(WORD_LENGTH))
    target: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(WORD_LENGTH), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    next_attempt_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(Timestamp)


class User(Base):
    """A person who may sign in: a local account (an argon2 ``password_hash``) or, with no hash, an
    OpenID Connect user known by ``email``.  Never deleted: disabling keeps what they did attributable."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_one_of("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(PERSON_NAME_LENGTH), unique=True)
    email: Mapped[str | None] = mapped_column(String(EMAIL_LENGTH), unique=True, index=True)  # lower case
    role: Mapped[str] = mapped_column(String(WORD_LENGTH))
    password_hash: Mapped[str | None] = mapped_column(Text)  # None: signs in with OpenID Connect only
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class FailedSignIn(Base):
    """One wrong password (or unknown name) given for ``name``: what sign-in rate limiting counts."""

    __tablename__ = "failed_sign_ins"
    __table_args__ = (Index(None, "name", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(PERSON_NAME_LENGTH))
    at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class AuditEvent(Base):
    """Who (``user``, with the ``role`` they had) did what (``action``) to what (``target``), when.
    Append-only."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, index=True)
    user: Mapped[str] = mapped_column(String(PERSON_NAME_LENGTH))
    role: Mapped[str] = mapped_column(String(WORD_LENGTH))
    action: Mapped[str] = mapped_column(String(AUDIT_ACTION_LENGTH))
    target: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[str] = mapped_column(Text, default="")
