"""The supervised-trainer interface, and what every backend shares.

A trainer turns an export (:mod:`core.workflows.export`) into a model that scores clips by
P(abnormal).  Backends come and go (cloud services are retired), so the product only
speaks to this interface: :meth:`Trainer.train` starts a job recorded in the database's
``training_jobs`` (a restart of the app picks it up), :meth:`Trainer.refresh` asks the
backend how the job is doing, :meth:`Trainer.evaluate` scores the export's test images
and stores predictions and the confusion matrix, :meth:`Trainer.stop` releases what costs
money.  Job states: ``pending -> uploading -> training -> trained -> evaluating ->
completed``, or ``failed`` / ``stopped``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from core.access import Action, Actor
from core.detection.metrics import metrics_at, roc_auc
from core.errors import BadInputError, Reason
from core.vocabulary import FINAL_JOB_STATES, JobState
from core.workflows.audit import record_event
from core.workflows.export import read_summary
from core.workflows.model_store import staged_artifact
from db.models import DetectorModel, utcnow
from db.queries import (
    ALL_MACHINES_SCOPE,
    add_scores,
    add_threshold,
    add_training_job,
    export_by_dir,
    latest_export,
    move_training_job,
    next_model_version,
    update_training_job,
)
from db.session import session_scope

DECISION_THRESHOLD = 0.5  # P(abnormal) above which a supervised model flags a clip
FINAL_STATES = FINAL_JOB_STATES


@dataclass(frozen=True)
class Availability:
    """Whether a backend can train now, and if not, why (shown next to its disabled button)."""

    ok: bool
    reason: str


@dataclass(frozen=True)
class JobStatus:
    job_id: int
    backend: str
    status: str
    message: str
    model_id: int | None
    export_id: int | None
    external: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def done(self) -> bool:
        return self.status in FINAL_STATES

    @property
    def progress(self) -> float | None:
        """Fraction done in [0, 1] where the backend reports one."""
        return self.external.get("progress")


class Trainer(ABC):
    """One supervised-training backend."""

    name: ClassVar[str]

    @abstractmethod
    def availability(self) -> Availability: ...

    @abstractmethod
    def train(
        self, export_dir: str | Path | None = None, *, user: str = "system", progress=None,
        actor: Actor | None = None, confirm_cost: bool = False,
    ) -> int:
        """Start training on an export (default: the newest); returns the job id.  ``actor`` (default: the
        CLI's operator, who names ``user``) needs the engineer role; a paid backend also needs
        ``confirm_cost`` (after showing its cost notice)."""

    @abstractmethod
    def refresh(self, job_id: int) -> JobStatus:
        """The job's state, after asking the backend for news."""

    @abstractmethod
    def evaluate(
        self, job_id: int, *, confirm_cost: bool = False, progress=None, actor: Actor | None = None
    ) -> dict[str, Any]:
        """Score the export's test images; returns the evaluation record (see :func:`evaluation_record`)."""

    @abstractmethod
    def stop(self, job_id: int, *, actor: Actor | None = None) -> JobStatus:
        """Release whatever the job keeps running."""


@dataclass(frozen=True)
class ExportRef:
    """An export folder, its summary and its row id."""

    root: Path
    summary: dict[str, Any]
    export_id: int | None

    def records(self, subset: str) -> list[dict[str, Any]]:
        return [r for r in self.summary["images"] if r["subset"] == subset]


def resolve_export(export_dir: str | Path | None, url: str | None = None) -> ExportRef:
    """The export in ``export_dir``, or the newest one recorded when None.

    When the folder is gone, the summary recorded in the database stands in (a cloud job
    needs only its records: the images are in S3); reading its images then fails clearly.
    """
    with session_scope(url) as session:
        row = latest_export(session) if export_dir is None else export_by_dir(session, str(Path(export_dir).resolve()))
        if export_dir is None and row is None:
            raise BadInputError(Reason.NOT_FOUND, "no export yet: run `python -m core export OUT` first")
        root = Path(row.out_dir if export_dir is None else export_dir)
        export_id = row.id if row else None
        recorded = dict(row.summary) if row and row.summary.get("images") is not None else None
    summary = recorded if recorded is not None and not root.is_dir() else read_summary(root)
    if summary.get("problems"):
        raise BadInputError(Reason.INVALID_PARAMETER, f"export has problems: {summary['problems'][0]}", root)
    return ExportRef(root, summary, export_id)


def export_scope(summary: dict[str, Any]) -> str:
    """The scope a model trained on this export covers: one machine, one type, or every machine."""
    machines = sorted({r["machine"] for r in summary["images"]})
    if len(machines) == 1:
        return machines[0]
    types = {m.split("/")[0] for m in machines}
    return types.pop() if len(types) == 1 else ALL_MACHINES_SCOPE


def new_job(backend: str, export: ExportRef, url: str | None = None, *, actor: Actor | None = None,
            action: Action = Action.TRAIN_SUPERVISED, **external) -> int:
    """Record a new training job on ``export`` (and its audit event, in the same transaction); its id."""
    with session_scope(url, write=True) as session:
        job = add_training_job(session, backend, export.export_id, {"export_dir": str(export.root), **external})
        record_event(session, actor, action, f"job {job.id}", f"{backend} on {export.root}")
        return job.id


def audit_job(job_id: int, actor: Actor | None, action: Action | str, detail: str, url: str | None = None) -> None:
    """Record one action on a training job in the audit log."""
    with session_scope(url, write=True) as session:
        record_event(session, actor, action, f"job {job_id}", detail)


def claim_job(job_id: int, expected: str, new: str, url: str | None = None) -> bool:
    """Move the job from ``expected`` to ``new`` status unless someone else moved it first; True when
    this caller did (two dashboards refreshing one job must not both register its model)."""
    with session_scope(url, write=True) as session:
        return move_training_job(session, job_id, expected, new)


def set_job(job_id: int, url: str | None = None, **changes) -> None:
    """Record a job's new state (``finished_at`` is set when it reaches a final state)."""
    if changes.get("status") in FINAL_STATES:
        changes.setdefault("finished_at", utcnow())
    with session_scope(url, write=True) as session:
        update_training_job(session, job_id, **changes)


def evaluation_record(y_true: np.ndarray, p_abnormal: np.ndarray, threshold: float = DECISION_THRESHOLD) -> dict:
    """``{n, threshold, precision, recall, f1, accuracy, auc, confusion {tp, fp, tn, fn}}`` (abnormal positive)."""
    at = metrics_at(y_true, p_abnormal, threshold)
    auc = roc_auc(y_true, p_abnormal)
    return {
        "n": int(len(y_true)),
        "threshold": threshold,
        "precision": round(at.precision, 6),
        "recall": round(at.recall, 6),
        "f1": round(at.f1, 6),
        "accuracy": round(at.accuracy, 6),
        "auc": None if np.isnan(auc) else round(auc, 6),
        "confusion": {"tp": at.confusion.tp, "fp": at.confusion.fp, "tn": at.confusion.tn, "fn": at.confusion.fn},
    }


def register_model(
    detector: str, export: ExportRef, *, save: Callable[[Path], object] | None, params: dict, provenance: dict,
    url: str | None = None,
) -> int:  # fmt: skip
    """Store a supervised model as a new model version with the 0.5 threshold; returns its id.

    ``save(folder)`` writes a local model's files (cloud models have none: ``None``), staged and
    renamed into place as :func:`core.workflows.training.train` does, so a killed run leaves no half-written
    version.  ``provenance["clip_ids"]`` lists the training clips, so comparisons leave them out.
    """
    scope = export_scope(export.summary)
    staging = staged_artifact(detector, scope, save) if save is not None else nullcontext(None)
    with staging as publish, session_scope(url, write=True) as session:
        version = next_model_version(session, detector, scope)
        artifact_path = str(publish(version)) if publish else None
        row = DetectorModel(
            detector=detector, scope=scope, version=version, artifact_path=artifact_path, params=params,
            provenance={"export_id": export.export_id, "export_dir": str(export.root),
                        "machines": sorted({r["machine"] for r in export.summary["images"]}),
                        "clip_ids": [r["clip_id"] for r in export.records("train")], **provenance},
            status="ready" if artifact_path else "external",
        )  # fmt: skip
        session.add(row)
        session.flush()
        add_threshold(session, row.id, DECISION_THRESHOLD, method="default", set_by="system",
                      reason="supervised model: flag when P(abnormal) > 0.5")  # fmt: skip
        return row.id


def record_evaluation(
    job_id: int, model_id: int, records: list[dict[str, Any]], p_abnormal: np.ndarray, url: str | None = None
) -> dict[str, Any]:
    """Store a model's P(abnormal) for the export's test images (``records``, one per image) as its
    scores, and the evaluation and predictions on the job, which becomes ``completed``."""
    p_abnormal = np.asarray(p_abnormal, dtype=np.float64)
    labels = np.array([r["label"] == "abnormal" for r in records], dtype=bool)
    record = evaluation_record(labels, p_abnormal)
    pairs = list(zip(records, p_abnormal, strict=True))
    with session_scope(url, write=True) as session:
        add_scores(session, model_id, {r["clip_id"]: float(p) for r, p in pairs})
    predictions = [{"file": r["file"], "clip_id": r["clip_id"], "label": r["label"], "p_abnormal": round(float(p), 6)}
                   for r, p in pairs]  # fmt: skip
    set_job(job_id, url, status=JobState.COMPLETED, external={"evaluation": record, "predictions": predictions})
    return record
