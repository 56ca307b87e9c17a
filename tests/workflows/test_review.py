"""Second opinions by design (the overlap queue), the review queue and adjudication, and every consumer of the
label policy following an adjudicated label: the export, the Thresholds page's set, comparisons and retraining."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from sqlalchemy import select

from core.access import Actor, Role
from core.errors import BadInputError, PermissionDeniedError, Reason
from core.workflows.audit import audit_events
from core.workflows.labels import needs_two_annotators
from core.workflows.review import (
    DISPUTED,
    SETTLED,
    UNSURE,
    adjudicate,
    adjudication_history,
    review_item,
    review_queue,
)
from core.workflows.triage import clip_label, machine_summaries, own_verdicts, record_verdict, triage_queue, undo_last
from db.models import Adjudication, Clip, Machine
from db.session import session_scope

FAN = "fan/id_00"
ANA, BOB, CY = Actor("ana", Role.ANNOTATOR), Actor("bob", Role.ANNOTATOR), Actor("cy", Role.ANNOTATOR)
EVE, MAX = Actor("eve", Role.ENGINEER), Actor("max", Role.MANAGER)


def _queue(who: Actor | None, machine: str = FAN) -> list[int]:
    return [item.clip_id for item in triage_queue(machine, annotator=who.name if who else None)]


def _judge(who: Actor, clip_id: int, verdict: str, **kwargs) -> int:
    return record_verdict(clip_id, who.name, verdict, actor=who, **kwargs)


# --- the overlap ---------------------------------------------------------------------------------------------------


def test_the_overlap_sample_is_a_stable_hash_of_the_clip_id_about_the_fraction():
    ids = range(1, 20_001)
    chosen = [i for i in ids if needs_two_annotators(i, 0.1)]
    assert 1_800 < len(chosen) < 2_200
    assert chosen == [i for i in ids if needs_two_annotators(i, 0.1)]  # the same in every session
    assert set(chosen) <= {i for i in ids if needs_two_annotators(i, 0.3)}  # a larger share keeps these
    assert not any(needs_two_annotators(i, 0.0) for i in ids) and all(needs_two_annotators(i, 1.0) for i in ids)


def test_with_overlap_1_every_clip_needs_two_distinct_annotators(seeded, monkeypatch):
    monkeypatch.setenv("OVERLAP_FRACTION", "1")
    flagged = _queue(None)
    assert flagged and _queue(ANA) == flagged
    for clip_id in flagged:
        _judge(ANA, clip_id, "abnormal")
    assert _queue(ANA) == []  # ana never gets them again ...
    assert _queue(BOB) == _queue(None) == flagged  # ... but they wait for a second annotator
    _judge(ANA, flagged[0], "normal")  # ana changing her mind is still one annotator
    assert flagged[0] in _queue(BOB)
    _judge(BOB, flagged[0], "unsure")  # any standing verdict of a second person counts
    assert flagged[0] not in _queue(CY) and flagged[0] not in _queue(None)
    undo_last("bob", actor=BOB)  # bob takes it back: the clip waits again, for bob too
    assert flagged[0] in _queue(BOB) and flagged[0] in _queue(CY)
    summary = {s.machine: s for s in machine_summaries()}[FAN]
    assert (summary.unreviewed, summary.second_opinion) == (0, len(flagged))


def test_a_clip_is_never_served_twice_to_one_person(seeded, monkeypatch):
    """Three annotators take turns at the head of their own queue until nothing is left: each clip is served
    to exactly as many different people as it needs, never twice to one."""
    monkeypatch.setenv("OVERLAP_FRACTION", "0.5")
    flagged = set(_queue(None))
    served: list[tuple[str, int]] = []
    for who in itertools.cycle([ANA, BOB, CY]):
        if not any(_queue(p) for p in (ANA, BOB, CY)):
            break
        queue = _queue(who)
        if queue:
            served.append((who.name, queue[0]))
            _judge(who, queue[0], "normal")
    assert len(served) == len(set(served))  # never the same clip to the same person
    per_clip = Counter(clip_id for _, clip_id in served)
    assert set(per_clip) == flagged
    assert all(per_clip[c] == (2 if needs_two_annotators(c, 0.5) else 1) for c in flagged)
    assert {per_clip[c] for c in flagged} == {1, 2}  # this plant has clips of both kinds at 0.5


def test_overlap_0_is_one_verdict_per_clip(seeded, monkeypatch):
    monkeypatch.setenv("OVERLAP_FRACTION", "0")
    flagged = _queue(None)
    _judge(ANA, flagged[0], "normal")
    assert flagged[0] not in _queue(BOB)


def test_an_adjudication_takes_a_clip_out_of_the_triage_queue(seeded, monkeypatch):
    monkeypatch.setenv("OVERLAP_FRACTION", "1")
    clip_id = _queue(None)[0]
    _judge(ANA, clip_id, "unsure")
    adjudicate(clip_id, "abnormal", "clear bearing whine", anomaly_type="bearing", actor=EVE)
    assert clip_id not in _queue(BOB)


def test_own_unsure_verdicts_come_back_to_their_annotator(seeded, monkeypatch):
    monkeypatch.setenv("OVERLAP_FRACTION", "0")
    a, b, c = _queue(None)[:3]
    _judge(ANA, a, "unsure", note="too quiet to tell")
    _judge(ANA, b, "normal")
    _judge(BOB, c, "unsure")
    assert [(v.clip_id, v.note) for v in own_verdicts(FAN, "ana")] == [(a, "too quiet to tell")]
    assert [v.clip_id for v in own_verdicts(FAN, " bob ")] == [c]
    assert [v.clip_id for v in own_verdicts(FAN, "ana", "normal")] == [b]
    _judge(ANA, a, "abnormal")  # she decided: it leaves her list
    assert own_verdicts(FAN, "ana") == [] and own_verdicts("fan/id_09", "ana") == []


# --- the review queue and adjudication -------------------------------------------------------------------------------


def test_disputes_and_unsure_clips_reach_the_review_queue_and_adjudication_settles_them(seeded, monkeypatch):
    monkeypatch.setenv("OVERLAP_FRACTION", "0")
    disputed, unsure, agreed = _queue(None)[:3]
    _judge(ANA, disputed, "abnormal", anomaly_type="bearing", note="grinding at 2 s")
    _judge(BOB, disputed, "normal", note="that is the conveyor")
    _judge(ANA, unsure, "unsure", note="too quiet")
    _judge(BOB, agreed, "abnormal")
    queue = {item.clip_id: item for item in review_queue(FAN, actor=EVE)}
    assert {c: item.state for c, item in queue.items()} == {disputed: DISPUTED, unsure: UNSURE}
    shown = queue[disputed]
    assert shown.machine == FAN and shown.path and shown.adjudication is None
    assert [(v["annotator"], v["verdict"], v["anomaly_type"], v["note"], v["role"]) for v in shown.verdicts] == [
        ("ana", "abnormal", "bearing", "grinding at 2 s", "annotator"),
        ("bob", "normal", None, "that is the conveyor", "annotator"),
    ]

    first = adjudicate(disputed, "abnormal", "bearing noise at 2 s", anomaly_type="bearing", actor=EVE)
    second = adjudicate(disputed, "normal", "the conveyor, heard on site", actor=MAX)  # overrules; both kept
    adjudicate(unsure, "abnormal", " rubbing ", anomaly_type="rubbing", actor=EVE)
    assert second > first
    found = clip_label(disputed)
    assert (found.state, found.label, found.source) == ("settled", "normal", "adjudication")
    assert clip_label(unsure).label == "abnormal"
    queue = {item.clip_id: item for item in review_queue(FAN, actor=EVE)}
    assert {c: item.state for c, item in queue.items()} == {disputed: SETTLED, unsure: SETTLED}
    assert queue[disputed].adjudication["adjudicator"] == "max" and queue[disputed].adjudication["role"] == "manager"
    assert len(queue[disputed].verdicts) == 2  # every verdict stays beside the ruling
    assert review_queue(FAN, settled=False, actor=EVE) == []
    history = adjudication_history(disputed, actor=EVE)
    assert [(h["adjudicator"], h["verdict"], h["reason"]) for h in history] == [
        ("eve", "abnormal", "bearing noise at 2 s"), ("max", "normal", "the conveyor, heard on site")]  # fmt: skip
    events = [e for e in audit_events(20) if e["action"] == "adjudicate"]
    assert {(e["user"], e["role"], e["target"]) for e in events} == {
        ("eve", "engineer", f"clip {disputed}"), ("max", "manager", f"clip {disputed}"),
        ("eve", "engineer", f"clip {unsure}")}  # fmt: skip
    assert any(e["detail"] == "abnormal (rubbing): rubbing" for e in events)
    assert review_item(agreed, actor=EVE).state == ""  # any clip can be opened and overruled
    summary = {s.machine: s for s in machine_summaries()}[FAN]
    assert (summary.disputed, summary.settled) == (0, 2)


def test_the_review_queue_puts_disputed_clips_first_then_unsure_then_settled(seeded, monkeypatch):
    """It was by clip id alone: the Review page's picker opened on an unsure clip while a disputed one waited."""
    monkeypatch.setenv("OVERLAP_FRACTION", "0")
    settled, unsure, later_unsure, disputed, later_disputed = sorted(_queue(None))[:5]  # the lowest id settled
    for clip_id in (disputed, later_disputed):
        _judge(ANA, clip_id, "abnormal")
        _judge(BOB, clip_id, "normal")
    for clip_id in (unsure, later_unsure):
        _judge(ANA, clip_id, "unsure")
    _judge(ANA, settled, "unsure")
    adjudicate(settled, "normal", "heard it", actor=EVE)
    queue = [(item.clip_id, item.state) for item in review_queue(FAN, actor=EVE)]
    assert queue == [(disputed, DISPUTED), (later_disputed, DISPUTED), (unsure, UNSURE), (later_unsure, UNSURE),
                     (settled, SETTLED)]  # fmt: skip
    assert [item.clip_id for item in review_queue(FAN, settled=False, actor=EVE)] == [
        disputed, later_disputed, unsure, later_unsure]  # fmt: skip


