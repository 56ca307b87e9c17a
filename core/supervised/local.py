"""Local supervised training: the spectrogram CNN on this machine, no cloud account needed.

Training runs to the end inside :meth:`LocalTrainer.train` (a few seconds to minutes
on a CPU), then the test images are scored, so the job goes straight to ``completed``
with its evaluation, and the model is a version like any other: it can score clips,
be compared with the autoencoder, even be made a machine's active model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.access import Action, Actor, on_behalf_of, require, worker_name
from core.errors import BadInputError, Reason
from core.supervised.base import (
    Availability,
    JobStatus,
    Trainer,
    new_job,
    record_evaluation,
    register_model,
    resolve_export,
    set_job,
)
from core.supervised.jobs import job_status
from core.vocabulary import JobState
from core.workflows.export import read_images

DETECTOR = "spectrogram_cnn"


class LocalTrainer(Trainer):
    name = "local"

    def __init__(self, *, url: str | None = None, epochs: int | None = None):
        self.url = url
        self.epochs = epochs

    def availability(self) -> Availability:
        return Availability(True, "trains a small CNN on this machine's CPU")

    def train(
        self, export_dir: str | Path | None = None, *, user: str = "system", progress=None,
        actor: Actor | None = None, confirm_cost: bool = False,
    ) -> int:
        """Train on the export's train images, evaluate on its test images; returns the job id.

        ``progress(epoch, epochs)`` after each epoch.  A failure marks the job ``failed``
        with the reason, then raises.
        """
        actor = require(actor, Action.TRAIN_SUPERVISED)
        user = worker_name(actor, user)
        from core.detection.spectrogram_cnn import SpectrogramCNN  # loads TensorFlow

        export = resolve_export(export_dir, self.url)
        job_id = new_job(self.name, export, self.url, actor=on_behalf_of(actor, user), trained_by=user)
        try:
            params = {} if self.epochs is None else {"epochs": self.epochs, "min_steps": 0}  # as asked
            model = SpectrogramCNN(**params)
            images, labels, _ = read_images(export.root, "train")
            if len(images) == 0:
                raise BadInputError(Reason.INVALID_PARAMETER, "the export has no training images", export.root)
            set_job(job_id, self.url, status=JobState.TRAINING)

            def epoch_done(done: int, total: int) -> None:
                set_job(job_id, self.url, external={"progress": round(done / total, 3)})
                if progress:
                    progress(done, total)

            model.fit_images(images, labels, progress=epoch_done)
            model_id = register_model(
                DETECTOR, export, save=model.save, params={"detector": model.params,
                "features": model.feature_params.as_dict()},
                provenance={"job_id": job_id, "trained_by": user, "n_train": len(images)}, url=self.url,
            )  # fmt: skip
            set_job(job_id, self.url, status=JobState.TRAINED, model_id=model_id)
            self._evaluate(job_id, model, export)
        except BaseException as exc:  # also an interrupted run (Ctrl-C, the page left): never stuck "training"
            set_job(job_id, self.url, status=JobState.FAILED, message=str(exc) or f"interrupted ({type(exc).__name__})")
            raise
        return job_id

    def _evaluate(self, job_id: int, model, export) -> dict[str, Any]:
        images, _, records = read_images(export.root, "test")
        p_abnormal = model.predict_images(images) if images else np.array([])
        return record_evaluation(job_id, job_status(job_id, self.url).model_id, records, p_abnormal, self.url)

    def refresh(self, job_id: int) -> JobStatus:
        return job_status(job_id, self.url)

    def evaluate(
        self, job_id: int, *, confirm_cost: bool = False, progress=None, actor: Actor | None = None
    ) -> dict[str, Any]:
        """Local jobs are evaluated when they finish training: the stored evaluation (free)."""
        status = job_status(job_id, self.url)
        if "evaluation" not in status.external:
            raise BadInputError(Reason.INVALID_PARAMETER, f"job {job_id} has no evaluation ({status.status})")
        return status.external["evaluation"]

    def stop(self, job_id: int, *, actor: Actor | None = None) -> JobStatus:
        """Nothing keeps running after a local job: its state as it is."""
        return job_status(job_id, self.url)
