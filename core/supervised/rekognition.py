"""Supervised training in AWS: Amazon Rekognition Custom Labels through boto3.

``train`` validates the export, uploads its images and manifests to
``s3://BUCKET/PREFIX/exports/export-N/``, creates the project (or reuses it when it
exists), and starts a model version from the manifests (``TrainingData`` /
``TestingData``).  ``refresh`` asks Rekognition how training goes; when it completes,
the model is registered as a version (detector ``rekognition``, no local files).
``evaluate`` starts the model only with the cost confirmed, sends every test image to
``detect_custom_labels`` (backing off when throttled), **always stops the model**, and
stores the predictions and the confusion matrix.  Every step is recorded on the job in
the database, so a restarted app picks the job up where it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from core.access import Action, Actor, on_behalf_of, require, worker_name
from core.errors import BadInputError, NoModelError, Reason
from core.supervised.base import (
    Availability,
    JobStatus,
    Trainer,
    audit_job,
    claim_job,
    new_job,
    record_evaluation,
    register_model,
    resolve_export,
    set_job,
)
from core.supervised.cloud import CloudError, describe_client_error
from core.supervised.cloud.config import CloudConfig, boto3_session, unavailable_reason
from core.supervised.cloud.retry import with_backoff
from core.supervised.cloud.s3 import upload_export
from core.supervised.jobs import job_status
from core.vocabulary import JobState
from core.workflows.manifest import validate_export

DETECTOR = "rekognition"
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, user_agent_extra="machine-sound-triage")
AWS_ERRORS = (ClientError, BotoCoreError)
# Rekognition's version states -> our job states
TRAINING_STATES = {
    "TRAINING_IN_PROGRESS": JobState.TRAINING,
    "TRAINING_COMPLETED": JobState.TRAINED,
    "TRAINING_FAILED": JobState.FAILED,
}


def _error_code(exc: Exception) -> str | None:
    return getattr(exc, "response", {}).get("Error", {}).get("Code")


class RekognitionTrainer(Trainer):
    name = "rekognition"

    def __init__(
        self, config: CloudConfig | None = None, *, url: str | None = None, rekognition=None, s3=None,
        sleep: Callable[[float], None] = time.sleep, poll_s: float = 30.0,
    ):  # fmt: skip
        """``rekognition`` and ``s3`` are boto3 clients (made from the configuration when None)."""
        self.config = config or CloudConfig.from_env()
        self.url = url
        self._rekognition, self._s3 = rekognition, s3
        self.sleep = sleep
        self.poll_s = poll_s

    # --- clients -------------------------------------------------------------------------------

    def _client(self, service: str):
        return boto3_session(self.config).client(service, config=CLIENT_CONFIG)

    @property
    def rekognition(self):
        if self._rekognition is None:
            self._rekognition = self._client("rekognition")
        return self._rekognition

    @property
    def s3(self):
        if self._s3 is None:
            self._s3 = self._client("s3")
        return self._s3

    def _call(self, operation: str, **params) -> dict[str, Any]:
        """One Rekognition call, retried with backoff while throttled; other failures become CloudError."""
        method = getattr(self.rekognition, operation)
        try:
            return with_backoff(lambda: method(**params), sleep=self.sleep)
        except AWS_ERRORS as exc:
            raise describe_client_error(exc, operation) from exc

    # --- the interface -------------------------------------------------------------------------

    def availability(self) -> Availability:
        reason = unavailable_reason(self.config)
        if reason:
            return Availability(False, reason)
        return Availability(True, f"s3://{self.config.bucket}/{self.config.prefix}/, project {self.config.project}")

    def train(
        self,
        export_dir: str | Path | None = None,
        *,
        user: str = "system",
        progress=None,
        actor: Actor | None = None,
        confirm_cost: bool = False,
    ) -> int:
        """Upload the export and start training; returns the job id once Rekognition accepted it.

        Refuses unless ``actor`` (default: the CLI's operator) has the engineer role and ``confirm_cost``
        is true: training is billed by the hour (see :meth:`CloudConfig.training_cost_notice`).
        ``progress(done, total)`` follows the upload.  A failure marks the job ``failed``
        with AWS's message and raises :class:`CloudError`; the export stays on disk.
        """
        actor = require(actor, Action.CLOUD_TRAIN)
        user = worker_name(actor, user)
        reason = unavailable_reason(self.config)
        if reason:  # no job is recorded for what could never start
            raise BadInputError(Reason.INVALID_PARAMETER, f"cannot train with Rekognition: {reason}")
        export = resolve_export(export_dir, self.url)
        problems = validate_export(export.root, export.summary["options"].get("source_ref_base", ""))
        if problems:
            raise BadInputError(Reason.INVALID_PARAMETER, f"export failed validation: {problems[0]}", export.root)
        if not confirm_cost:
            raise BadInputError(Reason.INVALID_PARAMETER,
                                f"not started: {self.config.training_cost_notice()} Confirm to go on.")  # fmt: skip
        tag = f"export-{export.export_id}" if export.export_id else f"export-{export.root.name}"
        key_base = f"{self.config.prefix}/exports/{tag}/"
        job_id = new_job(self.name, export, self.url, bucket=self.config.bucket, prefix=self.config.prefix,
                         region=self.config.region, project=self.config.project, trained_by=user,
                         actor=on_behalf_of(actor, user), action=Action.CLOUD_TRAIN)  # fmt: skip
        try:
            set_job(job_id, self.url, status=JobState.UPLOADING)
            files = [r["file"] for r in export.summary["images"]]
            manifests = upload_export(self.s3, export.root, files, self.config.bucket, key_base, progress)
            project_arn = self.project_arn()
            version_name = f"job-{job_id}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
            version_arn = self._call(
                "create_project_version", ProjectArn=project_arn, VersionName=version_name,
                OutputConfig={"S3Bucket": self.config.bucket, "S3KeyPrefix": f"{self.config.prefix}/output"},
                TrainingData={"Assets": [self._asset(manifests["train"])]},
                TestingData={"Assets": [self._asset(manifests["test"])]},
            )["ProjectVersionArn"]  # fmt: skip
        except BaseException as exc:  # also an interrupted upload: never stuck "uploading"
            set_job(job_id, self.url, status=JobState.FAILED, message=str(exc) or f"interrupted ({type(exc).__name__})")
            raise
        set_job(job_id, self.url, status=JobState.TRAINING, external={
            "key_base": key_base, "manifests": manifests, "project_arn": project_arn,
            "version_name": version_name, "version_arn": version_arn})  # fmt: skip
        return job_id

    def _asset(self, key: str) -> dict:
        return {"GroundTruthManifest": {"S3Object": {"Bucket": self.config.bucket, "Name": key}}}

    def project_arn(self) -> str:
        """The project's ARN: created now, or found when it already exists (ResourceInUseException)."""
        try:
            return self.rekognition.create_project(ProjectName=self.config.project)["ProjectArn"]
        except AWS_ERRORS as exc:
            if _error_code(exc) != "ResourceInUseException":
                raise describe_client_error(exc, "create_project") from exc
        found = self._call("describe_projects", ProjectNames=[self.config.project])["ProjectDescriptions"]
        for project in found:
            if project["ProjectArn"].split("/")[1] == self.config.project:
                return project["ProjectArn"]
        raise CloudError(f"project {self.config.project} exists but describe_projects does not list it")

    def _version(self, status: JobStatus) -> dict[str, Any]:
        ext = status.external
        found = self._call("describe_project_versions", ProjectArn=ext["project_arn"],
                           VersionNames=[ext["version_name"]])["ProjectVersionDescriptions"]  # fmt: skip
        if not found:
            raise CloudError(f"Rekognition no longer knows model version {ext['version_name']}")
        return found[0]

    def _job(self, job_id: int) -> JobStatus:
        status = job_status(job_id, self.url)
        if status.backend != self.name:
            kind = f"a {status.backend} job"
            raise BadInputError(Reason.INVALID_PARAMETER, f"job {job_id} is {kind}, not a Rekognition one")
        return status

    def refresh(self, job_id: int) -> JobStatus:
        """Ask Rekognition about a training job; on completion the model is registered."""
        status = self._job(job_id)
        if status.status != JobState.TRAINING:
            return status
        version = self._version(status)
        state = TRAINING_STATES.get(version["Status"], JobState.TRAINING)
        changes: dict[str, Any] = {"external": {"rekognition_status": version["Status"]}}
        if state == JobState.FAILED:
            changes |= {"status": JobState.FAILED, "message": version.get("StatusMessage", "training failed")}
        elif state == JobState.TRAINED:
            if not claim_job(
                job_id, JobState.TRAINING, JobState.REGISTERING, self.url
            ):  # another refresh got there first
                return job_status(job_id, self.url)
            f1 = version.get("EvaluationResult", {}).get("F1Score")
            try:
                export = resolve_export(status.external["export_dir"], self.url)
                model_id = register_model(DETECTOR, export, save=None, params={"project": status.external["project"]},
                                          provenance={"job_id": job_id, "version_arn": status.external["version_arn"],
                                                      "rekognition_f1": f1}, url=self.url)  # fmt: skip
            except BaseException:
                set_job(job_id, self.url, status=JobState.TRAINING)  # the next refresh tries again
                raise
            changes |= {"status": JobState.TRAINED, "model_id": model_id, "message": version.get("StatusMessage", "")}
            billable = version.get("BillableTrainingTimeInSeconds")
            changes["external"] |= {"rekognition_f1": f1, "billable_training_s": billable}
        set_job(job_id, self.url, **changes)
        return job_status(job_id, self.url)

    def wait(self, job_id: int, *, timeout_s: float | None = None, on_poll=None) -> JobStatus:
        """Refresh every ``poll_s`` seconds until training ends (or ``timeout_s`` passes)."""
        started = time.monotonic()
        while True:
            status = self.refresh(job_id)
            if on_poll:
                on_poll(status)
            if status.status != JobState.TRAINING or (
                timeout_s is not None and time.monotonic() - started >= timeout_s
            ):
                return status
            self.sleep(self.poll_s)

    def evaluate(
        self, job_id: int, *, confirm_cost: bool = False, progress=None, actor: Actor | None = None
    ) -> dict[str, Any]:
        """Start the model, predict every test image, stop the model (always), store the results.

        Refuses to start anything unless ``actor`` has the engineer role and ``confirm_cost`` is true:
        the model costs money every hour it runs (see :meth:`CloudConfig.cost_notice`).
        """
        require(actor, Action.CLOUD_EVALUATE)
        status = self._job(job_id)
        if status.status not in (JobState.TRAINED, JobState.COMPLETED):
            raise BadInputError(Reason.INVALID_PARAMETER, f"job {job_id} is {status.status}; evaluate a trained model")
        if not confirm_cost:
            raise BadInputError(Reason.INVALID_PARAMETER, f"not started: {self.config.cost_notice()} Confirm to go on.")
        export = resolve_export(status.external["export_dir"], self.url)
        arn = status.external["version_arn"]
        audit_job(job_id, actor, Action.CLOUD_EVALUATE, f"model started on {self.config.inference_units} inference "
                  "unit(s) after the cost was confirmed", self.url)  # fmt: skip
        set_job(job_id, self.url, status=JobState.EVALUATING, message="starting the model")
        try:
            self._call("start_project_version", ProjectVersionArn=arn, MinInferenceUnits=self.config.inference_units)
            self._wait_running(status)
            records = export.records("test")
            p_abnormal = []
            for done, record in enumerate(records, start=1):
                key = status.external["key_base"] + record["file"]
                p_abnormal.append(self._p_abnormal(arn, status.external.get("bucket", self.config.bucket), key))
                if progress:
                    progress(done, len(records))
        except BaseException as exc:  # also interrupted (the page left): the model can be evaluated again
            reason = str(exc) or f"interrupted ({type(exc).__name__})"
            set_job(job_id, self.url, status=JobState.TRAINED, message=f"evaluation failed: {reason}")
            raise
        finally:
            self._stop_model(job_id, arn)
        return record_evaluation(job_id, status.model_id, records, p_abnormal, self.url)

    def _wait_running(self, status: JobStatus) -> None:
        while True:
            state = self._version(status)
            if state["Status"] == "RUNNING":
                return
            if state["Status"] not in ("STARTING",):
                raise CloudError(f"model did not start: {state['Status']} {state.get('StatusMessage', '')}".strip())
            self.sleep(self.poll_s)

    def _p_abnormal(self, arn: str, bucket: str, key: str) -> float:
        """P(abnormal) in [0, 1] for one image uploaded by the job (from the abnormal label, else 1 - normal)."""
        image = {"S3Object": {"Bucket": bucket, "Name": key}}
        labels = self._call("detect_custom_labels", ProjectVersionArn=arn, Image=image, MinConfidence=0)["CustomLabels"]
        confidence = {label["Name"]: label["Confidence"] / 100.0 for label in labels}
        if "abnormal" in confidence:
            return confidence["abnormal"]
        return 1.0 - confidence["normal"] if "normal" in confidence else 0.0

    def _stop_model(self, job_id: int, arn: str) -> None:
        """Stop the model, retrying while throttled; a failure to stop is recorded loudly, never hidden."""
        try:
            self._call("stop_project_version", ProjectVersionArn=arn)
            set_job(job_id, self.url, external={"model_stopped_at": datetime.now(UTC).isoformat(timespec="seconds")})
        except CloudError as exc:
            set_job(job_id, self.url, message=f"COULD NOT STOP THE MODEL, it may still cost money: {exc}")
            raise

    def stop(self, job_id: int, *, actor: Actor | None = None) -> JobStatus:
        """Stop the job's model if it runs (after an interrupted evaluation, or to be sure nothing bills).

        Rekognition's StopProjectVersion stops a running model, not a training run: a job
        still training is refused (training ends by itself, usually within hours).  An
        evaluation cut short goes back to ``trained``, ready to be evaluated again.
        """
        require(actor, Action.CLOUD_EVALUATE)
        status = self._job(job_id)
        arn = status.external.get("version_arn")
        if arn is None:
            raise NoModelError(f"job {job_id} has no model version to stop")
        if status.status in (JobState.PENDING, JobState.UPLOADING, JobState.TRAINING, JobState.REGISTERING):
            raise BadInputError(
                Reason.INVALID_PARAMETER,
                f"job {job_id} is {status.status}: Rekognition cannot stop a training run (it ends by itself); "
                "stop applies to a trained model that runs",
            )
        self._stop_model(job_id, arn)
        audit_job(job_id, actor, "stop cloud model", f"{arn}", self.url)
        if status.status == JobState.EVALUATING:
            set_job(
                job_id, self.url, status=JobState.TRAINED, message="evaluation stopped by request; the model is stopped"
            )
        return job_status(job_id, self.url)
