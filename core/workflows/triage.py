"""The pilot team's loop: what the active model flags, verdicts on it, undo, and disagreements.

Verdicts are append-only: an undo is a new row pointing at the verdict it cancels,
so nothing a pilot said is ever lost.  A clip is *flagged* when its active model's
score is above the active threshold; it leaves the queue once it has a verdict, or two
different annotators' verdicts for the ``OVERLAP_FRACTION`` share of clips (the label
policy's :func:`~core.workflows.labels.awaits_verdict`), and is never served to a person
twice.  Each verdict records its annotator's role, which decides whether one verdict alone
is trusted (:attr:`~core.workflows.labels.ClipLabel.trusted`).
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.access import Action, Actor, Role, on_behalf_of, recorded_name
from core.errors import BadInputError, Reason, check_text
from core.settings import settings
from core.vocabulary import ANOMALY_TYPE_LENGTH, Verdict
from core.workflows.audit import record_event
from core.workflows.labels import ClipLabel, labels_for_clips, labels_for_machines
from db.models import Annotation, Clip, Machine
from db.queries import (
    active_cuts,
    active_threshold,
    add_annotation,
    add_anomaly_type,
    anomaly_type_names,
    awaiting_verdict,
    clip_by_hash,
    clip_by_path,
    clip_counts_by_machine,
    clips_newest_first,
    judged_tallies,
    last_undoable,
    machine_by_key,
    machines_matching,
    queue_count,
    queue_page,
    user_by_name,
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
    disputed: int  # annotators say normal and abnormal: neither confirmed nor rejected until adjudicated
    second_opinion: int  # flagged clips in the overlap sample with one annotator's verdict, awaiting another
    settled: int  # clips an adjudication labels
    detector: str | None
    version: int | None
    front_end: str | None  # the active model's (None: no model, or a detector without one)
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


QUEUE_LIMIT = 200  # clips a queue call returns by default: the page judges the first, the rest wait


def _threshold(session, machine: Machine) -> float | None:
    """The active threshold of the machine's active model, or None without one."""
    model = machine.active_model
    found = active_threshold(session, model.id) if model is not None else None
    return found.value if found is not None else None


def _summary(machine: Machine, facts: tuple, cut: tuple | None, tallies: list[tuple]) -> MachineSummary:
    """One machine's counts from the grouped queries' rows: its clips, and the flagged or judged clips grouped by
    their tally (:func:`db.queries.judged_tallies`) read under the label policy (rules 1-3, 8)."""
    model = machine.active_model
    n_clips, last_ingested_at = facts

    def count(rule) -> int:  # (clips, abnormal, normal, unsure, annotators, ruled, flagged, in overlap, last at)
        return sum(t[0] for t in tallies if rule(*t[1:8]))

    flagged = count(lambda ab, no, un, n, ruled, fl, ov: fl)
    return MachineSummary(
        machine=machine.key,
        clips=n_clips,
        flagged=flagged,
        confirmed=count(lambda ab, no, un, n, ruled, fl, ov: n > 0 and ab > 0 and no == 0),
        rejected=count(lambda ab, no, un, n, ruled, fl, ov: n > 0 and no > 0 and ab == 0),
        unsure=count(lambda ab, no, un, n, ruled, fl, ov: n > 0 and ab == no == 0),
        unreviewed=flagged - count(lambda ab, no, un, n, ruled, fl, ov: n > 0 and fl),
        disputed=count(lambda ab, no, un, n, ruled, fl, ov: n > 0 and ab > 0 and no > 0 and not ruled),
        second_opinion=count(lambda ab, no, un, n, ruled, fl, ov: n > 0 and fl and not ruled and n < 1 + ov),
        settled=count(lambda ab, no, un, n, ruled, fl, ov: ruled),
        detector=model.detector if model else None,
        version=model.version if model else None,
        front_end=model.front_end if model else None,
        threshold=cut[1] if cut is not None else None,
        last_ingested_at=last_ingested_at,
        last_verdict_at=max((t[8] for t in tallies if t[8] is not None), default=None),
    )


