"""The label policy: what a clip's label is, where it comes from, how many people stand behind it, and whether
it may teach a model.

Every consumer asks here (Thresholds, exports, comparisons, retraining, drift, Overview's counts, the Triage
review list and the review queue), so a clip has the same label on every page.  The rules, in order:

1. **Standing verdict.** Each annotator's standing verdict on a clip is their latest verdict that no
   undo row cancels (undoing a change of mind restores their earlier verdict).
2. **Adjudication first.** A clip's standing adjudication (its latest: an engineer's or higher's final
   ``normal`` or ``abnormal``, with a reason) is its label, above every individual verdict: the clip is
   **settled**, whatever the verdicts say.
3. **What the verdicts say.** ``unsure`` abstains.  If the standing verdicts include both ``normal``
   and ``abnormal`` the clip is **disputed**: it has no label at all (whatever the layout says), is
   never training data, is never counted as confirmed or rejected, and waits in the review queue until
   an adjudication settles it (or one side changes their mind).  Otherwise the verdicts' label is their
   one ``normal``/``abnormal`` value, if any.
4. **Verdicts against ground truth.** The layout's ground truth (MIMII's folders, DCASE's file names)
   and the team's label (adjudication, else verdicts) may both exist.  By default (:data:`DEFAULT_PREFER`)
   the team wins: its judgement on its own plant is the system of record, and a conflict is counted.
   An export may ask for ``ground-truth`` first instead.
5. **Unsure and unlabelled.** A clip with neither label is ``unsure`` when someone judged it unsure,
   else ``unlabelled``.
6. **Quality and trust** (:attr:`ClipLabel.quality`, :attr:`ClipLabel.trusted`).  A label from verdicts is
   ``single`` (one annotator says it) or ``double`` (two or more different annotators' standing verdicts
   say it); one from an adjudication is ``adjudicated``, one from the layout ``ground truth``.  A label is
   *trusted* unless it is a single annotator's whose role, when judging, was below
   :data:`TRUSTED_ROLE` (engineer: the role that may adjudicate).  A verdict whose role is not known counts
   as an annotator's.
7. **Training data** for the unsupervised detectors (:func:`may_train`, :func:`why_not_learned`): clips
   labelled ``normal`` under the default precedence, outside the test split: the normal clips of the
   training split that no verdict contradicts, and field clips (split ``none``) the team labelled normal,
   under ``TRAIN_FROM_VERDICTS``: ``trusted`` (the default) takes a verdict's ``normal`` only when the label
   is trusted (a training-split clip whose layout already says normal needs nothing more); ``any`` takes
   any standing ``normal``.  Never a test clip, a disputed one, or one labelled abnormal.

8. **Judged enough.** A flagged clip leaves the triage queue once it has one annotator's standing verdict,
   or two different annotators' for the ``OVERLAP_FRACTION`` share of clips chosen by a hash of the clip id
   (:func:`needs_two_annotators`), or an adjudication; nobody is served a clip they judged
   (:func:`awaits_verdict`).

:func:`decide` is the pure rule; :func:`labels_for_clips` and :func:`labels_for_machines` apply it to
what the database holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from core.access import PERMISSIONS, Action, Role
from core.settings import TrainFrom
from core.vocabulary import CLASSES, Label, LabelQuality, LabelSource, LabelState, Prefer, Split, Verdict
from db.models import Adjudication, Annotation, Clip
from db.queries import (
    adjudications_of_clips,
    adjudications_of_machines,
    annotations_of_clips,
    annotations_of_machines,
    overlap_cut,
    overlap_hash,
)

DEFAULT_PREFER = Prefer.VERDICTS
TRUSTED_ROLE = PERMISSIONS[Action.ADJUDICATE]  # one verdict by this role or higher is trusted alone
RULE = ("adjudications win over pilot verdicts, pilot verdicts over ground truth; disputed clips (normal against "
        "abnormal) have no label until adjudicated, whatever the ground truth; unsure verdicts abstain, so a clip "
        "judged only unsure keeps its ground truth (a test-split clip) and has no label without one")  # fmt: skip


class NotLearned(StrEnum):
    """Why :func:`why_not_learned` keeps a clip out of an unsupervised detector's training."""

    TEST_SPLIT = "test split"
    NOT_JUDGED = "no verdict"  # a field clip nobody judged (or a training clip without a label)
    UNSURE = "unsure"
    DISPUTED = "disputed"
    ABNORMAL = "abnormal"
    SECOND_OPINION = "awaiting a second opinion"  # one annotator's "normal": not trusted under TRAIN_FROM_VERDICTS


