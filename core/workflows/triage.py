"""The pilot team's loop: what the active model flags, verdicts on it, undo, and disagreements.

Verdicts are append-only: an undo is a new row pointing at the verdict it cancels,
so nothing a pilot said is ever lost.  A clip is *flagged* when its active model's
score is above the active threshold; it leaves the queue once it has a verdict.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select

from core.errors import BadInputError, Reason
from db.models import VERDICTS, Annotation, Clip, Machine
from db.queries import (
    active_threshold,
    add_annotation,
    add_anomaly_type,
    clip_by_hash,
    clip_by_path,
    clip_ids_of,
    clip_paths,
    disputed,
    effective_verdicts,
    last_undoable,
    machine_by_key,
    machines_matching,
    scored_clips,
    standing_verdicts,
)
from db.session import session_scope, write_transaction

QUEUE_ORDERS = {
    "highest score first": "score",
    "closest to the threshold first": "margin",
    "newest first": "newest",
}


@dataclass(frozen=True)
class MachineSummary:
    """Per machine: clips, how many the active model flags, and what the pilots said about them."""

    machine: str
    clips: int
    flagged: int
    confirmed: int
    rejected: int
    unsure: int
    unreviewed: int
    detector: str | None
    version: int | None
    threshold: float | None
    last_ingested_at: datetime | None
    last_verdict_at: datetime | None


@dataclass(frozen=True)
class QueueItem:
    clip_id: int
    path: str
    score: float
    threshold: float
    label: str
    ingested_at: datetime


def _flagged(session, machine: Machine) -> tuple[list[tuple[Clip, float]], float | None]:
    model = machine.active_model
    if model is None:
        return [], None
    threshold = active_threshold(session, model.id)
    if threshold is None:
        return [], None
    rows = scored_clips(session, model.id, [machine.id])
    return [(clip, value) for clip, value in rows if value > threshold.value], threshold.value


def machine_summaries(url: str | None = None) -> list[MachineSummary]:
    """One summary per machine, sorted by machine key."""
    out = []
    with session_scope(url) as session:
        for machine in machines_matching(session):
            flagged, threshold = _flagged(session, machine)
            clip_ids = list(session.scalars(select(Clip.id).where(Clip.machine_pk == machine.id)))
            verdicts = effective_verdicts(session, clip_ids)
            flagged_ids = {clip.id for clip, _ in flagged}
            model = machine.active_model
            out.append(
                MachineSummary(
                    machine=machine.key,
                    clips=len(clip_ids),
                    flagged=len(flagged_ids),
                    confirmed=sum(v == "abnormal" for v in verdicts.values()),
                    rejected=sum(v == "normal" for v in verdicts.values()),
                    unsure=sum(v == "unsure" for v in verdicts.values()),
                    unreviewed=len(flagged_ids - verdicts.keys()),
                    detector=model.detector if model else None,
                    version=model.version if model else None,
                    threshold=threshold,
                    last_ingested_at=session.scalar(
                        select(func.max(Clip.ingested_at)).where(Clip.machine_pk == machine.id)
                    ),
                    last_verdict_at=session.scalar(
                        select(func.max(Annotation.created_at)).where(Annotation.clip_id.in_(clip_ids))
                    ),
                )
            )
    return out


def triage_queue(machine: str, order: str = "score", *, url: str | None = None) -> list[QueueItem]:
    """Flagged clips of ``machine`` (``type/id``) without a verdict, in ``order``:
    ``score`` (highest first), ``margin`` (closest to the threshold first) or ``newest``."""
    if order not in QUEUE_ORDERS.values():
        raise BadInputError(
            Reason.INVALID_PARAMETER, f"unknown queue order {order!r}; use one of {list(QUEUE_ORDERS.values())}"
        )
    with session_scope(url) as session:
        found = machine_by_key(session, machine)
        if found is None:
            return []
        flagged, threshold = _flagged(session, found)
        verdicts = effective_verdicts(session, [clip.id for clip, _ in flagged])
        items = [
            QueueItem(clip.id, clip.path, value, threshold, clip.label, clip.ingested_at)
            for clip, value in flagged
            if clip.id not in verdicts
        ]
    keys = {
        "score": lambda item: -item.score,
        "margin": lambda item: item.score - item.threshold,
        "newest": lambda item: (-item.ingested_at.timestamp(), -item.clip_id),
    }
    return sorted(items, key=keys[order])


def resolve_clip(spec: str, *, url: str | None = None) -> int:
    """The id of the clip ``spec`` names: a clip id, or a file path (registered under that path, or
    with the same content under another name)."""
    text = str(spec).strip()
    with session_scope(url) as session:
        if text.isdigit():
            if session.get(Clip, int(text)) is None:
                raise BadInputError(Reason.NOT_FOUND, f"no clip with id {text}")
            return int(text)
        path = Path(text).resolve()
        found = clip_by_path(session, str(path))
        if found is None and path.is_file():
            with open(path, "rb") as fh:
                found = clip_by_hash(session, hashlib.file_digest(fh, "sha256").hexdigest())
        if found is None:
            raise BadInputError(Reason.NOT_FOUND, "not a registered clip (ingest it first)", text)
        return found.id


def record_verdict(
    clip_id: int,
    annotator: str,
    verdict: str,
    *,
    anomaly_type: str | None = None,
    note: str = "",
    url: str | None = None,
) -> int:
    """Store a pilot's verdict on a clip at once; returns the annotation id.

    Safe with many annotators writing at once, from any number of processes: every
    verdict is a new row (never an update), and a write refused by a concurrent one is
    retried from the start, so each call stores exactly one row.

    ``verdict`` is ``normal``, ``abnormal`` or ``unsure``; an ``anomaly_type`` is kept
    only with ``abnormal`` and is added to the team's list when new.
    """
    annotator = annotator.strip()
    if not annotator:
        raise BadInputError(Reason.INVALID_PARAMETER, "an annotator name is required")
    if verdict not in VERDICTS:
        raise BadInputError(Reason.INVALID_PARAMETER, f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
    kind = (anomaly_type or "").strip() or None if verdict == "abnormal" else None

    def store(session) -> int:
        if session.get(Clip, clip_id) is None:
            raise BadInputError(Reason.NOT_FOUND, f"no clip with id {clip_id}")
        if kind:
            add_anomaly_type(session, kind, annotator)
        return add_annotation(session, clip_id, annotator, verdict, kind, note.strip()).id

    return write_transaction(store, url)


def other_verdicts(clip_id: int, annotator: str, *, url: str | None = None) -> dict[str, str]:
    """``{annotator: verdict}`` standing on the clip from everyone but ``annotator``: what a pilot is
    told after judging a clip someone else judged meanwhile."""
    with session_scope(url) as session:
        standing = standing_verdicts(session, [clip_id]).get(clip_id, {})
    return {who: row.verdict for who, row in standing.items() if who != annotator.strip()}


def undo_last(annotator: str, *, url: str | None = None) -> Annotation | None:
    """Cancel the annotator's latest verdict by appending an undo row; returns the undone verdict."""
    with session_scope(url, write=True) as session:
        target = last_undoable(session, annotator.strip())
        if target is None:
            return None
        session.add(
            Annotation(
                clip_id=target.clip_id,
                annotator=target.annotator,
                verdict=target.verdict,
                anomaly_type=target.anomaly_type,
                note="undo",
                undoes_id=target.id,
            )  # fmt: skip
        )
        return target


def review_list(machine: str | None = None, *, url: str | None = None) -> list[dict]:
    """Clips on which annotators currently disagree (normal vs abnormal), with each one's verdict."""
    with session_scope(url) as session:
        pks = [m.id for m in machines_matching(session, machine)]
        standing = standing_verdicts(session, clip_ids_of(session, pks))
        paths = clip_paths(session, list(standing))
    return [
        {
            "clip_id": clip_id,
            "path": paths[clip_id],
            "verdicts": {who: row.verdict for who, row in by_annotator.items()},
        }
        for clip_id, by_annotator in sorted(standing.items())
        if disputed(by_annotator)
    ]
