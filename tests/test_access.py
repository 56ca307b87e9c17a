"""core.access and every guarded core function: each role against each action, allowed and refused.

The expected table is written out here by hand (not derived from ``PERMISSIONS``), so a change to the
permission table must change this test too.  The guarded functions run on a real seeded database: a
refused call raises :class:`PermissionDeniedError` and writes nothing (no row, no audit event); an
allowed one gets past the check (and, where it is cheap, does its work and is audited in the actor's name).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.access import (
    OPERATOR,
    Action,
    Actor,
    Role,
    allowed,
    checked_name,
    recorded_name,
    require,
    why_not,
    worker_name,
)
from core.errors import BadInputError, MachineSoundError, PermissionDeniedError, Reason
from db.models import Adjudication, Annotation, AuditEvent, Clip, Export, Threshold
from db.session import session_scope
from tests.conftest import SEEDED_MACHINES, tone, write_wav

A, E, M, AD = Role.ANNOTATOR, Role.ENGINEER, Role.MANAGER, Role.ADMIN
EXPECTED = {  # action -> the roles that may do it
    Action.JUDGE: {A, E, M, AD},
    Action.ADJUDICATE: {E, M, AD},
    Action.INGEST: {E, M, AD},
    Action.SET_THRESHOLD: {E, M, AD},
    Action.TRAIN: {E, M, AD},
    Action.EXPORT: {E, M, AD},
    Action.TRAIN_SUPERVISED: {E, M, AD},
    Action.CLOUD_TRAIN: {E, M, AD},
    Action.CLOUD_EVALUATE: {E, M, AD},
    Action.ACTIVATE_MODEL: {M, AD},
    Action.VIEW_AUDIT: {M, AD},
    Action.MANAGE_USERS: {AD},
    Action.CLOUD_SETTINGS: {AD},
}
MACHINE = SEEDED_MACHINES[0]


def test_every_action_has_a_row_here():
    assert set(EXPECTED) == set(Action)


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("role", list(Role))
def test_permission_table_row_by_row(role, action):
    may = role in EXPECTED[action]
    assert allowed(role, action) is may
    assert Actor("x", role).may(action) is may
    assert (why_not(role, action) is None) is may
    if may:
        assert require(Actor("x", role), action).role == role
    else:
        with pytest.raises(PermissionDeniedError, match=f"x may not {action.value}"):
            require(Actor("x", role), action)
        assert role.value in why_not(role, action)


def test_the_operator_has_every_right_and_may_name_who_it_acts_for():
    assert all(OPERATOR.may(action) for action in Action)
    assert require(None, Action.MANAGE_USERS) is OPERATOR
    assert recorded_name(None, Action.JUDGE, " ana ") == "ana"
    assert recorded_name(Actor("ana", A), Action.JUDGE, "ana") == "ana"
    assert recorded_name(Actor("ana", A), Action.JUDGE) == "ana"
    with pytest.raises(PermissionDeniedError, match="may not act as 'bob'"):
        recorded_name(Actor("ana", AD), Action.JUDGE, "bob")  # not even an admin signs for someone else


def test_a_name_longer_than_records_keep_is_refused_naming_the_field():
    """People's names go into 128-character columns (verdicts, thresholds, exports, the audit log)."""
    assert checked_name(" " + "a" * 128 + " ") == "a" * 128
    assert worker_name(OPERATOR, "b" * 128) == "b" * 128
    assert worker_name(Actor("ana", A), "c" * 500) == "ana"  # a signed-in user's own name, whatever was passed
    calls = [lambda: recorded_name(None, Action.JUDGE, "a" * 129, field="annotator"),
             lambda: worker_name(OPERATOR, "a" * 129), lambda: checked_name("a" * 129, "your name")]  # fmt: skip
    for call, field in zip(calls, ("annotator", "user", "your name"), strict=True):
        with pytest.raises(BadInputError) as info:
            call()
        assert (info.value.reason, info.value.detail) == (
            Reason.INVALID_PARAMETER, f"{field} '{'a' * 23}…' is 129 characters; at most 128"
        )  # fmt: skip


