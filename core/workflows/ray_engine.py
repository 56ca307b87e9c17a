"""Backfills on Ray: scoring and feature extraction as Ray tasks, on a local instance or an existing cluster.

Ray is optional: it is imported only inside these functions, when ``--engine ray`` asks for it.

* The driver (this process) owns the database.  It sends tasks the clips' ``(id, path)`` and the model's
  folder; workers only read audio and model files (so on a cluster both must be on storage every node
  mounts at the same path), compute, and send back scores or features.
* A worker process loads each model once (:func:`core.workflows.model_store.load_detector` caches it per
  process) and keeps it for every later task of that model.
* Results stream back as tasks finish (``ray.wait``) and the driver commits them ``SCORE_CHUNK`` clips at a
  time through :func:`core.workflows.scoring.store_scores`, the process engine's own writer.  At most
  ``IN_FLIGHT_PER_CPU`` tasks per cluster CPU are outstanding, so memory stays bounded on any backfill.
* A killed worker loses nothing: Ray runs its task again (``MAX_RETRIES``) elsewhere, what the driver
  committed stays, and a killed driver's run is finished by the same command (it scores only unscored clips).
  A task that still fails is reported clip by clip (``unexpected_error``), never stopping the others.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import TypeVar

import numpy as np

from core.errors import BadInputError, Reason
from core.parallel import Progress, default_jobs
from core.settings import settings
from core.signal.batch import FeatureBatch
from core.signal.batch import extract_features as extract_here
from core.signal.features import FeatureParams
from core.workflows.clip_store import open_clip
from core.workflows.scoring import SCORE_CHUNK, ChunkScores, score_clips

T = TypeVar("T")
R = TypeVar("R")

TASK_CLIPS = 32  # at most this many clips per task (a task's features are about 25 MB at 10 s)
TASKS_PER_CPU = 4  # a backfill is cut into at least this many tasks per CPU, so the load stays balanced
IN_FLIGHT_PER_CPU = 4  # outstanding tasks per cluster CPU (bounds the driver's and the object store's memory)
MAX_RETRIES = 3  # times Ray runs a task again when its worker dies (killed, out of memory, node lost)
_log = logging.getLogger(__name__)


def connect(address: str | None = None, *, n_jobs: int | None = None) -> None:
    """Join Ray unless this process already has: the cluster at ``address`` (default ``RAY_ADDRESS``), or
    else a new local instance on ``n_jobs`` CPUs (default: all cores).

    Joining a cluster ships this product's code (the ``core`` and ``db`` packages) to its workers
    (``runtime_env`` ``py_modules``); its nodes need the packages of ``requirements.txt`` installed.
    """
    import ray

    if ray.is_initialized():
        return
    address = address or settings().ray_address
    if address is None:
        ray.init(address="local", num_cpus=n_jobs or default_jobs(), include_dashboard=False,
                 logging_level=logging.WARNING)  # fmt: skip
        return
    import core
    import db

    packages = [str(Path(package.__file__).parent) for package in (core, db)]  # folders: Ray Client pickles them
    runtime_env = {"py_modules": packages, "excludes": ["__pycache__"]}
    ray.init(address=address, runtime_env=runtime_env, logging_level=logging.WARNING)


def score_task(artifact_path: str, clips: list[tuple[int, str]]) -> ChunkScores:
    """One Ray task: read ``clips`` (``(clip_id, path)``) and score them with the model in ``artifact_path``,
    in this worker process (loaded here once, then cached)."""
    return score_clips(artifact_path, clips, n_jobs=1)


def features_task(paths: list[str], params: FeatureParams, channel: int) -> FeatureBatch:
    """One Ray task: the features of ``paths`` (bad files in ``failures``), in this worker process."""
    return extract_here(paths, params, channel=channel, n_jobs=1, opener=open_clip)


@cache
def _remote(func: Callable) -> object:
    """``func`` as a Ray remote function: one CPU per task, run again when its worker dies."""
    import ray

    return ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(func)


def _cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def task_chunks(items: Sequence[T], cpus: int) -> list[Sequence[T]]:
    """``items`` cut into tasks: at least ``TASKS_PER_CPU`` per CPU when there are enough, ``TASK_CLIPS`` at most."""
    size = min(TASK_CLIPS, max(1, math.ceil(len(items) / (cpus * TASKS_PER_CPU))))
    return [items[start : start + size] for start in range(0, len(items), size)]


def stream(
    submit: Callable[[Sequence[T]], object],
    failed: Callable[[Sequence[T], Exception], R],
    items: Sequence[T],
    *,
    address: str | None = None,
    n_jobs: int | None = None,
    progress: Progress | None = None,
) -> Iterator[R]:
    """Run ``submit(chunk)`` (it returns a Ray object ref) over ``items`` cut into tasks, at most
    ``IN_FLIGHT_PER_CPU`` per CPU at once, and yield each task's result as it finishes (not in order).
    A task Ray gave up on (after ``MAX_RETRIES`` lost workers, or an error in it) yields ``failed(chunk, error)``."""
    import ray

    connect(address, n_jobs=n_jobs)
    cpus = _cpus()
    chunks, limit, total, done = task_chunks(items, cpus), IN_FLIGHT_PER_CPU * cpus, len(items), 0
    pending: dict[object, Sequence[T]] = {}
    if progress:
        progress(0, total)
    while chunks or pending:
        while chunks and len(pending) < limit:
            chunk = chunks.pop(0)
            pending[submit(chunk)] = chunk
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            chunk = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:
                _log.error("a Ray task over %d item(s) failed: %s", len(chunk), exc)
                result = failed(chunk, exc)
            done += len(chunk)
            yield result
            if progress:
                progress(done, total)


def _unexpected(exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"the Ray task failed (a bug or a lost node, not a fault of the file): {first}"


def scored_batches(
    artifact_path: str,
    clips: list[tuple[int, str]],
    *,
    address: str | None = None,
    n_jobs: int | None = None,
    progress: Progress | None = None,
) -> Iterator[ChunkScores]:
    """Score ``clips`` (``(clip_id, path)``) with the model in ``artifact_path`` on Ray, yielding the results
    merged into batches of at least ``SCORE_CHUNK`` clips (the last one smaller) for the caller to commit."""
    remote = _remote(score_task)

    def failed(chunk: Sequence[tuple[int, str]], exc: Exception) -> ChunkScores:
        detail = _unexpected(exc)
        return ChunkScores(failed=[{"path": path, "reason": Reason.UNEXPECTED.value, "detail": detail}
                                   for _, path in chunk])  # fmt: skip

    batch = ChunkScores()
    for result in stream(lambda chunk: remote.remote(artifact_path, list(chunk)), failed, clips,
                         address=address, n_jobs=n_jobs, progress=progress):  # fmt: skip
        batch.merge(result)
        if batch.size >= SCORE_CHUNK:
            yield batch
            batch = ChunkScores()
    if batch.size:
        yield batch


def extract_features(
    paths: list[str],
    params: FeatureParams = FeatureParams(),
    *,
    channel: int = 0,
    address: str | None = None,
    n_jobs: int | None = None,
    progress: Progress | None = None,
) -> FeatureBatch:
    """:func:`core.signal.batch.extract_features` on Ray: the features of every file in ``paths``, each
    ``(n_vectors, params.dims)`` float32, computed by Ray tasks; a bad file is recorded in ``failures``."""
    remote = _remote(features_task)

    def failed(chunk: Sequence[str], exc: Exception) -> FeatureBatch:
        return FeatureBatch(failures={path: BadInputError(Reason.UNEXPECTED, _unexpected(exc), path)
                                      for path in chunk})  # fmt: skip

    batch = FeatureBatch()
    for result in stream(lambda chunk: remote.remote(list(chunk), params, channel), failed, paths,
                         address=address, n_jobs=n_jobs, progress=progress):  # fmt: skip
        # Copied out of Ray's shared memory: the arrays a task returns are read-only views of its object store.
        batch.features |= {path: np.array(features) for path, features in result.features.items()}
        batch.failures |= result.failures
    return batch
