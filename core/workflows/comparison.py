"""Comparing two models of a machine on the same test clips, for managers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath

import numpy as np

from core.detection.metrics import ThresholdMetrics, metrics_at, partial_auc, roc_auc
from core.detection.registry import SUPERVISED
from core.detection.selection import name_of
from core.detection.thresholds import method_name
from core.errors import BadInputError, Reason
from core.vocabulary import Label, Split
from core.workflows.catalogue import machine_named
from core.workflows.labels import labels_for_machines
from core.workflows.scoring import score_with_model
from core.workflows.tuning import LABELLED_METHODS, fitted_with_test_split
from db.models import Clip, DetectorModel, Threshold
from db.queries import (
    active_threshold,
    any_labelled_abnormal,
    clip_scores,
    clips_where,
    machine_by_key,
    machines_matching,
    models_for,
    test_clips_any_label,
)
from db.session import session_scope

MIN_FAIR_TEST = 20  # graded clips below which a comparison is flagged as fragile


@dataclass(frozen=True)
class ModelResult:
    model_id: int
    name: str
    at_threshold: ThresholdMetrics
    auc: float
    pauc: float
    saw_anomalies: bool


@dataclass(frozen=True)
class Disagreement:
    """A graded clip one model flags and the other passes, at their own active thresholds.

    Attributes
    ----------
    clip_id : int
    file : str
        The clip's file name (no folders).
    label : str
        ``normal`` or ``abnormal``, by the label policy.
    scores : tuple of float
        Each model's score, in the order of :attr:`Comparison.results` (each detector's own units).
    flagged : tuple of bool
        Whether each model flags the clip (score above its threshold).
    """

    clip_id: int
    file: str
    label: str
    scores: tuple[float, ...]
    flagged: tuple[bool, ...]


@dataclass(frozen=True)
class Comparison:
    machine: str
    test_set: str
    n_test: int
    results: list[ModelResult]
    n_abnormal: int = 0
    n_normal: int = 0
    disagreements: list[Disagreement] = field(default_factory=list)
    tuned_on_graded: dict[str, str] = field(default_factory=dict)  # {model name: how its threshold was tuned}

    @property
    def warnings(self) -> list[str]:
        """Notes a manager must read before trusting the side-by-side numbers."""
        notes = []
        if self.n_abnormal == 0 or self.n_normal == 0:
            missing = "abnormal" if self.n_abnormal == 0 else "normal"
            notes.append(f"No {missing} clip is left to grade on (the models trained on the others): AUC and "
                         "precision or recall mean nothing here. Label more clips, or export with a smaller "
                         "test share.")  # fmt: skip
        elif self.n_test < MIN_FAIR_TEST:
            notes.append(f"Only {self.n_test} clips are graded: a single clip moves these numbers a lot.")
        saw = [r.name for r in self.results if r.saw_anomalies]
        if saw and len(saw) < len(self.results):
            notes.append(f"{', '.join(saw)} was trained on labelled anomalies the other model never saw.")
        for name, how in self.tuned_on_graded.items():
            notes.append(f"{name}'s threshold was tuned on the clips it is graded on here ({how}): its precision, "
                         "recall, F1 and accuracy flatter it (AUC and pAUC do not depend on the threshold). Compare "
                         "at gamma thresholds, or label more clips, for a fair grade.")  # fmt: skip
        return notes


def model_choices(machine: str, *, url: str | None = None) -> list[tuple[int, str]]:
    """``(model_id, name)`` of every model usable for ``machine``, newest first; the name in words,
    ``Mahalanobis v2 (fan/id_00)`` (:func:`~core.detection.selection.model_name`)."""
    with session_scope(url) as session:
        found = machine_by_key(session, machine)
        if found is None:
            return []
        return [(m.id, name_of(m)) for m in models_for(session, found)]


def scope_legend(machine: str) -> str:
    """What the brackets after a model's name (``Mahalanobis v2 (scope)``) say about ``machine``'s models."""
    machine_type = machine.split("/", 1)[0]
    return (f"In brackets, what a model learned from: ({machine}) this machine's clips alone; ({machine_type}) the "
            f"clips of every {machine_type} together; (*) a supervised model trained on an export of several "
            "machine types' clips, graded here on this machine's.")  # fmt: skip


def compare_models(machine: str, model_ids: list[int], *, url: str | None = None) -> Comparison:
    """Each model's metrics at its own active threshold on the machine's labelled test clips
    scored by every one of them and trained on by none (the same clips for all).

    A supervised model's export may put test-split clips in its training set; they are
    left out, so no model is graded on clips it learned from."""
    with session_scope(url) as session:
        found = machine_named(session, machine)
        pks = [found.id]
        usable = {m.id: m for m in models_for(session, found)}
        if any(model_id not in usable for model_id in model_ids):
            raise BadInputError(Reason.INVALID_PARAMETER, f"{machine} has no model among {model_ids}")
        models = [usable[model_id] for model_id in model_ids]
    for model in models:
        score_with_model(model, pks, url=url)
    with session_scope(url) as session:
        return _graded(session, machine, pks, models)


def _graded(session, machine: str, pks: list[int], models: list[DetectorModel]) -> Comparison:
    """The :class:`Comparison` of ``models`` (each has scored the machine's clips) on the graded clips."""
    seen = {clip_id for m in models for clip_id in m.provenance.get("clip_ids", [])}
    labels, from_pilots = graded_labels(session, pks)
    scores = [clip_scores(session, m.id, list(labels)) for m in models]
    common = sorted(i for i in labels if i not in seen and all(i in s for s in scores))
    left_out = sum(i in seen for i in labels)
    y = np.array([labels[i] == Label.ABNORMAL for i in common], dtype=bool)
    values = [np.array([by_clip[i] for i in common], dtype=np.float64) for by_clip in scores]
    thresholds = [active_threshold(session, m.id) for m in models]
    results = [
        ModelResult(model.id, name_of(model),
                    metrics_at(y, v, t.value if t else float("inf")), roc_auc(y, v), partial_auc(y, v),
                    _saw_anomalies(session, model))
        for model, v, t in zip(models, values, thresholds, strict=True)
    ]  # fmt: skip
    n_field = sum(i in from_pilots for i in common)
    test_set = f"test split of {machine}: {int(y.sum())} abnormal and {int((~y).sum())} normal clips"
    if n_field:
        test_set += f", {n_field} of them field clips labelled by the pilots' verdicts"
    if left_out:
        test_set += f" ({left_out} test clips a model trained on are left out)"
    tuned = {r.name: how for r, t in zip(results, thresholds, strict=True)
             if (how := _tuned_on_graded(t, n_field, len(common)))}  # fmt: skip
    disagreements = _disagreements(session, common, labels, values, thresholds)
    return Comparison(machine, test_set, len(common), results, int(y.sum()), int((~y).sum()), disagreements, tuned)


def _tuned_on_graded(threshold: Threshold | None, n_field: int, n_graded: int) -> str | None:
    """How a threshold was fitted on labelled clips that the comparison also grades, or None.

    A labelled suggestion (max F1, a target, min cost) fits on the machine's labelled clips the model did not
    train on: the field clips the pilots labelled always, the test split too when it was included
    (:func:`core.workflows.tuning.fitted_with_test_split`).  Thresholds set by hand or by the gamma fit are
    not fitted on labels."""
    if threshold is None or threshold.method not in LABELLED_METHODS:
        return None
    overlap = n_graded if fitted_with_test_split(threshold.reason) else n_field
    if not overlap:
        return None
    return (f"{method_name(threshold.method)} on labelled clips including {overlap} of the {n_graded} graded here, "
            f"set by {threshold.set_by} on {threshold.set_at:%Y-%m-%d}")  # fmt: skip


def _disagreements(session, common: list[int], labels: dict[int, str], values: list[np.ndarray],
                   thresholds: list[Threshold | None]) -> list[Disagreement]:  # fmt: skip
    """The graded clips the models do not all flag or all pass, highest first score first."""
    if not values:
        return []
    limits = [t.value if t else float("inf") for t in thresholds]
    flagged = np.array([v > limit for v, limit in zip(values, limits, strict=True)]).reshape(len(values), -1)
    split = np.flatnonzero(flagged.any(axis=0) & ~flagged.all(axis=0))
    found = []
    for index in split:
        clip = session.get(Clip, common[index])
        scores = tuple(float(v[index]) for v in values)
        found.append(Disagreement(clip.id, PurePath(clip.path).name, labels[clip.id], scores,
                                  tuple(bool(f) for f in flagged[:, index])))  # fmt: skip
    return sorted(found, key=lambda d: -d.scores[0])


def _saw_anomalies(session, model: DetectorModel) -> bool:
    """Whether the model learned from anomalies: every supervised model does; an unsupervised one did
    when its training clips include clips labelled abnormal."""
    if model.detector in SUPERVISED or model.artifact_path is None:  # a cloud model is supervised too
        return True
    return any_labelled_abnormal(session, model.provenance.get("clip_ids", []))


def graded_labels(session, machine_pks: list[int]) -> tuple[dict[int, str], set[int]]:
    """``({clip_id: normal|abnormal}, ids of field clips)``: the clips a comparison grades on, labelled by
    the label policy: the test split's labelled clips, and the field clips (split ``none``) with a label
    (the pilots' verdicts)."""
    candidates = test_clips_any_label(session, machine_pks) + clips_where(session, machine_pks, split=Split.NONE,
                                                                          label=Label.UNKNOWN)  # fmt: skip
    labels = labels_for_machines(session, candidates, machine_pks)
    graded = {clip_id: found.label.value for clip_id, found in labels.items() if found.label is not None}
    return graded, {c.id for c in candidates if c.split == Split.NONE and c.id in graded}


def comparison_preset(model_id: int, *, prefer: str | None = None, url: str | None = None,
                      ) -> tuple[str, list[int]] | None:  # fmt: skip
    """``(machine, [active model, model_id])`` to open the comparison of a supervised model with the active
    detector of a machine it covers: ``prefer`` (``type/id``, e.g. the machine the user last looked at) when it
    covers that one, else the first; None when it covers none with another active model."""
    with session_scope(url) as session:
        model = session.get(DetectorModel, model_id)
        if model is None:
            return None
        for machine in sorted(machines_matching(session), key=lambda m: m.key != prefer):  # stable: prefer first
            active = machine.active_model_id
            if active and active != model_id and model in models_for(session, machine):
                return machine.key, [active, model_id]
    return None
