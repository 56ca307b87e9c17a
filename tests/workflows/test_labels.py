"""core.workflows.labels: the one label policy, rule by rule (pure), and over a real database on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.access import Role
from core.settings import TrainFrom
from core.vocabulary import Label, LabelQuality, LabelSource, LabelState, Prefer, Split
from core.workflows.labels import (
    ClipLabel,
    Decision,
    NotLearned,
    Ruling,
    StandingVerdict,
    decide,
    describe,
    is_confirmed_fault,
    labels_for_clips,
    labels_for_machines,
    may_train,
    why_not_learned,
)
from db.models import Annotation, Clip
from db.queries import add_adjudication, add_annotation, get_or_create_machine
from db.session import session_scope

N, A, U = "normal", "abnormal", "unsure"
LABELLED, DISPUTED, UNSURE, UNLABELLED = (
    LabelState.LABELLED,
    LabelState.DISPUTED,
    LabelState.UNSURE,
    LabelState.UNLABELLED,
)
SETTLED = LabelState.SETTLED
TRUTH, VERDICT, RULED = LabelSource.GROUND_TRUTH, LabelSource.VERDICT, LabelSource.ADJUDICATION

# (ground truth, standing verdicts, prefer) -> (state, label, source): every combination of the three truths,
# the verdict sets that matter (none, each alone, agreement, abstention, dispute) and both precedences.
TABLE = [
    # no verdict: the ground truth, whatever the precedence
    ("normal", [], Prefer.VERDICTS, LABELLED, "normal", TRUTH),
    ("abnormal", [], Prefer.VERDICTS, LABELLED, "abnormal", TRUTH),
    ("unknown", [], Prefer.VERDICTS, UNLABELLED, None, None),
    ("abnormal", [], Prefer.GROUND_TRUTH, LABELLED, "abnormal", TRUTH),
    ("unknown", [], Prefer.GROUND_TRUTH, UNLABELLED, None, None),
    # one verdict on a field clip
    ("unknown", [N], Prefer.VERDICTS, LABELLED, "normal", VERDICT),
    ("unknown", [A], Prefer.VERDICTS, LABELLED, "abnormal", VERDICT),
    ("unknown", [U], Prefer.VERDICTS, UNSURE, None, None),
    ("unknown", [A], Prefer.GROUND_TRUTH, LABELLED, "abnormal", VERDICT),
    ("unknown", [U], Prefer.GROUND_TRUTH, UNSURE, None, None),
    # verdicts against ground truth: the verdict wins by default, the truth when asked
    ("normal", [A], Prefer.VERDICTS, LABELLED, "abnormal", VERDICT),
    ("abnormal", [N], Prefer.VERDICTS, LABELLED, "normal", VERDICT),
    ("normal", [A], Prefer.GROUND_TRUTH, LABELLED, "normal", TRUTH),
    ("abnormal", [N], Prefer.GROUND_TRUTH, LABELLED, "abnormal", TRUTH),
    ("normal", [N], Prefer.VERDICTS, LABELLED, "normal", VERDICT),
    ("normal", [N], Prefer.GROUND_TRUTH, LABELLED, "normal", TRUTH),
    # unsure abstains: the other source decides
    ("normal", [U], Prefer.VERDICTS, LABELLED, "normal", TRUTH),
    ("abnormal", [U, U], Prefer.VERDICTS, LABELLED, "abnormal", TRUTH),
    ("unknown", [N, U], Prefer.VERDICTS, LABELLED, "normal", VERDICT),
    ("unknown", [A, U], Prefer.GROUND_TRUTH, LABELLED, "abnormal", VERDICT),
    ("abnormal", [N, U], Prefer.VERDICTS, LABELLED, "normal", VERDICT),
    # agreement of several annotators is one label
    ("unknown", [A, A], Prefer.VERDICTS, LABELLED, "abnormal", VERDICT),
    ("normal", [N, N, U], Prefer.VERDICTS, LABELLED, "normal", VERDICT),
    # a dispute has no label at all, whatever the ground truth and the precedence
    ("unknown", [N, A], Prefer.VERDICTS, DISPUTED, None, None),
    ("normal", [N, A], Prefer.VERDICTS, DISPUTED, None, None),
    ("abnormal", [A, N, U], Prefer.VERDICTS, DISPUTED, None, None),
    ("normal", [A, N], Prefer.GROUND_TRUTH, DISPUTED, None, None),
    ("abnormal", [N, A], Prefer.GROUND_TRUTH, DISPUTED, None, None),
]


@pytest.mark.parametrize(("truth", "verdicts", "prefer", "state", "label", "source"), TABLE)
def test_decide_follows_the_documented_rules(truth, verdicts, prefer, state, label, source):
    assert decide(truth, verdicts, prefer) == Decision(state, None if label is None else Label(label), source)


# (ground truth, standing verdicts, adjudication, prefer) -> (state, label, source): an adjudication is above
# every verdict (it settles disputes and unsure clips, and overrules agreement); ground truth first still
# means the layout wins where it has a label.
RULED_TABLE = [
    ("unknown", [N, A], N, Prefer.VERDICTS, SETTLED, "normal", RULED),
    ("unknown", [N, A], A, Prefer.VERDICTS, SETTLED, "abnormal", RULED),
    ("normal", [A, N, U], A, Prefer.VERDICTS, SETTLED, "abnormal", RULED),
    ("unknown", [U], N, Prefer.VERDICTS, SETTLED, "normal", RULED),
    ("unknown", [U, U], A, Prefer.GROUND_TRUTH, SETTLED, "abnormal", RULED),
    ("unknown", [N, N], A, Prefer.VERDICTS, SETTLED, "abnormal", RULED),  # above agreement too
    ("unknown", [], N, Prefer.VERDICTS, SETTLED, "normal", RULED),
    ("abnormal", [N, A], N, Prefer.GROUND_TRUTH, LABELLED, "abnormal", TRUTH),
    ("abnormal", [N, A], N, Prefer.VERDICTS, SETTLED, "normal", RULED),
]


@pytest.mark.parametrize(("truth", "verdicts", "ruling", "prefer", "state", "label", "source"), RULED_TABLE)
def test_an_adjudication_stands_above_every_verdict(truth, verdicts, ruling, prefer, state, label, source):
    assert decide(truth, verdicts, prefer, ruling) == Decision(state, Label(label), source)


def _clip_label(truth: str, split: str, verdicts: list[str], roles: list | None = None, ruling: str | None = None):
    roles = roles or [None] * len(verdicts)
    standing = {f"p{i}": StandingVerdict(i, f"p{i}", v, None, "", None, role)
                for i, (v, role) in enumerate(zip(verdicts, roles, strict=True))}  # fmt: skip
    ruled = Ruling(9, "eve", Role.ENGINEER, Label(ruling), None, "heard it", None) if ruling else None
    return ClipLabel(1, Label(truth), Split(split), standing, decide(truth, verdicts, ruling=ruling), ruled)


ANN, ENG, MAN = Role.ANNOTATOR, Role.ENGINEER, Role.MANAGER
# (truth, verdicts, their roles, adjudication) -> (quality, trusted)
QUALITY = [
    ("unknown", [N], [ANN], None, LabelQuality.SINGLE, False),
    ("unknown", [N], [None], None, LabelQuality.SINGLE, False),  # a role not known counts as an annotator's
    ("unknown", [N], [ENG], None, LabelQuality.SINGLE, True),
    ("unknown", [A], [MAN], None, LabelQuality.SINGLE, True),
    ("unknown", [N, U], [ANN, ENG], None, LabelQuality.SINGLE, False),  # the engineer abstained
    ("unknown", [N, N], [ANN, ANN], None, LabelQuality.DOUBLE, True),
    ("unknown", [A, A, U], [ANN, None, ANN], None, LabelQuality.DOUBLE, True),
    ("unknown", [N, A], [ANN, ANN], N, LabelQuality.ADJUDICATED, True),
    ("unknown", [N], [ANN], A, LabelQuality.ADJUDICATED, True),
    ("normal", [], [], None, LabelQuality.GROUND_TRUTH, True),
    ("normal", [U], [ANN], None, LabelQuality.GROUND_TRUTH, True),
    ("normal", [A], [ANN], None, LabelQuality.SINGLE, False),  # one annotator against the layout
    ("unknown", [N, A], [ENG, ENG], None, None, False),  # disputed: no label, nothing to trust
    ("unknown", [U], [ENG], None, None, False),
]


@pytest.mark.parametrize(("truth", "verdicts", "roles", "ruling", "quality", "trusted"), QUALITY)
def test_label_quality_and_trust(truth, verdicts, roles, ruling, quality, trusted):
    clip = _clip_label(truth, "none", verdicts, roles, ruling)
    assert (clip.quality, clip.trusted) == (quality, trusted)


# (ground truth, split, verdicts) -> may an unsupervised detector learn it as normal, with TRAIN_FROM_VERDICTS=any?
TRAINING = [
    ("normal", "train", [], True),
    ("normal", "train", [N], True),
    ("normal", "train", [U], True),
    ("normal", "train", [A], False),  # a pilot heard a fault in a training clip
    ("normal", "train", [N, A], False),  # disputed: never training data
    ("unknown", "none", [N], True),  # a field clip pilots judged normal
    ("unknown", "none", [N, N], True),
    ("unknown", "none", [], False),  # unjudged
    ("normal", "none", [], False),  # outside both splits, nobody judged it
    ("unknown", "none", [U], False),
    ("unknown", "none", [A], False),
    ("unknown", "none", [N, A], False),
    ("normal", "test", [], False),  # never the test split
    ("normal", "test", [N], False),
    ("unknown", "test", [N], False),
    ("abnormal", "test", [N], False),
]


@pytest.mark.parametrize(("truth", "split", "verdicts", "allowed"), TRAINING)
def test_which_clips_may_teach_an_unsupervised_detector(truth, split, verdicts, allowed):
    assert may_train(_clip_label(truth, split, verdicts), TrainFrom.ANY) is allowed


# (truth, split, verdicts, roles, adjudication) -> why not learned under TRAIN_FROM_VERDICTS=trusted (None: learned)
TRUSTED_TRAINING = [
    ("unknown", "none", [N], [ANN], None, NotLearned.SECOND_OPINION),
    ("unknown", "none", [N], [None], None, NotLearned.SECOND_OPINION),
    ("unknown", "none", [N, U], [ANN, ENG], None, NotLearned.SECOND_OPINION),
    ("unknown", "none", [N], [ENG], None, None),
    ("unknown", "none", [N, N], [ANN, ANN], None, None),
    ("unknown", "none", [N, A], [ANN, ANN], N, None),  # a settled dispute
    ("unknown", "none", [N], [ANN], N, None),
    ("unknown", "none", [N, N], [ANN, ANN], A, NotLearned.ABNORMAL),  # overruled
    ("unknown", "none", [N, A], [ANN, ENG], None, NotLearned.DISPUTED),
    ("unknown", "none", [U], [ANN], None, NotLearned.UNSURE),
    ("unknown", "none", [], [], None, NotLearned.NOT_JUDGED),
    ("normal", "none", [], [], None, NotLearned.NOT_JUDGED),
    ("normal", "train", [], [], None, None),
    ("normal", "train", [N], [ANN], None, None),  # the layout and the pilot agree
    ("abnormal", "train", [N], [ANN], None, NotLearned.SECOND_OPINION),  # one pilot against the layout
    ("normal", "train", [A], [ENG], None, NotLearned.ABNORMAL),
    ("unknown", "test", [N, N], [ENG, ENG], N, NotLearned.TEST_SPLIT),
]


@pytest.mark.parametrize(("truth", "split", "verdicts", "roles", "ruling", "why"), TRUSTED_TRAINING)
def test_by_default_a_field_clip_teaches_only_on_a_trusted_normal(truth, split, verdicts, roles, ruling, why):
    clip = _clip_label(truth, split, verdicts, roles, ruling)
    assert why_not_learned(clip) is why and why_not_learned(clip, "trusted") is why
    assert may_train(clip) is (why is None)
    if why is NotLearned.SECOND_OPINION:
        assert may_train(clip, TrainFrom.ANY)  # today's rule takes it


# (truth, split, verdicts, roles, adjudication) -> a confirmed fault the automatic choice weighs, by default (trusted)
FAULTS = [
    ("abnormal", "train", [], [], None, True),  # the layout's word, outside the test split
    ("abnormal", "test", [A, A], [ENG, ENG], None, False),  # never the test split
    ("unknown", "test", [A], [ENG], None, False),
    ("unknown", "none", [A], [ANN], None, False),  # one pilot's word: not yet
    ("unknown", "none", [A], [None], None, False),
    ("unknown", "none", [A, A], [ANN, ANN], None, True),  # two agree
    ("unknown", "none", [A], [ENG], None, True),  # an engineer is trusted alone
    ("unknown", "none", [N], [ANN], A, True),  # settled abnormal
    ("unknown", "none", [A, N], [ANN, ANN], None, False),  # disputed
    ("unknown", "none", [A, A], [ANN, ANN], N, False),  # overruled
    ("normal", "train", [A], [ANN], None, False),  # one pilot against the layout
    ("unknown", "none", [U], [ENG], None, False),
]


@pytest.mark.parametrize(("truth", "split", "verdicts", "roles", "ruling", "fault"), FAULTS)
def test_a_fault_sways_the_choice_only_outside_the_test_split_and_on_a_trusted_word(truth, split, verdicts, roles,
                                                                                    ruling, fault):  # fmt: skip
    clip = _clip_label(truth, split, verdicts, roles, ruling)
    assert is_confirmed_fault(clip) is fault and is_confirmed_fault(clip, "trusted") is fault
    if (split, verdicts, ruling) == ("none", [A], None):
        assert is_confirmed_fault(clip, TrainFrom.ANY)  # TRAIN_FROM_VERDICTS=any takes one pilot's word


def test_training_rule_keeps_the_default_precedence_whatever_a_caller_asked():
    verdicts = [N]
    asked_truth_first = _clip_label("abnormal", "train", verdicts)
    asked_truth_first = ClipLabel(1, Label.ABNORMAL, Split.TRAIN, asked_truth_first.verdicts,
                                  decide("abnormal", verdicts, Prefer.GROUND_TRUTH))  # fmt: skip
    assert asked_truth_first.label == Label.ABNORMAL
    assert may_train(asked_truth_first, TrainFrom.ANY)  # the pilots' "normal" is what training follows
    assert why_not_learned(asked_truth_first) is NotLearned.SECOND_OPINION  # once it is trusted


def test_conflict_and_pilot_view():
    clip = _clip_label("normal", "test", [A, U])
    assert clip.conflict and clip.pilot_label == Label.ABNORMAL and not clip.pilot_unsure
    assert _clip_label("unknown", "none", [U, U]).pilot_unsure
    assert not _clip_label("normal", "test", [N]).conflict
    assert _clip_label("normal", "test", [N, A]).pilot_label is None


@pytest.fixture
def clips(any_db_url) -> str:
    """Four clips of fan/id_00 and their annotation history (with undo rows and a change of mind)."""
    with session_scope(any_db_url, write=True) as session:
        fan = get_or_create_machine(session, "fan", "id_00")
        for n, (label, split) in enumerate([("normal", "train"), ("unknown", "none"), ("abnormal", "test"),
                                            ("unknown", "none")], start=1):  # fmt: skip
            session.add(Clip(id=n, path=f"/c{n}.wav", content_hash=f"{n:064x}", machine=fan, label=label,
                             split=split, sample_rate=16000, n_channels=1, duration_s=10.0, n_bytes=1))  # fmt: skip
        session.flush()
        add_annotation(session, 1, "ana", "abnormal")  # 1: ana hears a fault in a training clip ...
        changed = add_annotation(session, 1, "ana", "normal")  # ... changes her mind ...
        session.add(Annotation(clip_id=1, annotator="ana", verdict="normal", undoes_id=changed.id))  # ... undoes it
        add_annotation(session, 2, "ana", "normal")  # 2: disputed
        add_annotation(session, 2, "bob", "abnormal")
        add_annotation(session, 3, "bob", "normal")  # 3: a pilot overrides the ground truth
        add_annotation(session, 4, "ana", "unsure")  # 4: unsure only
    return any_db_url


def test_policy_over_the_database(clips):
    with session_scope(clips) as session:
        rows = list(session.query(Clip).order_by(Clip.id))
        labels = labels_for_clips(session, rows)
        per_machine = labels_for_machines(session, rows, [rows[0].machine_pk])
    assert labels == per_machine
    assert {who: v.verdict for who, v in labels[1].verdicts.items()} == {"ana": "abnormal"}  # the undo restored it
    assert (labels[1].label, labels[1].source, labels[1].conflict) == ("abnormal", VERDICT, True)
    assert not may_train(labels[1])
    assert labels[2].disputed and labels[2].label is None and not may_train(labels[2])
    assert (labels[3].label, labels[3].source) == ("normal", VERDICT)
    assert labels[4].state == UNSURE and labels[4].pilot_unsure
    with session_scope(clips) as session:
        rows = list(session.query(Clip).order_by(Clip.id))
        truth_first = labels_for_clips(session, rows, Prefer.GROUND_TRUTH)
    assert (truth_first[3].label, truth_first[3].source) == ("abnormal", TRUTH)
    assert truth_first[2].disputed  # a dispute stays a dispute


def test_the_latest_adjudication_stands_and_settles_a_dispute(clips):
    with session_scope(clips, write=True) as session:
        add_adjudication(session, 2, "eve", "engineer", "abnormal", "rattle at 3 s", "bearing")
        add_adjudication(session, 2, "max", "manager", "normal", "the rattle is the neighbouring press")
        add_annotation(session, 4, "bob", "normal", role="engineer")
    with session_scope(clips) as session:
        rows = list(session.query(Clip).order_by(Clip.id))
        labels = labels_for_clips(session, rows)
        assert labels == labels_for_machines(session, rows, [rows[0].machine_pk])
    settled = labels[2]
    assert (settled.state, settled.label, settled.source, settled.quality) == (SETTLED, "normal", RULED, "adjudicated")
    assert settled.settled and not settled.disputed and settled.trusted and may_train(settled)
    assert (settled.ruling.adjudicator, settled.ruling.role, settled.ruling.reason) == (
        "max",
        Role.MANAGER,
        "the rattle is the neighbouring press",
    )
    assert settled.labelled_at == settled.ruling.at
    assert labels[4].verdicts["bob"].role is Role.ENGINEER and labels[4].trusted  # an engineer's word alone
    assert labels[3].verdicts["bob"].role is None and not labels[3].trusted
    text = describe(labels.values())
    assert text.startswith("4 labelled clips: ground truth for 0, pilot verdicts for 3 (3 single-annotator, "
                           "0 double-confirmed), adjudications for 1")  # fmt: skip


def test_describe_names_the_sources_and_what_is_left_out():
    labels = [_clip_label("normal", "test", []), _clip_label("unknown", "none", [N, N]),
              _clip_label("unknown", "none", [N, A]), _clip_label("unknown", "none", [U]),
              _clip_label("unknown", "none", [A], ruling=N)]  # fmt: skip
    assert describe(labels) == (
        "3 labelled clips: ground truth for 1, pilot verdicts for 1 (0 single-annotator, "
        "1 double-confirmed), adjudications for 1 (1 disputed, 1 unsure left out)"
    )


def test_ruling_dates_are_kept():
    when = datetime(2026, 11, 30, tzinfo=UTC)
    clip = ClipLabel(1, Label.UNKNOWN, Split.NONE, {}, decide("unknown", [], ruling=A),
                     Ruling(1, "eve", Role.ENGINEER, Label.ABNORMAL, "bearing", "whine", when))  # fmt: skip
    assert clip.labelled_at == when and clip.conflict is False
