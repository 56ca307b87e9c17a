"""Queries the rest of the product uses; pages and commands never write SQL themselves."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Clip, Machine, RejectedFile


def get_or_create_machine(session: Session, machine_type: str, machine_id: str) -> Machine:
    """The machine ``machine_type/machine_id``, created if new."""
    machine = session.scalar(
        select(Machine).where(Machine.machine_type == machine_type, Machine.machine_id == machine_id)
    )
    if machine is None:
        machine = Machine(machine_type=machine_type, machine_id=machine_id)
        session.add(machine)
        session.flush()
    return machine


def known_hashes(session: Session, hashes: list[str]) -> set[str]:
    """Those of ``hashes`` already registered as clips."""
    if not hashes:
        return set()
    return set(session.scalars(select(Clip.content_hash).where(Clip.content_hash.in_(hashes))))


def record_rejection(session: Session, path: str, reason: str, detail: str) -> None:
    session.add(RejectedFile(path=path, reason=reason, detail=detail))


@dataclass(frozen=True)
class ClipCount:
    machine_type: str
    machine_id: str
    label: str
    split: str
    n_clips: int


def clip_counts(session: Session) -> list[ClipCount]:
    """Clips per machine type, machine id, label and split, sorted."""
    rows = session.execute(
        select(Machine.machine_type, Machine.machine_id, Clip.label, Clip.split, func.count(Clip.id))
        .join(Clip.machine)
        .group_by(Machine.machine_type, Machine.machine_id, Clip.label, Clip.split)
        .order_by(Machine.machine_type, Machine.machine_id, Clip.label, Clip.split)
    )
    return [ClipCount(*row) for row in rows]


def count_clips(session: Session) -> int:
    return session.scalar(select(func.count(Clip.id))) or 0


def recent_rejections(session: Session, limit: int = 50) -> list[RejectedFile]:
    """The latest rejected files, newest first."""
    return list(session.scalars(select(RejectedFile).order_by(RejectedFile.id.desc()).limit(limit)))
