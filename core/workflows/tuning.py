"""Suggesting and setting a machine's threshold, recorded with who, when and why.

Label-free suggestions use the active model's normal training scores (gamma fit).
Labelled suggestions, and the page's precision and recall, use one set of clips
(:func:`labelled_set`): those the model did not train on, labelled by the label policy
(:mod:`core.workflows.labels`), outside the test split unless ``use_test=True`` is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy.orm import Session

from core.access import Action, Actor, on_behalf_of, recorded_name
from core.detection.selection import name_of
from core.detection.thresholds import (
    DEFAULT_QUANTILE,
    METHODS,
    gamma_threshold,
    max_f1_threshold,
    method_name,
    min_cost_threshold,
    target_precision_threshold,
    target_recall_threshold,
)
from core.errors import BadInputError, NoModelError, Reason, check_text, shown
from core.vocabulary import Label, Split
from core.workflows.audit import record_event
from core.workflows.catalogue import machine_named
from core.workflows.labels import RULE, ClipLabel, decide, describe, labels_for_machines
from core.workflows.model_store import load_detector
from core.workflows.scoring import score_with_model
from db.models import Machine
from db.queries import (
    active_threshold,
    add_threshold,
    clips_in_splits,
    clips_per_day,
    counts_for_machine,
    machine_by_key,
    score_sketch,
    threshold_history,
    tuning_rows,
)
from db.session import session_scope

RECORDED_METHODS = ("manual", *METHODS)  # how a threshold set here was chosen: by hand, or a suggestion's method
LABELLED_METHODS = tuple(m for m in METHODS if m != "gamma")  # the suggestions fitted on labelled clips
WITH_TEST_SPLIT = "outside the training split"  # how a labelled set (and a suggestion's reason) names its clips
WITHOUT_TEST_SPLIT = "outside the training and test splits"


def fitted_with_test_split(reason: str) -> bool:
    """Whether a labelled suggestion whose reason is ``reason`` fitted on the test split's clips too."""
    return WITH_TEST_SPLIT in reason


@dataclass(frozen=True)
class Suggestion:
    """A suggested threshold: ``reason`` says how it was found and on which clips, under which label policy (as it
    is saved); ``how`` is its first part alone (``maximum F1``), for a page that names the clips once."""

    machine: str
    model_id: int
    method: str
    value: float
    reason: str
    how: str


@dataclass(frozen=True)
class SuggestOptions:
    """``method``: gamma, max_f1, target_recall, target_precision or min_cost."""

    method: str = "gamma"
    quantile: float = DEFAULT_QUANTILE
    target: float = 0.9
    cost_miss: float = 10.0
    cost_false_alarm: float = 1.0
    use_test: bool = False


def one_machine(session: Session, spec: str) -> Machine:
    """The machine ``type/id`` with an active model, or a clear error."""
    machine = machine_named(session, spec)
    if machine.active_model is None:
        raise NoModelError(f"{spec} has no trained model yet: run `train` first")
    return machine


def score_missing(spec: str, *, url: str | None = None) -> None:
    """Score the clips of machine ``spec`` that its active model has not scored yet."""
    with session_scope(url) as session:
        machine = one_machine(session, spec)
        model, pks = machine.active_model, [machine.id]
    score_with_model(model, pks, url=url)


SKETCH_POINTS = 2000  # unlabelled scores read per machine at most: evenly ranked, so shares are within 1/2000


@dataclass(frozen=True)
class LabelledSet:
    """The clips thresholds are tuned on, and their scores: one set for the page's metrics and every suggestion.

    Which clips: those the active model scored and did not train on, outside the training split, and
    outside the test split unless ``use_test``.  Labels follow the label policy
    (:mod:`core.workflows.labels`); ``description`` says which clips and which rule.

    Attributes
    ----------
    scores : ndarray of float, shape (n_labelled,)
    is_abnormal : ndarray of bool, shape (n_labelled,)
    unlabelled_scores : ndarray of float, shape (n_shown,)
        Scores of the set's clips without a label: every disputed or unsure clip's, and of the clips nobody
        judged and the layout does not label, at most ``SKETCH_POINTS + 1`` at evenly spaced ranks (lowest and
        highest included; all of them when there are no more).
    description : str
    unlabelled_weights : ndarray of float, shape (n_shown,)
        How many clips each of ``unlabelled_scores`` stands for (1 where every score is read).
    """

    scores: np.ndarray
    is_abnormal: np.ndarray
    unlabelled_scores: np.ndarray
    description: str
    unlabelled_weights: np.ndarray | None = None


def _layout_labels(rows) -> dict[int, ClipLabel]:
    """The label policy's :class:`ClipLabel` of each row nobody judged: its layout's word alone decides, so the
    decision is made once per layout label (:func:`core.workflows.labels.decide`), not once per clip."""
    made: dict[tuple[str, str], tuple] = {}  # (layout label, split) -> (truth, split, decision)
    out = {}
    for r in rows:
        if not r.judged:
            key = (r.label, r.split)
            truth, split, decision = made.get(key) or made.setdefault(key, (Label(r.label), Split(r.split),
                                                                             decide(r.label, ())))  # fmt: skip
            out[r.id] = ClipLabel(r.id, truth, split, {}, decision)
    return out