def machine_summaries(url: str | None = None) -> list[MachineSummary]:
    """One summary per machine, sorted by machine key: counts from grouped queries over every machine at once
    (never a set of queries per machine), and the label policy applied only to the clips someone judged, so its
    time follows the clips' count once and the team's verdicts, not the machines times the clips."""
    with session_scope(url) as session:
        overlap = settings().overlap_fraction
        machines = machines_matching(session, with_models=True)
        facts, cuts, tallies = clip_counts_by_machine(session), active_cuts(session), judged_tallies(session, overlap)
        return [_summary(m, facts.get(m.id, (0, None)), cuts.get(m.id), tallies.get(m.id, [])) for m in machines]


def _check_order(order: str) -> None:
    if order not in QUEUE_ORDERS.values():
        raise BadInputError(
            Reason.INVALID_PARAMETER, f"unknown queue order {order!r}; use one of {list(QUEUE_ORDERS.values())}"
        )


def _awaiting(session, machine: str, annotator: str | None):
    """``(query of the clips awaiting a verdict, threshold)``, or ``(None, None)`` without a machine, model or
    threshold."""
    found = machine_by_key(session, machine)
    threshold = _threshold(session, found) if found is not None else None
    if threshold is None:
        return None, None
    who = (annotator or "").strip() or None
    return awaiting_verdict(found.active_model_id, found.id, threshold, settings().overlap_fraction, who), threshold


def triage_queue(
    machine: str,
    order: str = "score",
    *,
    annotator: str | None = None,
    limit: int | None = QUEUE_LIMIT,
    url: str | None = None,
) -> list[QueueItem]:
    """Flagged clips of ``machine`` (``type/id``) that still await a verdict, in ``order``: ``score`` (highest
    first), ``margin`` (closest to the threshold first) or ``newest``; the first ``limit`` of them (None: all),
    chosen, ordered and limited by the database (:func:`db.queries.awaiting_verdict`), so a machine with a
    million scored clips is served as quickly as one with a hundred.  :func:`queue_size` counts them all.

    A clip waits until it has one annotator's standing verdict, or two different annotators' when it is in
    the ``OVERLAP_FRACTION`` sample, or an adjudication (:func:`core.workflows.labels.awaits_verdict`); with
    ``annotator`` named, the clips that person judged are left out, so nobody is served a clip twice."""
    _check_order(order)
    with session_scope(url) as session:
        query, threshold = _awaiting(session, machine, annotator)
        if query is None:
            return []
        rows = queue_page(session, query, order, limit)
    return [QueueItem(r.clip_id, r.path, r.score, threshold, r.label, r.ingested_at) for r in rows]


def queue_size(machine: str, *, annotator: str | None = None, url: str | None = None) -> int:
    """How many flagged clips of ``machine`` await a verdict (from ``annotator``, when named): the length
    :func:`triage_queue` would have without a limit, counted by the database."""
    with session_scope(url) as session:
        query, _ = _awaiting(session, machine, annotator)
        return 0 if query is None else queue_count(session, query)


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
    actor: Actor | None = None,
    url: str | None = None,
) -> int:
    """Store a pilot's verdict on a clip at once; returns the annotation id.

    ``actor`` (default: the CLI's operator) must be allowed to judge; a signed-in user judges only in
    their own name (``annotator`` must be theirs, see :func:`core.access.recorded_name`).

    Safe with many annotators writing at once, from any number of processes: every
    verdict is a new row (never an update), and a write refused by a concurrent one is
    retried from the start, so each call stores exactly one row.

    ``verdict`` is ``normal``, ``abnormal`` or ``unsure``; an ``anomaly_type`` is kept
    only with ``abnormal`` and is added to the team's list when new.  Raises
    :class:`BadInputError`, writing nothing, for a missing or over-long annotator name (at most 128
    characters), an unknown verdict, an anomaly type over 64 characters, or text no database can store.
    """
    annotator = recorded_name(actor, Action.JUDGE, annotator, field="annotator")
    if not annotator:
        raise BadInputError(Reason.INVALID_PARAMETER, "an annotator name is required")
    if verdict not in tuple(Verdict):
        raise BadInputError(Reason.INVALID_PARAMETER,
                            f"verdict must be one of {', '.join(Verdict)}, got {verdict!r}")  # fmt: skip
    kind = (anomaly_type or "").strip() or None if verdict == Verdict.ABNORMAL else None
    if kind:
        check_text("anomaly type", kind, ANOMALY_TYPE_LENGTH)
    note = check_text("note", note.strip())

    def store(session) -> int:
        if session.get(Clip, clip_id) is None:
            raise BadInputError(Reason.NOT_FOUND, f"no clip with id {clip_id}")
        if kind:
            add_anomaly_type(session, kind, annotator)
        row = add_annotation(session, clip_id, annotator, verdict, kind, note, _role(session, actor, annotator))
        record_event(session, on_behalf_of(actor, annotator), Action.JUDGE, f"clip {clip_id}",
                     verdict + (f" ({kind})" if kind else ""))  # fmt: skip
        return row.id

    return write_transaction(store, url)