# --- the guarded functions of core, on a real database --------------------------------------------------------


def _first_clip() -> int:
    with session_scope() as session:
        return session.scalar(select(func.min(Clip.id)))


def _judge(actor):
    from core.workflows.triage import record_verdict

    record_verdict(_first_clip(), actor.name, "abnormal", actor=actor)


def _undo(actor):
    from core.workflows.triage import undo_last

    undo_last(actor.name, actor=actor)


def _adjudicate(actor):
    from core.workflows.review import adjudicate

    adjudicate(_first_clip(), "abnormal", "heard a clear bearing whine", anomaly_type="bearing", actor=actor)


def _threshold(actor):
    from core.workflows.tuning import set_threshold

    set_threshold(MACHINE, 1.0, reason="test", actor=actor)


def _train(actor):
    from core.workflows.training import train

    train(MACHINE, "mahalanobis", actor=actor)


def _activate(actor):
    from core.workflows.training import activate

    activate(MACHINE, detector="mahalanobis", actor=actor)


def _export(actor):
    from core.workflows.export import export_dataset

    export_dataset(Path(actor_dir(actor)) / "export", actor=actor, n_jobs=1)


def _ingest(actor):
    from core.workflows.ingest import ingest

    folder = Path(actor_dir(actor)) / "new"
    write_wav(folder / "fan" / "id_09" / "normal" / "a.wav", tone(1.0, seed=hash(actor.role.value) % 1000))
    ingest([str(folder)], actor=actor, n_jobs=1)


def _uploads(actor):
    from core.workflows.uploads import store_uploads

    store_uploads([("a.wav", b"RIFF")], "fan/id_09", actor=actor)


def _train_supervised(actor):
    from core.supervised.local import LocalTrainer

    LocalTrainer().train("/nonexistent-export", actor=actor)  # allowed: fails later, on the missing export


def _cloud_train(actor):
    from core.settings import CloudConfig
    from core.supervised.rekognition import RekognitionTrainer

    RekognitionTrainer(CloudConfig()).train(actor=actor, confirm_cost=True)  # allowed: fails on the missing bucket


def _cloud_evaluate(actor):
    from core.settings import CloudConfig
    from core.supervised.rekognition import RekognitionTrainer

    RekognitionTrainer(CloudConfig()).evaluate(10_000, confirm_cost=True, actor=actor)  # allowed: no such job


def _audit(actor):
    from core.workflows.audit import audit_events

    audit_events(10, actor=actor)


def _users(actor):
    from core.workflows.users import add_user

    add_user(f"new-{actor.role.value}", "annotator", "a long enough password", actor=actor)


_DIRS: dict[str, Path] = {}


def actor_dir(actor) -> Path:
    return _DIRS[actor.role.value]


GUARDED = {
    Action.JUDGE: (_judge, Annotation),
    Action.ADJUDICATE: (_adjudicate, Adjudication),
    Action.SET_THRESHOLD: (_threshold, Threshold),
    Action.TRAIN: (_train, None),
    Action.ACTIVATE_MODEL: (_activate, None),
    Action.EXPORT: (_export, Export),
    Action.INGEST: (_ingest, Clip),
    Action.TRAIN_SUPERVISED: (_train_supervised, None),
    Action.CLOUD_TRAIN: (_cloud_train, None),
    Action.CLOUD_EVALUATE: (_cloud_evaluate, None),
    Action.VIEW_AUDIT: (_audit, None),
    Action.MANAGE_USERS: (_users, None),
}


def _count(table) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(table))


