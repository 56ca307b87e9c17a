"""Reading supervised training jobs back from the database (any backend)."""

from __future__ import annotations

from core.clock import seconds_since
from core.errors import BadInputError, Reason
from core.supervised.base import JobStatus
from core.vocabulary import JobState
from db.models import TrainingJob
from db.queries import training_jobs
from db.session import session_scope

LOCAL_STALE_S = 600.0  # a local job records progress every epoch; this long without any, its process died


def _status(job: TrainingJob) -> JobStatus:
    status, message = job.status, job.message
    if (
        job.backend == "local"
        and status in (JobState.PENDING, JobState.TRAINING)
        and seconds_since(job.updated_at) > LOCAL_STALE_S
    ):
        status = JobState.INTERRUPTED  # killed (SIGKILL, power cut): nothing could record it, so say it here
        message = f"no progress for {seconds_since(job.updated_at) / 60:.0f} min: its process stopped; train again"
    return JobStatus(
        job.id, job.backend, status, message, job.model_id, job.export_id,
        dict(job.external or {}), job.created_at, job.updated_at, job.finished_at,
    )  # fmt: skip


def job_status(job_id: int, url: str | None = None) -> JobStatus:
    with session_scope(url) as session:
        job = session.get(TrainingJob, job_id)
        if job is None:
            raise BadInputError(Reason.NOT_FOUND, f"no training job {job_id}")
        return _status(job)


def recent_jobs(limit: int = 20, *, backend: str | None = None, url: str | None = None) -> list[JobStatus]:
    """The newest jobs first."""
    with session_scope(url) as session:
        return [_status(job) for job in training_jobs(session, limit, backend)]
