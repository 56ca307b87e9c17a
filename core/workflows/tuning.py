"""Suggesting and setting a machine's threshold, recorded with who, when and why.

Label-free suggestions use the active model's normal training scores (gamma fit).
Labelled suggestions use the labelled clips *outside* the test split (ground truth,
or the pilots' verdicts where a clip has one), so a threshold is never fitted on the
test clips unless ``use_test=True`` is asked for explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from core.errors import BadInputError, Reason
from core.workflows.model_store import load_detector
from core.workflows.scoring import score_with_model
from core.detection.thresholds import (
    DEFAULT_QUANTILE,
    gamma_threshold,
    max_f1_threshold,
    min_cost_threshold,
    target_precision_threshold,
    target_recall_threshold,
)
from db.models import Machine
from db.queries import (
    active_threshold,
    add_threshold,
    clip_scores,
    clips_per_day,
    counts_for_machine,
    effective_verdicts,
    machine_by_key,
    scored_clips,
)
from db.session import session_scope


@dataclass(frozen=True)
class Suggestion:
    machine: str
    model_id: int
    method: str
    value: float
    reason: str


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
    machine = machine_by_key(session, spec)
    if machine is None:
        raise BadInputError(Reason.INVALID_PARAMETER, f"no machine {spec!r} (give it as type/id)")
    if machine.active_model is None:
        raise BadInputError(Reason.INVALID_PARAMETER, f"{spec} has no trained model yet: run `train` first")
    return machine


def score_missing(spec: str, *, url: str | None = None) -> None:
    """Score the clips of machine ``spec`` that its active model has not scored yet."""
    with session_scope(url) as session:
        machine = one_machine(session, spec)
        model, pks = machine.active_model, [machine.id]
    score_with_model(model, pks, url=url)


def labelled_scores(session: Session, machine: Machine, use_test: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """``(y_true, scores, source)`` of the machine's labelled, scored clips for threshold fitting.

    A pilot verdict (normal/abnormal) overrides the layout's label; ``unsure`` clips
    are left out; the test split is left out unless ``use_test``.
    """
    model = machine.active_model
    clips = [c for c in machine.clips if use_test or c.split != "test"]
    verdicts = effective_verdicts(session, [c.id for c in clips])
    labels = {c.id: verdicts.get(c.id, c.label) for c in clips}
    labelled = [c for c in clips if labels[c.id] in ("normal", "abnormal")]
    values = clip_scores(session, model.id, [c.id for c in labelled])
    labelled = [c for c in labelled if c.id in values]
    y = np.array([labels[c.id] == "abnormal" for c in labelled], dtype=bool)
    n_verdicts = sum(c.id in verdicts for c in labelled)
    source = (
        f"{len(labelled)} labelled clips ({n_verdicts} by pilot verdict){', test split included' if use_test else ''}"
    )
    return y, np.array([values[c.id] for c in labelled]), source


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
            return Suggestion(spec, model.id, "gamma", value, reason)
        y, s, source = labelled_scores(session, machine, options.use_test)
    if not y.any():
        hint = "" if options.use_test else "; annotate flagged clips, or pass use_test to fit on the test split"
        raise BadInputError(Reason.INVALID_PARAMETER, f"{spec}: no labelled abnormal clip to fit on ({source}){hint}")
    if options.method == "max_f1":
        value, how = max_f1_threshold(y, s), "maximum F1"
    elif options.method == "target_recall":
        value, how = target_recall_threshold(y, s, options.target), f"recall >= {options.target:g}"
    elif options.method == "target_precision":
        value, how = target_precision_threshold(y, s, options.target), f"precision >= {options.target:g}"
    elif options.method == "min_cost":
        value = min_cost_threshold(y, s, options.cost_miss, options.cost_false_alarm)
        how = f"minimum cost (miss {options.cost_miss:g}, false alarm {options.cost_false_alarm:g})"
    else:
        raise BadInputError(Reason.INVALID_PARAMETER, f"unknown threshold method {options.method!r}")
    return Suggestion(spec, model.id, options.method, value, f"{how} on {source}")


def set_threshold(
    spec: str, value: float, *, set_by: str, reason: str, method: str = "manual", url: str | None = None
) -> int:
    """Record ``value`` as the active threshold of machine ``spec``'s active model; returns the row id."""
    if not np.isfinite(value):
        raise BadInputError(Reason.INVALID_PARAMETER, "the threshold must be a finite number")
    if not set_by.strip():
        raise BadInputError(Reason.INVALID_PARAMETER, "say who sets the threshold")
    with session_scope(url, write=True) as session:
        machine = one_machine(session, spec)
        return add_threshold(session, machine.active_model.id, value, method=method, set_by=set_by, reason=reason).id


@dataclass(frozen=True)
class TuningData:
    """Scores of a machine's labelled clips outside the training split, with where labels came from.

    ``is_abnormal`` follows the layout's ground truth where it is known and the pilots'
    verdicts otherwise; ``label_source`` says how many of each.
    """

    machine: str
    model_id: int
    detector: str
    scores: np.ndarray
    is_abnormal: np.ndarray
    label_source: str
    threshold: float
    clips_per_day: float
    unlabelled_scores: np.ndarray


def tuning_data(spec: str, *, url: str | None = None) -> TuningData:
    """What the threshold page needs for machine ``spec`` (scoring what is missing first)."""
    score_missing(spec, url=url)
    with session_scope(url) as session:
        machine = one_machine(session, spec)
        model, pks = machine.active_model, [machine.id]
        trained_on = set(model.provenance.get("clip_ids", []))  # incl. field clips pilots confirmed normal
        rows = [
            (c, s) for c, s in scored_clips(session, model.id, pks) if c.split != "train" and c.id not in trained_on
        ]
        verdicts = effective_verdicts(session, [c.id for c, _ in rows])
        current = active_threshold(session, model.id)
        rate = clips_per_day(session, machine.id)
    truth = [(s, c.label == "abnormal", "truth") for c, s in rows if c.label in ("normal", "abnormal")]
    pilot = [
        (s, verdicts[c.id] == "abnormal", "pilot")
        for c, s in rows
        if c.label == "unknown" and verdicts.get(c.id) in ("normal", "abnormal")
    ]
    unlabelled = [s for c, s in rows if c.label == "unknown" and verdicts.get(c.id) not in ("normal", "abnormal")]
    labelled = truth + pilot
    source = f"ground truth for {len(truth)} clips, pilot verdicts for {len(pilot)}"
    return TuningData(
        spec, model.id, model.detector, np.array([s for s, _, _ in labelled]),
        np.array([a for _, a, _ in labelled], dtype=bool), source,
        current.value if current else float("nan"), rate, np.array(unlabelled),
    )  # fmt: skip


def data_version(spec: str, *, url: str | None = None) -> tuple:
    """A cheap fingerprint of what :func:`tuning_data` depends on, for caches: the active model,
    how many clips it scored, how many verdicts and thresholds exist."""
    with session_scope(url) as session:
        machine = machine_by_key(session, spec)
        if machine is None or machine.active_model_id is None:
            return (spec, None)
        return (spec, machine.active_model_id, *counts_for_machine(session, machine))