def test_adjudication_refuses_bad_input_and_annotators(seeded):
    with session_scope() as session:
        clip_id = session.scalar(select(Clip.id).limit(1))
    for verdict, reason, match in [("unsure", "r", "normal or abnormal"), ("maybe", "r", "normal or abnormal"),
                                   ("normal", "  ", "reason"), ("normal", "x" * 2001, "reason")]:  # fmt: skip
        with pytest.raises(BadInputError, match=match) as caught:
            adjudicate(clip_id, verdict, reason, actor=EVE)
        assert caught.value.reason is Reason.INVALID_PARAMETER
    with pytest.raises(BadInputError, match="no clip with id 99999"):
        adjudicate(99999, "normal", "fine", actor=EVE)
    calls = (lambda: adjudicate(clip_id, "normal", "fine", actor=ANA), lambda: review_queue(actor=ANA),
             lambda: review_item(clip_id, actor=ANA), lambda: adjudication_history(clip_id, actor=ANA))  # fmt: skip
    for call in calls:
        with pytest.raises(PermissionDeniedError, match="adjudicate needs the engineer role"):
            call()
    with session_scope() as session:
        assert session.scalars(select(Adjudication)).all() == []
    adjudicate(clip_id, "normal", "fine", anomaly_type="bearing", actor=EVE)  # a type only goes with abnormal
    with session_scope() as session:
        assert session.scalars(select(Adjudication.anomaly_type)).all() == [None]