@dataclass(frozen=True)
class StandingVerdict:
    """One annotator's standing verdict on a clip (``role``: theirs when judging; None when not known)."""

    annotation_id: int
    annotator: str
    verdict: Verdict
    anomaly_type: str | None
    note: str
    at: datetime
    role: Role | None = None


@dataclass(frozen=True)
class Ruling:
    """A clip's standing adjudication: its latest."""

    adjudication_id: int
    adjudicator: str
    role: Role
    verdict: Label
    anomaly_type: str | None
    reason: str
    at: datetime


@dataclass(frozen=True)
class Decision:
    """The outcome of :func:`decide`: a state, and the label and its source when the clip has one."""

    state: LabelState
    label: Label | None = None
    source: LabelSource | None = None


@dataclass(frozen=True)
class ClipLabel:
    """A clip under the label policy.

    Attributes
    ----------
    clip_id : int
    truth : Label
        The layout's ground truth (``unknown`` when it says nothing).
    split : Split
    verdicts : dict of str to StandingVerdict
        Each annotator's standing verdict, by annotator name.
    decision : Decision
        State, label and source under the policy's precedence.
    ruling : Ruling or None
        The standing adjudication, if any.
    """

    clip_id: int
    truth: Label
    split: Split
    verdicts: Mapping[str, StandingVerdict]
    decision: Decision
    ruling: Ruling | None = None

    @property
    def state(self) -> LabelState:
        return self.decision.state

    @property
    def label(self) -> Label | None:
        """``normal`` or ``abnormal`` when the clip has a label (labelled or settled), else None."""
        return self.decision.label

    @property
    def source(self) -> LabelSource | None:
        return self.decision.source

    @property
    def judged(self) -> bool:
        """Whether anyone has a standing verdict on the clip."""
        return bool(self.verdicts)

    @property
    def disputed(self) -> bool:
        """Normal against abnormal, and no adjudication yet."""
        return self.state is LabelState.DISPUTED

    @property
    def settled(self) -> bool:
        """An adjudication gives the label."""
        return self.state is LabelState.SETTLED

    @property
    def pilot_label(self) -> Label | None:
        """What the verdicts alone say (rule 3): ``normal``, ``abnormal``, or None (none, unsure, disputed)."""
        return verdicts_label({v.verdict for v in self.verdicts.values()})

    @property
    def pilot_unsure(self) -> bool:
        """Judged, but only ``unsure``."""
        return self.judged and {v.verdict for v in self.verdicts.values()} == {Verdict.UNSURE}

    @property
    def conflict(self) -> bool:
        """The team (adjudication, else verdicts) and the ground truth both give a label, and they differ."""
        team = self.ruling.verdict if self.ruling else self.pilot_label
        return team is not None and self.truth in CLASSES and team != self.truth

    @property
    def labelled_at(self) -> datetime | None:
        """When the label was given: the adjudication, or the latest standing verdict, when one of them gives it."""
        if self.source is LabelSource.ADJUDICATION:
            return self.ruling.at
        if self.source is LabelSource.VERDICT:
            return max(v.at for v in self.verdicts.values())
        return None

    @property
    def agreeing(self) -> list[StandingVerdict]:
        """The standing verdicts that say the clip's label."""
        return [v for v in self.verdicts.values() if self.label is not None and v.verdict == self.label]

    @property
    def quality(self) -> LabelQuality | None:
        """How many people stand behind the label (rule 6); None without a label."""
        if self.label is None:
            return None
        if self.source is not LabelSource.VERDICT:
            return LabelQuality.ADJUDICATED if self.source is LabelSource.ADJUDICATION else LabelQuality.GROUND_TRUTH
        return LabelQuality.DOUBLE if len(self.agreeing) >= 2 else LabelQuality.SINGLE

    @property
    def trusted(self) -> bool:
        """Rule 6: labelled, and not a single annotator's verdict below :data:`TRUSTED_ROLE`."""
        if self.quality is not LabelQuality.SINGLE:
            return self.quality is not None
        return any(v.role is not None and v.role.rank >= TRUSTED_ROLE.rank for v in self.agreeing)


def verdicts_label(verdicts: Iterable[Verdict | str]) -> Label | None:
    """The one label a set of standing verdicts agrees on (``unsure`` abstains), or None."""
    said = {Verdict(v) for v in verdicts} - {Verdict.UNSURE}
    return Label(said.pop()) if len(said) == 1 else None


