"""The review queue and adjudication: the clips the pilots could not settle, and an engineer's final verdict.

A clip reaches the review queue when its annotators' standing verdicts say both normal and abnormal
(*disputed*) or say only unsure (*unsure*), and stays there, as *settled*, once an adjudication labels it.
Retraining offers the field clips it left out for want of a second opinion (their "normal" is one
annotator's, not trusted under ``TRAIN_FROM_VERDICTS=trusted``); they are listed when asked for.

An adjudication (:func:`adjudicate`, engineer or higher: :attr:`core.access.Action.ADJUDICATE`) is appended,
never updated, with its reason and the adjudicator's role, and audited in the same transaction; the label
policy (:mod:`core.workflows.labels`) puts the latest one of a clip above every individual verdict, so the
export, the Thresholds page, comparisons and retraining all follow it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.access import Action, Actor, require
from core.errors import BadInputError, Reason, check_text
from core.vocabulary import ANOMALY_TYPE_LENGTH, Label
from core.workflows.audit import record_event
from core.workflows.labels import ClipLabel, NotLearned, labels_for_clips, labels_for_machines, why_not_learned
from db.models import Clip, Machine
from db.queries import (
    add_adjudication,
    add_anomaly_type,
    adjudications_of_clips,
    clips_newest_first,
    machines_matching,
    models_for,
)
from db.session import session_scope, write_transaction

DISPUTED, UNSURE, SETTLED, SECOND_OPINION = "disputed", "unsure", "settled", "awaiting second opinion"
REVIEW_STATES = (DISPUTED, UNSURE, SETTLED)  # what `disputes` lists; SECOND_OPINION when asked for
OPEN_STATES = (DISPUTED, UNSURE, SECOND_OPINION)  # what still needs an adjudicator
QUEUE_ORDER = (*OPEN_STATES, SETTLED)  # the review queue's order: the clips annotators disagree on first
MAX_REASON = 2000


@dataclass(frozen=True)
class ReviewItem:
    """A clip in the review queue: every standing verdict (with its note, anomaly type and role) and its
    standing adjudication, if any."""

    clip_id: int
    machine: str
    path: str
    state: str  # one of REVIEW_STATES or SECOND_OPINION
    verdicts: list[dict]  # {"annotator", "verdict", "anomaly_type", "note", "role", "at"}
    adjudication: dict | None  # {"adjudicator", "role", "verdict", "anomaly_type", "reason", "at"}

    def as_json(self) -> dict:
        """The item as ``disputes --json`` prints it (times as ISO 8601)."""
        verdicts = [{**v, "at": v["at"].isoformat()} for v in self.verdicts]
        ruling = {**self.adjudication, "at": self.adjudication["at"].isoformat()} if self.adjudication else None
        return {"clip_id": self.clip_id, "machine": self.machine, "path": self.path, "state": self.state,
                "verdicts": verdicts, "adjudication": ruling}  # fmt: skip


def review_state(found: ClipLabel) -> str | None:
    """Where a clip stands in the review queue: settled (adjudicated), disputed, unsure (only unsure verdicts),
    or None (not a review matter)."""
    if found.settled or found.ruling is not None:
        return SETTLED
    if found.disputed:
        return DISPUTED
    return UNSURE if found.pilot_unsure else None


def review_queue(
    machine: str | None = None,
    *,
    settled: bool = True,
    second_opinions: bool = False,
    actor: Actor | None = None,
    url: str | None = None,
) -> list[ReviewItem]:
    """The review queue of the matching machines (``type/id``, ``type`` or all): disputed and unsure clips,
    settled ones unless ``settled`` is false, and with ``second_opinions`` the field clips the newest training of
    their machine left out for want of a second opinion (while they still wait for one); in the order of
    :data:`QUEUE_ORDER` (disputed first, settled last), each state by clip id.

    Needs :attr:`~core.access.Action.ADJUDICATE` (it shows every annotator's verdict)."""
    require(actor, Action.ADJUDICATE)
    out = []
    with session_scope(url) as session:
        for m in machines_matching(session, machine):
            clips = clips_newest_first(session, m.id)
            labels = labels_for_machines(session, clips, [m.id])
            offered = _offered(session, m, labels) if second_opinions else set()
            paths = {c.id: c.path for c in clips}
            for clip_id, found in labels.items():
                state = review_state(found) or (SECOND_OPINION if clip_id in offered else None)
                if state is not None and (settled or state != SETTLED):
                    out.append(_item(found, m.key, paths[clip_id], state))
    return sorted(out, key=lambda item: (QUEUE_ORDER.index(item.state), item.clip_id))


def _offered(session: Session, machine: Machine, labels: dict[int, ClipLabel]) -> set[int]:
    """Clips the newest training of ``machine`` left out for want of a second opinion, still waiting for one."""
    for model in models_for(session, machine):  # newest first
        if "awaiting_second_opinion" in (model.provenance or {}):
            ids = model.provenance["awaiting_second_opinion"]
            return {i for i in ids if i in labels and why_not_learned(labels[i]) is NotLearned.SECOND_OPINION}
    return set()


def _item(found: ClipLabel, machine: str, path: str, state: str) -> ReviewItem:
    verdicts = [{"annotator": v.annotator, "verdict": v.verdict.value, "anomaly_type": v.anomaly_type, "note": v.note,
                 "role": v.role.value if v.role else None, "at": v.at}
                for v in sorted(found.verdicts.values(), key=lambda v: v.annotation_id)]  # fmt: skip
    ruling = found.ruling
    adjudication = None if ruling is None else {
        "adjudicator": ruling.adjudicator, "role": ruling.role.value, "verdict": ruling.verdict.value,
        "anomaly_type": ruling.anomaly_type, "reason": ruling.reason, "at": ruling.at,
    }  # fmt: skip
    return ReviewItem(found.clip_id, machine, path, state, verdicts, adjudication)


def review_item(clip_id: int, *, actor: Actor | None = None, url: str | None = None) -> ReviewItem:
    """One clip as the review queue shows it (any clip: an adjudicator may overrule agreeing verdicts too)."""
    require(actor, Action.ADJUDICATE)
    with session_scope(url) as session:
        clip = session.get(Clip, clip_id)
        if clip is None:
            raise BadInputError(Reason.NOT_FOUND, f"no clip with id {clip_id}")
        found = labels_for_clips(session, [clip])[clip_id]
        return _item(found, clip.machine.key, clip.path, review_state(found) or "")


def adjudication_history(clip_id: int, *, actor: Actor | None = None, url: str | None = None) -> list[dict]:
    """Every adjudication of a clip, oldest first (the last one stands)."""
    require(actor, Action.ADJUDICATE)
    with session_scope(url) as session:
        rows = adjudications_of_clips(session, [clip_id])
        return [{"adjudicator": r.adjudicator, "role": r.role, "verdict": r.verdict, "anomaly_type": r.anomaly_type,
                 "reason": r.reason, "at": r.created_at} for r in rows]  # fmt: skip


def adjudicate(
    clip_id: int,
    verdict: str,
    reason: str,
    *,
    anomaly_type: str | None = None,
    actor: Actor | None = None,
    url: str | None = None,
) -> int:
    """Record the final verdict (``normal`` or ``abnormal``) on a clip with the ``reason``; returns its id.

    ``actor`` (default: the CLI's operator) needs the engineer role or higher and is recorded, with their
    role, as the adjudicator.  Appended (an earlier adjudication is kept, and overruled); audited in the same
    transaction.  An ``anomaly_type`` is kept only with ``abnormal`` and joins the team's list when new."""
    actor = require(actor, Action.ADJUDICATE)
    if verdict not in (Label.NORMAL, Label.ABNORMAL):
        raise BadInputError(Reason.INVALID_PARAMETER, f"an adjudication is normal or abnormal, got {verdict!r}")
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise BadInputError(Reason.INVALID_PARAMETER, f"give the reason for the final verdict (1 to {MAX_REASON} "
                            "characters)")  # fmt: skip
    kind = (anomaly_type or "").strip() or None if verdict == Label.ABNORMAL else None
    if kind:
        check_text("anomaly type", kind, ANOMALY_TYPE_LENGTH)
    check_text("reason", reason)

    def store(session: Session) -> int:
        if session.get(Clip, clip_id) is None:
            raise BadInputError(Reason.NOT_FOUND, f"no clip with id {clip_id}")
        if kind:
            add_anomaly_type(session, kind, actor.name)
        row = add_adjudication(session, clip_id, actor.name, actor.role.value, verdict, reason, kind)
        record_event(session, actor, Action.ADJUDICATE, f"clip {clip_id}",
                     f"{verdict}{f' ({kind})' if kind else ''}: {reason}")  # fmt: skip
        return row.id

    return write_transaction(store, url)
