"""One step, as the product promises: export the curated, balanced dataset and start supervised training on it.

:func:`export_and_train` is what the Supervised training page's one button and ``python -m core export-and-train``
call: the export (:func:`core.workflows.export.export_dataset`) then a trainer's ``train`` on exactly that export,
with Rekognition Custom Labels when it is configured (bucket and AWS credentials) and its cost is confirmed, the
local CNN otherwise.  Both steps are role-checked here, before anything is written, and a paid backend is refused
before the export when its cost is not confirmed, so a refusal leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.access import Action, Actor, require
from core.errors import BadInputError, Reason
from core.parallel import Progress
from core.supervised import get_trainer
from core.supervised.base import Trainer
from core.supervised.cloud.config import CloudConfig
from core.workflows.export import ExportOptions, default_export_dir, export_dataset

PAID_BACKENDS = ("rekognition",)


@dataclass(frozen=True)
class ExportAndTrain:
    """What one step did: the export's summary (``summary.json``), the backend and the training job it started."""

    summary: dict[str, Any]
    backend: str
    job_id: int


def default_trainer(config: CloudConfig | None = None, *, url: str | None = None, epochs: int | None = None) -> Trainer:
    """The trainer one step uses: Rekognition when ``config`` (default: the environment's) can train now,
    else the local CNN (``epochs``: as ``train-supervised --epochs``; None: its default)."""
    rekognition = get_trainer("rekognition", config=config or CloudConfig.from_env(), url=url)
    if rekognition.availability().ok:
        return rekognition
    return get_trainer("local", url=url, epochs=epochs)


def export_and_train(
    options: ExportOptions = ExportOptions(),
    *,
    out_dir: str | Path | None = None,
    trainer: Trainer | None = None,
    confirm_cost: bool = False,
    user: str = "system",
    actor: Actor | None = None,
    url: str | None = None,
    n_jobs: int | None = None,
    export_progress: Progress | None = None,
    train_progress=None,
) -> ExportAndTrain:
    """Export the curated, balanced dataset to ``out_dir`` (default: a new ``DATA_DIR/exports/export-…``)
    and start training ``trainer`` (default: :func:`default_trainer`) on that export; returns both.

    ``actor`` (default: the CLI's operator, who names ``user``) needs the rights to export and to train (to
    start paid cloud training for Rekognition).  A paid backend also needs ``confirm_cost`` (after its
    :meth:`~core.supervised.cloud.config.CloudConfig.training_cost_notice` was shown): without it nothing is
    exported.  The local trainer trains to the end here (``train_progress(epoch, epochs)``); Rekognition's
    job is started (``train_progress(done, total)`` follows the upload) and followed by ``refresh``.  An
    export that fails (nothing to export, failed validation) raises before any job exists; a training
    failure leaves the export in place and its job ``failed``.
    """
    trainer = trainer or default_trainer(url=url)
    paid = trainer.name in PAID_BACKENDS
    require(actor, Action.EXPORT)
    require(actor, Action.CLOUD_TRAIN if paid else Action.TRAIN_SUPERVISED)
    if paid and not confirm_cost:
        notice = trainer.config.training_cost_notice()
        raise BadInputError(Reason.INVALID_PARAMETER, f"nothing exported or started: {notice} Confirm to go on.")
    out = Path(out_dir) if out_dir is not None else default_export_dir()
    summary = export_dataset(out, options, user=user, url=url, n_jobs=n_jobs, progress=export_progress, actor=actor)
    job_id = trainer.train(summary["out_dir"], user=user, progress=train_progress, actor=actor,
                           confirm_cost=confirm_cost)  # fmt: skip
    return ExportAndTrain(summary, trainer.name, job_id)
