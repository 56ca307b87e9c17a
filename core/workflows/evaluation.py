"""Evaluating each machine's active model on its test split, abnormal as the positive class."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.detection.base import FrontEnd
from core.detection.metrics import metrics_at, partial_auc, roc_auc
from core.errors import BadInputError, Reason
from core.vocabulary import Label
from core.workflows.catalogue import machine_named, machines_named
from core.workflows.scoring import score, score_with_model
from db.models import Clip, DetectorModel, Machine
from db.queries import active_threshold, clip_scores, models_for, test_clips
from db.session import session_scope


@dataclass(frozen=True)
class LabelledScores:
    """Scores of labelled clips, ``y_true`` True = abnormal; ``clips`` in the same order."""

    clips: list[Clip]
    y_true: np.ndarray
    scores: np.ndarray


def test_scores(session, machine: Machine, model: DetectorModel) -> LabelledScores:
    """The model's scores on the machine's labelled test clips (those it has scored)."""
    clips = test_clips(session, [machine.id])
    values = clip_scores(session, model.id, [c.id for c in clips])
    clips = [c for c in clips if c.id in values]
    return LabelledScores(
        clips, np.array([c.label == Label.ABNORMAL for c in clips], dtype=bool), np.array([values[c.id] for c in clips])
    )


def _finite_or_none(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


def evaluate(machine: str | None = None, *, url: str | None = None) -> list[dict]:
    """One record per machine with an active model, computed on its test split.

    Keys: ``model_id, detector, machine, n_train, n_test, auc, pauc, threshold,
    precision, recall, f1, accuracy, confusion {tp, fp, tn, fn}``.  AUC and pAUC are
    ``None`` when the test split lacks one of the classes.  Test clips not yet scored
    are scored first.  Raises :class:`BadInputError` when a given ``machine`` names none.
    """
    score(machine, url=url)
    records = []
    with session_scope(url) as session:
        for m in machines_named(session, machine):
            model = m.active_model
            if model is None:
                continue
            labelled = test_scores(session, m, model)
            threshold = active_threshold(session, model.id)
            value = threshold.value if threshold else float("inf")
            at = metrics_at(labelled.y_true, labelled.scores, value)
            records.append(
                {
                    "model_id": model.id,
                    "detector": model.detector,
                    "version": model.version,
                    "scope": model.scope,
                    "machine": m.key,
                    "n_train": int(model.provenance.get("n_train", 0)),
                    "n_test": int(labelled.y_true.size),
                    "n_test_abnormal": int(labelled.y_true.sum()),
                    "auc": _finite_or_none(roc_auc(labelled.y_true, labelled.scores)),
                    "pauc": _finite_or_none(partial_auc(labelled.y_true, labelled.scores)),
                    "threshold": _finite_or_none(value),
                    "precision": round(at.precision, 6),
                    "recall": round(at.recall, 6),
                    "f1": round(at.f1, 6),
                    "accuracy": round(at.accuracy, 6),
                    "confusion": at.confusion.as_dict(),
                }
            )
    return records


def compare_detectors(machine: str, *, url: str | None = None) -> list[dict]:
    """The newest model of each detector and front end trained for ``machine`` (``type/id``; a PCEN Mahalanobis
    beside a log-mel one), and the active model if it is older, graded on the test split, best test AUC first:
    ``[{"model_id", "detector", "front_end", "version", "auc", "pauc", "n_test", "active", "auto_chosen"}]``
    (``front_end`` None for a detector without one).
    This grades; it does not choose (that would peek at the clips it grades on): the suggested default is
    :func:`automatic_choice`, made from training data only.  Raises :class:`BadInputError` when ``machine``
    names no machine."""
    with session_scope(url) as session:
        m = machine_named(session, machine)
        newest: dict[tuple, DetectorModel] = {}
        for model in models_for(session, m):
            newest.setdefault((model.detector, model.front_end or FrontEnd.LOG_MEL), model)
        active_id = m.active_model_id
        if m.active_model is not None and m.active_model not in newest.values():  # an older version is active
            newest[("active",)] = m.active_model
        pks = [m.id]
    rows = []
    for model in newest.values():
        score_with_model(model, pks, url=url)
        with session_scope(url) as session:
            labelled = test_scores(session, session.get(Machine, pks[0]), model)
        rows.append(
            {
                "model_id": model.id,
                "detector": model.detector,
                "front_end": model.front_end,
                "version": model.version,
                "auc": _finite_or_none(roc_auc(labelled.y_true, labelled.scores)),
                "pauc": _finite_or_none(partial_auc(labelled.y_true, labelled.scores)),
                "n_test": int(labelled.y_true.size),
                "active": model.id == active_id,
                "auto_chosen": "choice" in (model.provenance or {}),
            }
        )
    return sorted(rows, key=lambda r: -(r["auc"] if r["auc"] is not None else -1))


CHOICE_KEYS = ("chosen", "detector", "members", "clear", "note", "n_clips", "folds", "n_other_clips", "n_fault_clips",
               "evidence")  # fmt: skip


def automatic_choice(machine: str, *, url: str | None = None) -> dict | None:
    """The newest automatic choice (``train --detector auto``) for ``machine`` (``type/id``), made from its training
    clips only, or ``None``: ``{"model_id", "version", "trained_at", "chosen", "detector", "members", "clear", "note",
    "n_clips", "folds", "n_other_clips", "n_fault_clips", "evidence": {candidate: {"auc", "se", "by_kind",
    "weighted"}}}`` (pseudo-AUC: held-out normal training clips against synthetic faults, other machines' clips and
    the machine's confirmed faults outside the test split; ``n_fault_clips`` 0 for choices made before they
    counted)."""
    with session_scope(url) as session:
        m = machine_named(session, machine)
        for model in models_for(session, m):  # newest first
            choice = (model.provenance or {}).get("choice")
            if choice:
                found = {
                    "model_id": model.id,
                    "version": model.version,
                    "trained_at": model.provenance.get("trained_at"),
                }
                record = {key: choice.get(key) for key in CHOICE_KEYS}
                record["n_fault_clips"] = record["n_fault_clips"] or 0  # a choice made before faults counted
                return found | record
    return None


def suggested_detector(machine: str, *, url: str | None = None) -> str:
    """The detector the automatic choice picked for ``machine`` (``type/id``) from its training data only."""
    choice = automatic_choice(machine, url=url)
    if choice is None:
        raise BadInputError(
            Reason.INVALID_PARAMETER,
            f"{machine}: no automatic choice yet: train with --detector auto (it chooses from training data only)",
        )
    return choice["detector"]