def test_the_operator_adjudicates_as_itself(seeded):
    with session_scope() as session:
        clip_id = session.scalar(select(Clip.id).limit(1))
    adjudicate(clip_id, "abnormal", "heard it")
    with session_scope() as session:
        row = session.scalars(select(Adjudication)).one()
    assert (row.adjudicator, row.role) == ("operator", "admin")


# --- every consumer follows the settled label ------------------------------------------------------------------------


def _clip_of(machine: str, split: str, label: str) -> int:
    machine_type, machine_id = machine.split("/")
    with session_scope() as session:
        return session.scalar(
            select(Clip.id).join(Clip.machine)
            .where(Machine.machine_type == machine_type, Machine.machine_id == machine_id, Clip.split == split,
                   Clip.label == label).order_by(Clip.id).limit(1)
        )  # fmt: skip


def _thresholds_label(clip_id: int) -> bool | None:
    """Whether the Thresholds page's labelled set (test split in) counts ``clip_id`` abnormal; None: not in it."""
    from core.workflows.tuning import labelled_set, score_missing
    from db.queries import clip_scores, machine_by_key

    score_missing(FAN)  # a retrained model scores the machine's clips first, as the page does
    with session_scope() as session:
        machine = machine_by_key(session, FAN)
        found = labelled_set(session, machine, True)
        score = clip_scores(session, machine.active_model_id, [clip_id])[clip_id]
    hits = [bool(y) for s, y in zip(found.scores, found.is_abnormal, strict=True) if s == score]
    return hits[0] if hits else None