def decide(
    truth: Label | str,
    verdicts: Iterable[Verdict | str],
    prefer: Prefer | str = DEFAULT_PREFER,
    ruling: Label | str | None = None,
) -> Decision:
    """A clip's state, label and label source from its ground truth, its standing verdicts and its standing
    adjudication (rules 2-5).

    Parameters
    ----------
    truth : Label
        The layout's label (``unknown`` when it gives none).
    verdicts : iterable of Verdict
        The clip's standing verdicts, one per annotator.
    prefer : Prefer
        Which wins when both the team and the ground truth give a label (default: the team).
    ruling : Label or None
        The clip's standing adjudication (``normal`` or ``abnormal``), if any.
    """
    said = {Verdict(v) for v in verdicts}
    truth = Label(truth)
    truth_label = truth if truth in CLASSES else None
    if ruling is not None:
        team = (Label(ruling), LabelSource.ADJUDICATION)
    elif {Verdict.NORMAL, Verdict.ABNORMAL} <= said:
        return Decision(LabelState.DISPUTED)
    else:
        team = (verdicts_label(said), LabelSource.VERDICT)
    candidates = [team, (truth_label, LabelSource.GROUND_TRUTH)]
    if Prefer(prefer) is Prefer.GROUND_TRUTH:
        candidates.reverse()
    for label, source in candidates:
        if label is not None:
            state = LabelState.SETTLED if source is LabelSource.ADJUDICATION else LabelState.LABELLED
            return Decision(state, label, source)
    return Decision(LabelState.UNSURE if Verdict.UNSURE in said else LabelState.UNLABELLED)


def _by_default(clip: ClipLabel) -> ClipLabel:
    """``clip`` decided under the default precedence, whatever precedence it was decided with."""
    return replace(clip, decision=decide(clip.truth, _said(clip), DEFAULT_PREFER, _ruled(clip)))


def why_not_learned(clip: ClipLabel, train_from: TrainFrom | str = TrainFrom.TRUSTED) -> NotLearned | None:
    """Rule 7: None when an unsupervised detector may learn the clip as a normal one, else why not.

    The clip is judged under the default precedence whatever precedence ``clip`` was decided with."""
    clip = _by_default(clip)
    if clip.split not in (Split.TRAIN, Split.NONE):
        return NotLearned.TEST_SPLIT
    if clip.label is None:
        return {LabelState.DISPUTED: NotLearned.DISPUTED, LabelState.UNSURE: NotLearned.UNSURE}.get(
            clip.state, NotLearned.NOT_JUDGED
        )
    if clip.label != Label.NORMAL:
        return NotLearned.ABNORMAL
    if clip.source is LabelSource.GROUND_TRUTH:
        return None if clip.split == Split.TRAIN else NotLearned.NOT_JUDGED  # a field clip needs the team's word
    if clip.split == Split.TRAIN and clip.truth == Label.NORMAL:
        return None  # the layout and the team agree
    if TrainFrom(train_from) is TrainFrom.ANY or clip.trusted:
        return None
    return NotLearned.SECOND_OPINION


def is_confirmed_fault(clip: ClipLabel, train_from: TrainFrom | str = TrainFrom.TRUSTED) -> bool:
    """Rule 7's other side: whether the automatic choice may weigh the clip as a fault of its machine.  Outside the
    test split and abnormal under the default precedence, from the layout, or from the team's word when it is
    trusted as a normal label must be to teach (``train_from``): one pilot's word sways no choice by default."""
    clip = _by_default(clip)
    if clip.split not in (Split.TRAIN, Split.NONE) or clip.label != Label.ABNORMAL:
        return False
    return clip.source is LabelSource.GROUND_TRUTH or TrainFrom(train_from) is TrainFrom.ANY or clip.trusted


def needs_two_annotators(clip_id: int, overlap_fraction: float) -> bool:
    """Whether the clip is in the overlap sample (``OVERLAP_FRACTION``): chosen by a hash of its id, so every
    session, process and page agrees, about ``overlap_fraction`` of each machine's clips.  The hash
    (:func:`db.queries.overlap_hash`, multiplicative) is one the database computes too, so the triage queue
    is chosen, ordered and limited in SQL."""
    return overlap_hash(int(clip_id)) < overlap_cut(overlap_fraction)


def awaits_verdict(clip: ClipLabel, overlap_fraction: float, annotator: str | None = None) -> bool:
    """Whether a flagged clip still waits in the triage queue (for ``annotator``, when named): it is not settled,
    ``annotator`` has no standing verdict on it (nobody is served a clip twice), and it has fewer annotators'
    standing verdicts than it needs: two in the overlap sample (:func:`needs_two_annotators`), else one."""
    if clip.settled or (annotator is not None and annotator in clip.verdicts):
        return False
    return len(clip.verdicts) < (2 if needs_two_annotators(clip.clip_id, overlap_fraction) else 1)