def labelled_set(session: Session, machine: Machine, use_test: bool) -> LabelledSet:
    """The :class:`LabelledSet` of ``machine``'s active model (clips it has not scored are not in it).

    Reads the clips the layout labels or someone judged as four columns, puts only those through the label
    policy, and of the rest (never judged, no layout label: most field clips) only a rank sketch the database
    computes (:func:`db.queries.score_sketch`): bounded by the labels, not by the clips."""
    model = machine.active_model
    trained_on = set(model.provenance.get("clip_ids", []))  # incl. field clips pilots confirmed normal
    splits = [s.value for s in Split if s is not Split.TRAIN and (use_test or s is not Split.TEST)]
    rows = [r for r in tuning_rows(session, model.id, machine.id, splits) if r.id not in trained_on]
    labels = labels_for_machines(session, [r for r in rows if r.judged], [machine.id]) | _layout_labels(rows)
    labelled = [(labels[r.id].label, r.score) for r in rows if labels[r.id].label is not None]
    judged_unlabelled = [r.score for r in rows if labels[r.id].label is None]
    leave_out = clips_in_splits(session, sorted(trained_on), splits)
    n_rest, sketch = score_sketch(session, model.id, machine.id, splits, leave_out, SKETCH_POINTS)
    where = WITH_TEST_SPLIT if use_test else WITHOUT_TEST_SPLIT
    description = (f"{describe(labels.values())}; scored clips {where} that the model did not train on; "
                   f"rule: {RULE}")  # fmt: skip
    weights = [1.0] * len(judged_unlabelled) + [n_rest / len(sketch)] * len(sketch) if sketch else None
    return LabelledSet(
        np.array([s for _, s in labelled], dtype=np.float64),
        np.array([label == Label.ABNORMAL for label, _ in labelled], dtype=bool),
        np.array(judged_unlabelled + sketch, dtype=np.float64),
        description,
        np.array(weights if weights else [1.0] * len(judged_unlabelled), dtype=np.float64),
    )


def suggest(spec: str, options: SuggestOptions = SuggestOptions(), *, url: str | None = None) -> Suggestion:
    """A threshold for machine ``spec``'s active model, by ``options.method``.

    Labelled methods first score the machine's clips the model has not scored yet.
    """
    if options.method != "gamma":
        score_missing(spec, url=url)
    with session_scope(url) as session:
        machine = one_machine(session, spec)
        model = machine.active_model
        if options.method == "gamma":
            training = load_detector(model.artifact_path).decision_scores_
            value = gamma_threshold(training, options.quantile)
            reason = f"gamma fit to {len(training)} normal training scores, quantile {options.quantile:g}"
            return Suggestion(spec, model.id, "gamma", value, reason, reason)
        found = labelled_set(session, machine, options.use_test)
    y, s, source = found.is_abnormal, found.scores, found.description
    if not y.any() or y.all():
        raise BadInputError(Reason.INVALID_PARAMETER, missing_labels_message(spec, y, options.use_test, source))
    if options.method == "max_f1":
        value, how = max_f1_threshold(y, s), "maximum F1"
    elif options.method == "target_recall":
        value = target_recall_threshold(y, s, options.target)
        how = _recall_reached(y, s, value, options.target)
    elif options.method == "target_precision":
        value, how = target_precision_threshold(y, s, options.target), f"precision at least {options.target:g}"
    elif options.method == "min_cost":
        value = min_cost_threshold(y, s, options.cost_miss, options.cost_false_alarm)
        how = f"minimum cost (miss {options.cost_miss:g}, false alarm {options.cost_false_alarm:g})"
    else:
        raise BadInputError(Reason.INVALID_PARAMETER, f"unknown threshold method {options.method!r}")
    return Suggestion(spec, model.id, options.method, value, f"{how} on {source}", how)


def missing_labels_message(spec: str, is_abnormal: np.ndarray, use_test: bool, source: str) -> str:
    """Why a labelled suggestion cannot run, and what to do, in the words of the page and the CLI (both show it)."""
    missing = "abnormal" if not is_abnormal.any() else "normal"
    todo = ("judge flagged clips on the Triage page (Confirm abnormal, or Reject (normal) for those that are "
            "fine)")  # fmt: skip
    if not use_test:
        todo += (", or include the test split's labelled clips (the \"Include the test split\" box on the "
                 "Thresholds page, --use-test on the command line)")  # fmt: skip
    return (f"{spec}: no labelled {missing} clip to fit on ({source}). A suggestion from labels needs both "
            f"normal and abnormal clips: {todo}. The gamma quantile needs no labels.")  # fmt: skip


