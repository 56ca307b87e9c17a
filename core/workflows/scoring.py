"""Scoring clips with each machine's active model, only those it has not scored yet."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from core.errors import Reason
from core.parallel import Progress
from core.signal.batch import extract_features
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
    name = f"{model.detector} v{model.version} ({model.scope})"
    wrong = [wrong_sample_rate(c, rate, name) for c in clips if c.sample_rate != rate]
    return [c for c in clips if c.sample_rate == rate], wrong


def score_with_model(
    model: DetectorModel,
    machine_pks: list[int],
    *,
    url: str | None = None,
    n_jobs: int | None = None,
    progress: Progress | None = None,
    report: ScoreReport | None = None,
) -> ScoreReport:
    """Score the clips of these machines that ``model`` has not scored yet.

    Features are extracted on ``n_jobs`` processes; the model then scores a chunk of
    clips in a few large forward passes.  Unreadable clips are reported, not fatal.
    Scores are committed chunk by chunk, so an interrupted run loses at most one chunk.
    A model without local files (a cloud model) scores nothing here.  Clips at another
    sample rate than the model's are reported (``wrong_sample_rate``), not scored.
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
    detector = load_detector(model.artifact_path)
    for start in range(0, len(clips), SCORE_CHUNK):
        chunk = clips[start : start + SCORE_CHUNK]

        def chunk_progress(finished: int, _total: int, offset: int = start) -> None:
            if progress:
                progress(offset + finished, len(clips))

        batch = extract_features([c.path for c in chunk], detector.feature_params, n_jobs=n_jobs,
                                 progress=chunk_progress, opener=open_clip)  # fmt: skip
        readable = [c for c in chunk if c.path in batch.features]
        if readable:
            values, explanations = detector.score_and_explain([batch.features[c.path] for c in readable])
            values_by_clip = {c.id: float(v) for c, v in zip(readable, values, strict=True)}
            details = {c.id: e.summary() for c, e in zip(readable, explanations, strict=True)}
            write_transaction(partial(add_scores, model_id=model.id, scores=values_by_clip, details=details), url)
        report.scored += len(readable)
        report.failed += [
            {"path": path, "reason": error.reason.value, "detail": error.detail}
            for path, error in batch.failures.items()
        ]
    return report


def score(
    machine: str | None = None,
    *,
    url: str | None = None,
    n_jobs: int | None = None,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> ScoreReport:
    """Score every clip of the matching machines (``machine``: ``type/id``, ``type`` or None for all) not yet
    scored by their active model.  Raises :class:`BadInputError` when a given ``machine`` names none."""
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
        score_with_model(model, pks, url=url, n_jobs=n_jobs, progress=overall, report=report)
        if log and report.scored > before:
            log(f"scored {report.scored - before} clips with {model.detector} v{model.version} ({model.scope})")
    return report