def may_train(clip: ClipLabel, train_from: TrainFrom | str = TrainFrom.TRUSTED) -> bool:
    """Rule 7: whether an unsupervised detector may learn from the clip as a normal one."""
    return why_not_learned(clip, train_from) is None


def standing(rows: Iterable[Annotation]) -> dict[int, dict[str, StandingVerdict]]:
    """Rule 1 over annotation rows (any order): ``{clip_id: {annotator: standing verdict}}``."""
    rows = sorted(rows, key=lambda row: row.id)
    undone = {row.undoes_id for row in rows if row.undoes_id is not None}
    out: dict[int, dict[str, StandingVerdict]] = {}
    for row in rows:
        if row.undoes_id is None and row.id not in undone:
            out.setdefault(row.clip_id, {})[row.annotator] = StandingVerdict(
                row.id, row.annotator, Verdict(row.verdict), row.anomaly_type, row.note, row.created_at,
                Role(row.role) if row.role else None,
            )  # fmt: skip
    return out


def rulings(rows: Iterable[Adjudication]) -> dict[int, Ruling]:
    """Rule 2 over adjudication rows (any order): ``{clip_id: its latest adjudication}``."""
    out: dict[int, Ruling] = {}
    for row in sorted(rows, key=lambda row: row.id):
        out[row.clip_id] = Ruling(row.id, row.adjudicator, Role(row.role), Label(row.verdict), row.anomaly_type,
                                  row.reason, row.created_at)  # fmt: skip
    return out


def label_of(
    clip: Clip,
    verdicts: Mapping[str, StandingVerdict],
    prefer: Prefer | str = DEFAULT_PREFER,
    ruling: Ruling | None = None,
) -> ClipLabel:
    """The policy applied to one clip row, its standing verdicts and its standing adjudication."""
    decision = decide(clip.label, (v.verdict for v in verdicts.values()), prefer, ruling.verdict if ruling else None)
    return ClipLabel(clip.id, Label(clip.label), Split(clip.split), dict(verdicts), decision, ruling)


def labels_for_clips(
    session: Session, clips: Iterable[Clip], prefer: Prefer | str = DEFAULT_PREFER
) -> dict[int, ClipLabel]:
    """``{clip_id: ClipLabel}`` for these clip rows (a few thousand at most: their ids go into one query)."""
    clips = list(clips)
    ids = [c.id for c in clips]
    by_clip, ruled = standing(annotations_of_clips(session, ids)), rulings(adjudications_of_clips(session, ids))
    return {c.id: label_of(c, by_clip.get(c.id, {}), prefer, ruled.get(c.id)) for c in clips}


def labels_for_machines(
    session: Session, clips: Iterable[Clip], machine_pks: list[int], prefer: Prefer | str = DEFAULT_PREFER
) -> dict[int, ClipLabel]:
    """``{clip_id: ClipLabel}`` for these clips, all of the machines ``machine_pks`` (verdicts read per machine)."""
    by_clip = standing(annotations_of_machines(session, machine_pks))
    ruled = rulings(adjudications_of_machines(session, machine_pks))
    return {c.id: label_of(c, by_clip.get(c.id, {}), prefer, ruled.get(c.id)) for c in clips}


def describe(labels: Iterable[ClipLabel]) -> str:
    """A set of clips' labels in words: how many from ground truth, from verdicts (single-annotator or
    double-confirmed) and from adjudications, and what was left out."""
    labels = list(labels)
    labelled = [c for c in labels if c.label is not None]
    quality = {q: sum(c.quality is q for c in labelled) for q in LabelQuality}
    single, double = quality[LabelQuality.SINGLE], quality[LabelQuality.DOUBLE]
    text = (f"{len(labelled)} labelled clips: ground truth for {quality[LabelQuality.GROUND_TRUTH]}, pilot verdicts "
            f"for {single + double} ({single} single-annotator, {double} double-confirmed), adjudications for "
            f"{quality[LabelQuality.ADJUDICATED]}")  # fmt: skip
    left = {state: sum(c.state is state for c in labels) for state in (LabelState.DISPUTED, LabelState.UNSURE)}
    extra = [f"{n} {state.value}" for state, n in left.items() if n]
    return text + (f" ({', '.join(extra)} left out)" if extra else "")


def _said(clip: ClipLabel) -> list[Verdict]:
    return [v.verdict for v in clip.verdicts.values()]


def _ruled(clip: ClipLabel) -> Label | None:
    return clip.ruling.verdict if clip.ruling else None
