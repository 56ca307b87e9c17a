"""Scoring clips with each machine's active model, only those it has not scored yet."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

from core.detection.selection import name_of
from core.errors import BadInputError, Reason
from core.parallel import Progress
from core.signal.batch import extract_features
from core.vocabulary import Engine
from core.workflows.catalogue import machines_named
from core.workflows.clip_store import open_clip
from core.workflows.model_store import load_detector
from db.models import Clip, DetectorModel
from db.queries import add_scores, unscored_clips
from db.session import session_scope, write_transaction

SCORE_CHUNK = 256  # clips whose features are held in memory at once (~100 MB at 10 s)


@dataclass
class ScoreReport:
    scored: int = 0
    models: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason", "detail"}
    machines_without_model: list[str] = field(default_factory=list)


def model_sample_rate(model: DetectorModel) -> int | None:
    """The sample rate a model was trained at (``None`` for models that did not record one)."""
    return (model.params or {}).get("sample_rate")


def wrong_sample_rate(clip: Clip, rate: int, model: str) -> dict[str, str]:
    """The report entry (``{"path", "reason", "detail"}``) of a clip left out for its sample rate."""
    detail = f"recorded at {clip.sample_rate} Hz; {model} works at {rate} Hz (resample the file to {rate} Hz)"
    return {"path": clip.path, "reason": Reason.WRONG_SAMPLE_RATE.value, "detail": detail}


def scorable(model: DetectorModel, clips: list[Clip]) -> tuple[list[Clip], list[dict[str, str]]]:
    """The clips ``model`` can score, and a report entry naming each clip at another sample rate than the
    model's: its features would not be comparable (mel bands span 0..sr/2, a hop is 512 samples)."""
    rate = model_sample_rate(model)
    if rate is None:
        return clips, []
    name = name_of(model)
    wrong = [wrong_sample_rate(c, rate, name) for c in clips if c.sample_rate != rate]
    return [c for c in clips if c.sample_rate == rate], wrong


@dataclass
class ChunkScores:
    """What scoring some clips with one model gave, wherever it ran (this process or a Ray worker).

    Attributes
    ----------
    scores : dict of int to float
        ``{clip_id: score}`` of the readable clips (higher = more abnormal).
    details : dict of int to dict
        ``{clip_id: {"frame_errors", "band_errors"}}``, per feature vector and per mel band.
    failed : list of dict
        ``{"path", "reason", "detail"}`` of each clip that could not be scored.
    loads : dict of int to int
        ``{worker pid: times it loaded the model}`` for the processes that computed these scores (0: the model
        was already loaded there).
    """

    scores: dict[int, float] = field(default_factory=dict)
    details: dict[int, dict] = field(default_factory=dict)
    failed: list[dict[str, str]] = field(default_factory=list)
    loads: dict[int, int] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Clips accounted for: scored or failed."""
        return len(self.scores) + len(self.failed)

    def merge(self, other: ChunkScores) -> None:
        """Add ``other``'s clips (of the same model) to these."""
        self.scores |= other.scores
        self.details |= other.details
        self.failed += other.failed
        for pid, n in other.loads.items():
            self.loads[pid] = self.loads.get(pid, 0) + n


def score_clips(
    artifact_path: str, clips: list[tuple[int, str]], *, n_jobs: int | None = None, progress: Progress | None = None
) -> ChunkScores:
    """Read ``clips`` (``(clip_id, path)``), extract their features on ``n_jobs`` processes and score them with
    the model saved in ``artifact_path`` in a few large forward passes.  The model is loaded once per process
    (:func:`~core.workflows.model_store.load_detector` caches it).  Touches no database: it runs here for the
    process engine and on Ray workers for the Ray engine (:mod:`core.workflows.ray_engine`)."""
    misses = load_detector.cache_info().misses
    detector = load_detector(artifact_path)
    result = ChunkScores(loads={os.getpid(): load_detector.cache_info().misses - misses})
    batch = extract_features([path for _, path in clips], detector.feature_params, n_jobs=n_jobs, progress=progress,
                             opener=open_clip)  # fmt: skip
    readable = [(clip_id, path) for clip_id, path in clips if path in batch.features]
    if readable:
        values, explanations = detector.score_and_explain([batch.features[path] for _, path in readable])
        result.scores = {clip_id: float(v) for (clip_id, _), v in zip(readable, values, strict=True)}
        version = {} if detector.explanation_version == 1 else {"explanation_version": detector.explanation_version}
        result.details = {clip_id: e.summary() | version for (clip_id, _), e in zip(readable, explanations,
                                                                                    strict=True)}  # fmt: skip
    result.failed = [{"path": path, "reason": error.reason.value, "detail": error.detail}
                     for path, error in batch.failures.items()]  # fmt: skip
    return result