def _role(session, actor: Actor | None, annotator: str) -> str | None:
    """The role a verdict records: the signed-in user's; for the CLI's operator (or ``AUTH=none``) recording
    a name, that person's role if they have an active account, else None (not known: counts as an annotator's)."""
    if actor is not None and not actor.operator:
        return actor.role.value
    user = user_by_name(session, annotator)
    return user.role if user is not None and user.active else None


def other_verdicts(clip_id: int, annotator: str, *, url: str | None = None) -> dict[str, str]:
    """``{annotator: verdict}`` standing on the clip from everyone but ``annotator``: what a pilot is
    told after judging a clip someone else judged meanwhile."""
    found = clip_label(clip_id, url=url)
    return {who: v.verdict.value for who, v in found.verdicts.items() if who != annotator.strip()}


def clip_label(clip_id: int, *, url: str | None = None) -> ClipLabel:
    """The clip under the label policy (its standing verdicts, whether disputed, its label)."""
    with session_scope(url) as session:
        clip = session.get(Clip, clip_id)
        if clip is None:
            raise BadInputError(Reason.NOT_FOUND, f"no clip with id {clip_id}")
        return labels_for_clips(session, [clip])[clip_id]


def undo_last(annotator: str, *, actor: Actor | None = None, url: str | None = None) -> Annotation | None:
    """Cancel the annotator's latest verdict by appending an undo row; returns the undone verdict.

    A signed-in ``actor`` undoes only their own verdicts (``annotator`` must be theirs)."""
    annotator = recorded_name(actor, Action.JUDGE, annotator, field="annotator")
    with session_scope(url, write=True) as session:
        target = last_undoable(session, annotator)
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
                role=target.role,
            )  # fmt: skip
        )
        record_event(session, on_behalf_of(actor, annotator), "undo", f"clip {target.clip_id}",
                     f"undid the verdict {target.verdict} (annotation {target.id})")  # fmt: skip
        return target


def review_is_blind(actor: Actor, name: str | None = None, *, url: str | None = None) -> bool:
    """Whether ``actor`` judges blind (``BLIND_REVIEW``, on by default, for the annotator role): without
    the clip's ground-truth label, its file path or other annotators' verdicts until their own verdict.

    ``name``: the person whose verdicts the operator (``AUTH=none``, full rights) records, as Triage does: blind
    whenever their verdict counts as an annotator's (no active account of another role), for a verdict made with
    the answer on screen would weigh as an independent one."""
    if not settings().blind_review:
        return False
    if actor.operator and name:
        with session_scope(url) as session:
            return _role(session, actor, name) in (None, Role.ANNOTATOR.value)
    return actor.role == Role.ANNOTATOR


def anomaly_types(*, url: str | None = None) -> list[str]:
    """The team's anomaly types, by name."""
    with session_scope(url) as session:
        return anomaly_type_names(session)


