"""The label policy: what a clip's label is, where it comes from, and whether it may teach a model.

Every consumer asks here (Thresholds, exports, comparisons, retraining, drift, Overview's counts and
the Triage review list), so a clip has the same label on every page.  The rules, in order:

1. **Standing verdict.** Each annotator's standing verdict on a clip is their latest verdict that no
   undo row cancels (undoing a change of mind restores their earlier verdict).
2. **What the verdicts say.** ``unsure`` abstains.  If the standing verdicts include both ``normal``
   and ``abnormal`` the clip is **disputed**: it has no label at all (whatever the layout says), is
   never training data, is never counted as confirmed or rejected, and waits on the review list until
   the annotators settle it.  Otherwise the verdicts' label is their one ``normal``/``abnormal`` value,
   if any.
3. **Verdicts against ground truth.** The layout's ground truth (MIMII's folders, DCASE's file names)
   and the verdicts' label may both exist.  By default (:data:`DEFAULT_PREFER`) the pilots' verdict
   wins: the team's judgement on its own plant is the system of record, and a conflict is counted.
   An export may ask for ``ground-truth`` first instead.
4. **Unsure and unlabelled.** A clip with neither label is ``unsure`` when someone judged it unsure,
   else ``unlabelled``.
5. **Training data** for the unsupervised detectors (:func:`may_train`): clips labelled ``normal``
   under the default precedence, outside the test split: the normal clips of the training split that
   no verdict contradicts, and field clips (split ``none``) the pilots judged normal.  Never a test
   clip, a disputed one, or one judged abnormal.

:func:`decide` is the pure rule; :func:`labels_for_clips` and :func:`labels_for_machines` apply it to
what the database holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from core.vocabulary import CLASSES, Label, LabelSource, LabelState, Prefer, Split, Verdict
from db.models import Annotation, Clip
from db.queries import annotations_of_clips, annotations_of_machines

DEFAULT_PREFER = Prefer.VERDICTS
RULE = ("pilot verdicts win over ground truth; disputed clips (normal against abnormal) and unsure-only "
        "clips have no label")  # fmt: skip


@dataclass(frozen=True)
class StandingVerdict:
    """One annotator's standing verdict on a clip."""

    annotation_id: int
    annotator: str
    verdict: Verdict
    anomaly_type: str | None
    note: str
    at: datetime


