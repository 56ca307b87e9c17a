"""core.workflows.labels: the one label policy, rule by rule (pure), and over a real database on both backends."""

from __future__ import annotations

import pytest

from core.vocabulary import Label, LabelSource, LabelState, Prefer, Split
from core.workflows.labels import ClipLabel, Decision, decide, labels_for_clips, labels_for_machines, may_train
from db.models import Annotation, Clip
from db.queries import add_annotation, get_or_create_machine
from db.session import session_scope

N, A, U = "normal", "abnormal", "unsure"
LABELLED, DISPUTED, UNSURE, UNLABELLED = (
    LabelState.LABELLED,
    LabelState.DISPUTED,
    LabelState.UNSURE,
    LabelState.UNLABELLED,
)
TRUTH, VERDICT = LabelSource.GROUND_TRUTH, LabelSource.VERDICT

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


def _clip_label(truth: str, split: str, verdicts: list[str]) -> ClipLabel:
    from core.workflows.labels import StandingVerdict

    standing = {f"p{i}": StandingVerdict(i, f"p{i}", v, None, "", None) for i, v in enumerate(verdicts)}
    return ClipLabel(1, Label(truth), Split(split), standing, decide(truth, verdicts))


# (ground truth, split, verdicts) -> may an unsupervised detector learn it as normal?
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
    assert may_train(_clip_label(truth, split, verdicts)) is allowed


def test_training_rule_keeps_the_default_precedence_whatever_a_caller_asked():
    verdicts = [N]
    asked_truth_first = _clip_label("abnormal", "train", verdicts)
    asked_truth_first = ClipLabel(1, Label.ABNORMAL, Split.TRAIN, asked_truth_first.verdicts,
                                  decide("abnormal", verdicts, Prefer.GROUND_TRUTH))  # fmt: skip
    assert asked_truth_first.label == Label.ABNORMAL
    assert may_train(asked_truth_first)  # the pilots' "normal" is what training follows


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