@pytest.mark.parametrize("action", list(GUARDED), ids=lambda a: a.value.replace(" ", "_"))
@pytest.mark.parametrize("role", list(Role))
def test_core_functions_enforce_the_table(seeded, tmp_path, role, action, no_aws):
    _DIRS[role.value] = tmp_path
    call, table = GUARDED[action]
    actor = Actor(f"{role.value}-user", role)
    before = (_count(AuditEvent), _count(table) if table else None)
    if role not in EXPECTED[action]:
        with pytest.raises(PermissionDeniedError):
            call(actor)
        assert (_count(AuditEvent), _count(table) if table else None) == before  # nothing written
        return
    try:
        call(actor)
    except PermissionDeniedError:  # pragma: no cover - the failure this test exists to catch
        pytest.fail(f"{role} was refused {action}")
    except MachineSoundError:
        assert action in (Action.TRAIN_SUPERVISED, Action.CLOUD_TRAIN, Action.CLOUD_EVALUATE)  # past the check
        return
    if table is not None:
        assert _count(table) > before[1]
    if action is not Action.VIEW_AUDIT:
        with session_scope() as session:
            users = set(session.scalars(select(AuditEvent.user)))
        assert actor.name in users  # the audit names who did it


def test_undo_is_only_ever_ones_own(seeded):
    from core.workflows.triage import record_verdict, undo_last

    clip = _first_clip()
    record_verdict(clip, "ana", "abnormal", actor=Actor("ana", A))
    with pytest.raises(PermissionDeniedError, match="may not act as 'ana'"):
        undo_last("ana", actor=Actor("bob", A))
    assert undo_last("bob", actor=Actor("bob", A)) is None  # bob has nothing to undo; ana's verdict stands
    assert undo_last("ana", actor=Actor("ana", A)).clip_id == clip


def test_each_kind_of_action_leaves_an_audit_row_in_its_actors_name(seeded, tmp_path):
    from core.workflows.audit import audit_events
    from core.workflows.export import export_dataset
    from core.workflows.ingest import ingest_folder
    from core.workflows.training import activate, train
    from core.workflows.triage import record_verdict, undo_last
    from core.workflows.tuning import set_threshold

    ana, eve, max_ = Actor("ana", A), Actor("eve", E), Actor("max", M)
    record_verdict(_first_clip(), "ana", "abnormal", anomaly_type="bearing", actor=ana)
    undo_last("ana", actor=ana)
    set_threshold(MACHINE, 2.5, reason="fewer false alarms", actor=eve)
    train(MACHINE, "mahalanobis", actor=eve)
    activate(MACHINE, detector="mahalanobis", actor=max_)
    export_dataset(tmp_path / "export", actor=eve, n_jobs=1)
    write_wav(seeded / "drop" / "fan" / "id_07" / "normal" / "a.wav", tone(1.0, seed=3))
    ingest_folder(str(seeded / "drop"), actor=eve, n_jobs=1)
    events = audit_events(50, actor=max_)
    seen = {(e["user"], e["role"], e["action"]) for e in events}
    assert {("ana", "annotator", "judge"), ("ana", "annotator", "undo"), ("eve", "engineer", "set threshold"),
            ("eve", "engineer", "train"), ("max", "manager", "activate model"), ("eve", "engineer", "export"),
            ("eve", "engineer", "ingest")} <= seen  # fmt: skip
    judged = next(e for e in events if e["action"] == "judge")
    assert judged["target"] == f"clip {_first_clip()}" and judged["detail"] == "abnormal (bearing)"
    threshold = next(e for e in events if e["action"] == "set threshold")
    assert (
        threshold["target"] == MACHINE and "2.5" in threshold["detail"] and "fewer false alarms" in threshold["detail"]
    )
    assert [e["at"] for e in events] == sorted((e["at"] for e in events), reverse=True)  # newest first


def test_the_operator_acting_for_an_annotator_is_audited_under_that_name(seeded):
    from core.workflows.audit import audit_events
    from core.workflows.triage import record_verdict

    record_verdict(_first_clip(), "pat", "normal")  # the CLI's `annotate --annotator pat`
    (event,) = [e for e in audit_events(10) if e["action"] == "judge"]
    assert (event["user"], event["role"]) == ("pat", "admin")