def store_scores(model_id: int, chunk: ChunkScores, report: ScoreReport, url: str | None = None) -> None:
    """Commit ``chunk``'s scores of model ``model_id`` in one transaction (clips it scored already are left)
    and count them in ``report``: the one way scores reach the database, whichever engine computed them."""
    if chunk.scores:
        write_transaction(partial(add_scores, model_id=model_id, scores=chunk.scores, details=chunk.details), url)
    report.scored += len(chunk.scores)
    report.failed += chunk.failed


def _process_chunks(
    artifact_path: str, clips: list[tuple[int, str]], n_jobs: int | None, progress: Progress | None
) -> Iterator[ChunkScores]:
    """The process engine: ``SCORE_CHUNK`` clips at a time, features on a pool of ``n_jobs`` processes."""
    for start in range(0, len(clips), SCORE_CHUNK):

        def chunk_progress(finished: int, _total: int, offset: int = start) -> None:
            if progress:
                progress(offset + finished, len(clips))

        yield score_clips(artifact_path, clips[start : start + SCORE_CHUNK], n_jobs=n_jobs, progress=chunk_progress)


def score_with_model(
    model: DetectorModel,
    machine_pks: list[int],
    *,
    url: str | None = None,
    n_jobs: int | None = None,
    progress: Progress | None = None,
    report: ScoreReport | None = None,
    engine: Engine = Engine.PROCESS,
    address: str | None = None,
) -> ScoreReport:
    """Score the clips of these machines that ``model`` has not scored yet.

    ``engine`` process: features are extracted on ``n_jobs`` processes; the model then scores a chunk of
    clips in a few large forward passes.  ``engine`` ray: tasks on Ray (a local instance of ``n_jobs`` CPUs,
    or the cluster at ``address``) read, extract and score, each worker loading the model once; results
    stream back here (:mod:`core.workflows.ray_engine`).  Either way unreadable clips are reported, not fatal,
    and scores are committed here ``SCORE_CHUNK`` clips at a time (:func:`store_scores`), so an interrupted run
    loses at most one chunk.  A model without local files (a cloud model) scores nothing here.  Clips at
    another sample rate than the model's are reported (``wrong_sample_rate``), not scored.
    """
    report = report if report is not None else ScoreReport()
    if model.artifact_path is None:  # a cloud model: it scored what it was sent, nothing more here
        return report
    with session_scope(url) as session:
        clips, wrong = scorable(model, unscored_clips(session, model.id, machine_pks))
    report.failed += wrong
    if not clips:
        return report
    report.models += 1
    work = [(clip.id, clip.path) for clip in clips]
    if Engine(engine) is Engine.RAY:
        from core.workflows.ray_engine import scored_batches

        chunks = scored_batches(model.artifact_path, work, address=address, n_jobs=n_jobs, progress=progress)
    else:
        chunks = _process_chunks(model.artifact_path, work, n_jobs, progress)
    for chunk in chunks:
        store_scores(model.id, chunk, report, url)
    return report


def score(
    machine: str | None = None,
    *,
    url: str | None = None,
    n_jobs: int | None = None,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
    engine: Engine = Engine.PROCESS,
    address: str | None = None,
) -> ScoreReport:
    """Score every clip of the matching machines (``machine``: ``type/id``, ``type`` or None for all) not yet
    scored by their active model, on ``engine`` (see :func:`score_with_model`; ``address``: the Ray cluster,
    default ``RAY_ADDRESS``, else a local instance).  Raises :class:`BadInputError` when a given ``machine``
    names none, or when ``address`` is given without the Ray engine."""
    if address and Engine(engine) is not Engine.RAY:
        raise BadInputError(Reason.INVALID_PARAMETER, "--address needs --engine ray")
    report = ScoreReport()
    with session_scope(url) as session:
        work: dict[int, tuple[DetectorModel, list[int]]] = {}
        for m in machines_named(session, machine):
            if m.active_model is None:
                report.machines_without_model.append(m.key)
                continue
            work.setdefault(m.active_model.id, (m.active_model, []))[1].append(m.id)
    with session_scope(url) as session:
        counts = [len(scorable(model, unscored_clips(session, model.id, pks))[0]) for model, pks in work.values()]
    total, offset = sum(counts), 0
    for (model, pks), count in zip(work.values(), counts, strict=True):

        def overall(done: int, _total: int, offset: int = offset) -> None:  # one bar across all models
            if progress:
                progress(offset + done, total)

        offset += count
        before = report.scored
        score_with_model(model, pks, url=url, n_jobs=n_jobs, progress=overall, report=report, engine=engine,
                         address=address)  # fmt: skip
        if log and report.scored > before:
            log(f"scored {report.scored - before} clips with {model.detector} v{model.version} ({model.scope})")
    return report