@dataclass(frozen=True)
class Decision:
    """The outcome of :func:`decide`: a state, and the label and its source when the state is labelled."""

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
    """

    clip_id: int
    truth: Label
    split: Split
    verdicts: Mapping[str, StandingVerdict]
    decision: Decision

    @property
    def state(self) -> LabelState:
        return self.decision.state

    @property
    def label(self) -> Label | None:
        """``normal`` or ``abnormal`` when labelled, else None."""
        return self.decision.label

    @property
    def source(self) -> LabelSource | None:
        return self.decision.source

    @property
    def judged(self) -> bool:
        """Whether anyone has a standing verdict on the clip (it has left the triage queue)."""
        return bool(self.verdicts)

    @property
    def disputed(self) -> bool:
        return self.state is LabelState.DISPUTED

    @property
    def pilot_label(self) -> Label | None:
        """What the verdicts alone say (rule 2): ``normal``, ``abnormal``, or None (none, unsure, disputed)."""
        return verdicts_label({v.verdict for v in self.verdicts.values()})

    @property
    def pilot_unsure(self) -> bool:
        """Judged, but only ``unsure``."""
        return self.judged and {v.verdict for v in self.verdicts.values()} == {Verdict.UNSURE}

    @property
    def conflict(self) -> bool:
        """The verdicts and the ground truth both give a label, and they differ."""
        return self.pilot_label is not None and self.truth in CLASSES and self.pilot_label != self.truth

    @property
    def labelled_at(self) -> datetime | None:
        """When the label was given: the latest standing verdict when it comes from the verdicts."""
        if self.source is LabelSource.VERDICT:
            return max(v.at for v in self.verdicts.values())
        return None


def verdicts_label(verdicts: Iterable[Verdict | str]) -> Label | None:
    """The one label a set of standing verdicts agrees on (``unsure`` abstains), or None."""
    said = {Verdict(v) for v in verdicts} - {Verdict.UNSURE}
    return Label(said.pop()) if len(said) == 1 else None


def decide(truth: Label | str, verdicts: Iterable[Verdict | str], prefer: Prefer | str = DEFAULT_PREFER) -> Decision:
    """A clip's state, label and label source from its ground truth and its standing verdicts (rules 2-4).

    Parameters
    ----------
    truth : Label
        The layout's label (``unknown`` when it gives none).
    verdicts : iterable of Verdict
        The clip's standing verdicts, one per annotator.
    prefer : Prefer
        Which source wins when both give a label (default: the verdicts).
    """
    said = {Verdict(v) for v in verdicts}
    if {Verdict.NORMAL, Verdict.ABNORMAL} <= said:
        return Decision(LabelState.DISPUTED)
    from_verdicts = verdicts_label(said)
    truth = Label(truth)
    candidates = [(from_verdicts, LabelSource.VERDICT), (truth if truth in CLASSES else None, LabelSource.GROUND_TRUTH)]
    if Prefer(prefer) is Prefer.GROUND_TRUTH:
        candidates.reverse()
    for label, source in candidates:
        if label is not None:
            return Decision(LabelState.LABELLED, label, source)
    return Decision(LabelState.UNSURE if Verdict.UNSURE in said else LabelState.UNLABELLED)


def may_train(clip: ClipLabel) -> bool:
    """Rule 5: whether an unsupervised detector may learn from the clip as a normal one."""
    decision = decide(clip.truth, _said(clip))
    if clip.split == Split.TRAIN:
        return decision.label == Label.NORMAL
    return clip.split == Split.NONE and decision.label == Label.NORMAL and decision.source is LabelSource.VERDICT


def standing(rows: Iterable[Annotation]) -> dict[int, dict[str, StandingVerdict]]:
    """Rule 1 over annotation rows (any order): ``{clip_id: {annotator: standing verdict}}``."""
    rows = sorted(rows, key=lambda row: row.id)
    undone = {row.undoes_id for row in rows if row.undoes_id is not None}
    out: dict[int, dict[str, StandingVerdict]] = {}
    for row in rows:
        if row.undoes_id is None and row.id not in undone:
            out.setdefault(row.clip_id, {})[row.annotator] = StandingVerdict(
                row.id, row.annotator, Verdict(row.verdict), row.anomaly_type, row.note, row.created_at
            )
    return out


def label_of(clip: Clip, verdicts: Mapping[str, StandingVerdict], prefer: Prefer | str = DEFAULT_PREFER) -> ClipLabel:
    """The policy applied to one clip row and its standing verdicts."""
    decision = decide(clip.label, (v.verdict for v in verdicts.values()), prefer)
    return ClipLabel(clip.id, Label(clip.label), Split(clip.split), dict(verdicts), decision)


def labels_for_clips(
    session: Session, clips: Iterable[Clip], prefer: Prefer | str = DEFAULT_PREFER
) -> dict[int, ClipLabel]:
    """``{clip_id: ClipLabel}`` for these clip rows (a few thousand at most: their ids go into one query)."""
    clips = list(clips)
    by_clip = standing(annotations_of_clips(session, [c.id for c in clips]))
    return {c.id: label_of(c, by_clip.get(c.id, {}), prefer) for c in clips}


def labels_for_machines(
    session: Session, clips: Iterable[Clip], machine_pks: list[int], prefer: Prefer | str = DEFAULT_PREFER
) -> dict[int, ClipLabel]:
    """``{clip_id: ClipLabel}`` for these clips, all of the machines ``machine_pks`` (verdicts read per machine)."""
    by_clip = standing(annotations_of_machines(session, machine_pks))
    return {c.id: label_of(c, by_clip.get(c.id, {}), prefer) for c in clips}


def describe(labels: Iterable[ClipLabel]) -> str:
    """A set of clips' labels in words: how many from ground truth, how many from verdicts, what was left out."""
    labels = list(labels)
    labelled = [c for c in labels if c.state is LabelState.LABELLED]
    truth = sum(c.source is LabelSource.GROUND_TRUTH for c in labelled)
    text = f"{len(labelled)} labelled clips: ground truth for {truth}, pilot verdicts for {len(labelled) - truth}"
    left = {state: sum(c.state is state for c in labels) for state in (LabelState.DISPUTED, LabelState.UNSURE)}
    extra = [f"{n} {state.value}" for state, n in left.items() if n]
    return text + (f" ({', '.join(extra)} left out)" if extra else "")


def _said(clip: ClipLabel) -> list[Verdict]:
    return [v.verdict for v in clip.verdicts.values()]