def _exported(summary: dict, clip_id: int) -> tuple[str, str] | None:
    return next(((i["label"], i["source"]) for i in summary["images"] if i["clip_id"] == clip_id), None)


def test_export_thresholds_comparisons_and_retraining_follow_the_settled_label(seeded, tmp_path):
    from core.workflows.comparison import graded_labels
    from core.workflows.curation import curated_clips
    from core.workflows.export import ExportOptions, export_dataset
    from core.workflows.training import train

    tested, trained = _clip_of(FAN, "test", "abnormal"), _clip_of(FAN, "train", "normal")
    for clip_id in (tested, trained):
        _judge(ANA, clip_id, "abnormal")
        _judge(BOB, clip_id, "normal")
    options = ExportOptions(machine=FAN)
    with session_scope() as session:
        assert tested not in graded_labels(session, [session.get(Clip, tested).machine_pk])[0]
    assert _thresholds_label(tested) is None
    summary = export_dataset(tmp_path / "before", options, n_jobs=1)
    assert _exported(summary, tested) is None and tested in summary["disputed"]
    (before,) = train(FAN, "mahalanobis").trained

    adjudicate(tested, "normal", "the rattle is the neighbouring press", actor=EVE)
    adjudicate(trained, "abnormal", "a loose guard, heard on site", actor=EVE)

    with session_scope() as session:
        assert graded_labels(session, [session.get(Clip, tested).machine_pk])[0][tested] == "normal"
    assert _thresholds_label(tested) is False
    summary = export_dataset(tmp_path / "after", options, n_jobs=1)
    assert tested not in summary["disputed"] and trained not in summary["disputed"]
    assert _exported(summary, trained) == ("abnormal", "adjudication")  # 4 abnormal clips: every one is kept
    assert summary["label_quality"]["abnormal"]["adjudicated"] == 1
    with session_scope() as session:  # the normal class is balanced down: what the export chose from
        curated = {c.clip_id: (c.label, c.source, c.quality) for c in curated_clips(session, FAN)}
    assert curated[tested] == ("normal", "adjudication", "adjudicated")
    (after,) = train(FAN, "mahalanobis").trained
    with session_scope() as session:
        from db.models import DetectorModel

        learned = {m.id: set(m.provenance["clip_ids"]) for m in session.scalars(select(DetectorModel))}
    assert trained not in learned[before.model_id] and trained not in learned[after.model_id]
    adjudicate(trained, "normal", "the guard was fixed before this recording", actor=MAX)
    (again,) = train(FAN, "mahalanobis").trained
    with session_scope() as session:
        assert trained in session.get(DetectorModel, again.model_id).provenance["clip_ids"]


def test_a_verdict_records_its_annotators_role_at_the_time(seeded):
    """A signed-in user's role; for a name the operator records, that active account's role, else none known."""
    from core.workflows.users import add_user, set_role
    from db.models import Annotation

    add_user("eve", "engineer", "a long enough password")
    clip_id = _clip_of(FAN, "test", "abnormal")
    _judge(ANA, clip_id, "abnormal")
    record_verdict(clip_id, "eve", "abnormal")  # the operator (`annotate --annotator eve`)
    record_verdict(clip_id, "zoe", "abnormal")  # nobody has that account
    set_role("eve", "annotator")  # later changes do not rewrite what was recorded
    with session_scope() as session:
        roles = [(r.annotator, r.role) for r in session.scalars(select(Annotation).order_by(Annotation.id))]
    assert roles == [("ana", "annotator"), ("eve", "engineer"), ("zoe", None)]
    assert clip_label(clip_id).verdicts["eve"].role is Role.ENGINEER