@dataclass(frozen=True)
class OwnVerdict:
    """A clip one annotator judged, and their standing verdict on it."""

    clip_id: int
    path: str
    verdict: str
    note: str
    at: datetime


def own_verdicts(
    machine: str, annotator: str, verdict: str = Verdict.UNSURE, *, url: str | None = None
) -> list[OwnVerdict]:
    """The clips of ``machine`` on which ``annotator``'s standing verdict is ``verdict`` (default ``unsure``:
    the clips they want to come back to), the latest judged first.  A new verdict replaces theirs."""
    who = annotator.strip()
    with session_scope(url) as session:
        found = machine_by_key(session, machine)
        if found is None or not who:
            return []
        clips = clips_newest_first(session, found.id)
        labels = labels_for_machines(session, clips, [found.id])
        mine = {c.id: labels[c.id].verdicts[who] for c in clips if who in labels[c.id].verdicts}
        out = [OwnVerdict(c.id, c.path, mine[c.id].verdict.value, mine[c.id].note, mine[c.id].at)
               for c in clips if c.id in mine and mine[c.id].verdict == verdict]  # fmt: skip
    return sorted(out, key=lambda item: (item.at, item.clip_id), reverse=True)


def review_list(machine: str | None = None, *, url: str | None = None) -> list[dict]:
    """Disputed clips (annotators say normal and abnormal, see :mod:`core.workflows.labels`), with each
    annotator's standing verdict."""
    out = []
    with session_scope(url) as session:
        for m in machines_matching(session, machine):
            clips = clips_newest_first(session, m.id)
            paths = {c.id: c.path for c in clips}
            labels = labels_for_machines(session, clips, [m.id])
            out += [{"clip_id": clip_id, "path": paths[clip_id],
                     "verdicts": {who: v.verdict.value for who, v in found.verdicts.items()}}
                    for clip_id, found in labels.items() if found.disputed]  # fmt: skip
    return sorted(out, key=lambda item: item["clip_id"])


# --- where am I: shareable links and the machines that still have work -------------------------------------------

TRIAGE_URL_PATH = "triage"  # the Triage page's path (dashboard/registry.py)


def triage_link(machine: str, clip_id: int, *, base_url: str | None = None) -> str | None:
    """The address that opens ``clip_id`` of ``machine`` on the Triage page (``machine`` and ``clip`` as query
    parameters), under ``base_url`` (default: ``PUBLIC_URL``); ``None`` when no address is known."""
    base = base_url if base_url is not None else settings().public_url
    if not base:
        return None
    return f"{base.rstrip('/')}/{clip_address(TRIAGE_URL_PATH, machine, clip_id)}"


def clip_address(page: str, machine: str, clip_id: int) -> str:
    """``page?machine=TYPE%2FID&clip=ID``: the relative address of a page opened on one clip (Triage and Explore
    read it with :func:`linked_clip_id`)."""
    return f"{page}?{urllib.parse.urlencode({'machine': machine, 'clip': int(clip_id)})}"


def linked_clip_id(text: str | None) -> int | None:
    """The clip id a link's ``clip`` query parameter names (ASCII digits, at most 18 of them: any id the database
    can hold), or ``None`` for anything else (absent, ``"²"``, ``"1e9"``, a number too large to look up)."""
    if text is None or not re.fullmatch(r"[0-9]{1,18}", text.strip()):
        return None
    return int(text.strip())


def machines_with_work(annotator: str | None = None, *, url: str | None = None) -> list[tuple[str, int]]:
    """``[(machine, clips awaiting a verdict)]`` for every machine whose triage queue (for ``annotator``, when
    named) is not empty, the most work first: where a pilot whose queue is empty can go on."""
    with session_scope(url) as session:
        keys = [m.key for m in machines_matching(session) if m.active_model_id is not None]
    found = [(key, queue_size(key, annotator=annotator, url=url)) for key in keys]  # the queue itself is a page
    return sorted(((key, n) for key, n in found if n), key=lambda item: (-item[1], item[0]))