def _recall_reached(y: np.ndarray, s: np.ndarray, value: float, target: float) -> str:
    """How a target-recall threshold did: the recall it reaches, and why it is above the target when it is."""
    n_abnormal = int(y.sum())
    caught = int((s[y] > value).sum())
    reached = caught / n_abnormal
    text = f"recall at least {target:g}: {caught} of {n_abnormal} labelled anomalies flagged (recall {reached:.3g}"
    if reached > target + 1e-12:
        text += f", the lowest of at least {target:g} that these labelled clips allow"
    return text + ")"


def set_threshold(
    spec: str,
    value: float,
    *,
    set_by: str = "",
    reason: str,
    method: str = "manual",
    actor: Actor | None = None,
    url: str | None = None,
) -> int:
    """Record ``value`` as the active threshold of machine ``spec``'s active model; returns the row id.

    ``actor`` (default: the CLI's operator, who names ``set_by``) needs the engineer role; a signed-in
    user sets thresholds in their own name.  ``method`` is ``manual`` or one of the suggestions' methods."""
    set_by = recorded_name(actor, Action.SET_THRESHOLD, set_by, field="set by")
    if method not in RECORDED_METHODS:
        known = ", ".join(RECORDED_METHODS)
        raise BadInputError(Reason.INVALID_PARAMETER, f"method must be one of {known}, got {shown(str(method))}")
    if not np.isfinite(value):
        raise BadInputError(Reason.INVALID_PARAMETER, "the threshold must be a finite number")
    if not set_by:
        raise BadInputError(Reason.INVALID_PARAMETER, "say who sets the threshold")
    check_text("reason", reason)
    with session_scope(url, write=True) as session:
        machine = one_machine(session, spec)
        row = add_threshold(session, machine.active_model.id, value, method=method, set_by=set_by, reason=reason)
        model = machine.active_model
        record_event(session, on_behalf_of(actor, set_by), Action.SET_THRESHOLD, spec,
                     f"{value:.6g} ({method_name(method)}) for {name_of(model, scope=False)} "
                     f"(model {model.id}): {reason}")  # fmt: skip
        return row.id


@dataclass(frozen=True)
class TuningData:
    """What the threshold page shows for a machine: its :class:`LabelledSet` (the same clips and labels
    every suggestion fits on, for the same ``use_test``), the current threshold and the clip rate."""

    machine: str
    model_id: int
    detector: str
    scores: np.ndarray
    is_abnormal: np.ndarray
    label_source: str
    threshold: float
    clips_per_day: float
    unlabelled_scores: np.ndarray
    use_test: bool = False
    unlabelled_weights: np.ndarray | None = None  # clips each unlabelled score stands for (see LabelledSet)

    def flagged_share(self, value: float) -> float:
        """The share of the set's scored clips above ``value`` (labelled and unlabelled, each unlabelled score
        weighted by the clips it stands for); 0 without clips."""
        weights = np.ones(self.unlabelled_scores.size) if self.unlabelled_weights is None else self.unlabelled_weights
        total = self.scores.size + float(weights.sum())
        above = np.count_nonzero(self.scores > value) + float(weights[self.unlabelled_scores > value].sum())
        return above / total if total else 0.0


def tuning_data(spec: str, *, use_test: bool = False, url: str | None = None) -> TuningData:
    """What the threshold page needs for machine ``spec`` (scoring what is missing first)."""
    score_missing(spec, url=url)
    with session_scope(url) as session:
        machine = one_machine(session, spec)
        model = machine.active_model
        found = labelled_set(session, machine, use_test)
        current = active_threshold(session, model.id)
        rate = clips_per_day(session, machine.id)
    return TuningData(
        spec, model.id, model.detector, found.scores, found.is_abnormal, found.description,
        current.value if current else float("nan"), rate, found.unlabelled_scores, use_test, found.unlabelled_weights,
    )  # fmt: skip


@dataclass(frozen=True)
class ThresholdRecord:
    """One saved threshold of a model, as the page's history lists it.

    Attributes
    ----------
    set_at : datetime
        When (UTC).
    set_by : str
    value : float
        In the detector's score units.
    method : str
        ``manual`` or a suggestion's method.
    reason : str
    """

    set_at: datetime
    set_by: str
    value: float
    method: str
    reason: str


def saved_thresholds(spec: str, *, url: str | None = None) -> list[ThresholdRecord]:
    """Every threshold saved for machine ``spec``'s active model, newest first (the first is the active one)."""
    with session_scope(url) as session:
        machine = one_machine(session, spec)
        return [ThresholdRecord(t.set_at, t.set_by, t.value, t.method, t.reason)
                for t in threshold_history(session, machine.active_model.id)]  # fmt: skip


def data_version(spec: str, *, url: str | None = None) -> tuple:
    """A cheap fingerprint of what :func:`tuning_data` depends on, for caches: the active model,
    how many clips it scored, how many verdicts and thresholds exist."""
    with session_scope(url) as session:
        machine = machine_by_key(session, spec)
        if machine is None or machine.active_model_id is None:
            return (spec, None)
        return (spec, machine.active_model_id, *counts_for_machine(session, machine))
