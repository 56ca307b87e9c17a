"""Drift monitoring: do a machine's recent clips still look like the clips its active model learned from?

Two comparisons per machine, each with a population stability index (PSI) and a two-sample
Kolmogorov-Smirnov (KS) test:

* **scores**: the active model's scores of the recent clips against its scores of normal clips
  held out from its training.  Not against its training clips: a model scores the clips it was
  fitted on lower than unseen clips of the very same distribution (on the demo plant the
  Mahalanobis detector gives its training clips a median of 30 and unseen normal clips 85, KS
  statistic 1.0), so that comparison would always cry drift.
* **log-mel levels**: each clip's mean level per mel band (dB relative to the clip's peak,
  ``(n_clips, n_mels)``) of the recent clips against the training clips; a PSI per band (the worst
  bands are reported) and a KS test on the clip-level mean level (mean over bands).

Which clips:

* reference: the clips the active model trained on (its provenance; else the machine's normal
  clips of the training split), at most ``max_reference``, an evenly spaced sample by id;
* held out: normal clips ingested no later than the model was created that it did not train on
  (the reference for scores), at most ``max_reference`` the same way;
* recent: the newest ``recent`` other clips by ingestion time, leaving out clips labelled or
  confirmed abnormal (known faults measure the detector, not drift).

Clips at another sample rate than the model's are left out (their mel bands span other frequencies)
and counted; unreadable clips are skipped and counted, never fatal.  See :func:`classify` for the states.

The reference clips' levels are cached per model and reference set (:func:`_reference_levels`), so a
repeated report reads only the recent clips' audio.  Retraining (``python -m core train``) uses the
training clips plus the field clips pilots confirmed normal (:mod:`core.workflows.training`).
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import numpy as np

from core.clock import as_utc
from core.commands import core_command
from core.detection.drift_stats import (  # noqa: F401  (re-exported: the report's vocabulary)
    KS_ALPHA,
    MAJOR_PSI,
    MIN_CLIPS,
    MIN_PER_BIN,
    MODERATE_PSI,
    NOT_ENOUGH_DATA,
    PSI_BINS,
    PSI_EPSILON,
    RETRAIN,
    STABLE,
    STATES,
    WATCH,
    WATCH_ALPHA,
    WORST_BANDS,
    band_psi,
    classify,
    clip_levels,
    ks_test,
    population_stability_index,
    psi_bins,
    stable_reason,
)
from core.detection.selection import name_of
from core.errors import BadInputError, Reason
from core.settings import settings
from core.signal.batch import extract_features
from core.signal.features import FeatureParams, mel_band_centres
from core.vocabulary import Label, Split
from core.workflows.catalogue import machine_named, machines_named
from core.workflows.clip_store import open_clip
from core.workflows.labels import labels_for_clips, why_not_learned
from core.workflows.scoring import score_with_model
from db.models import Clip, DetectorModel, Machine
from db.queries import (
    clip_rates,
    clip_scores,
    clips_by_id,
    drift_candidates,
    judged_ids,
    machine_by_key,
    newest_clips_page,
    other_rate_ids,
)
from db.session import session_scope

LEVEL_PARAMS = FeatureParams(frames=1)  # one log-mel column per vector
REFERENCE_CACHE_SIZE = 32  # reference level sets kept (one per model and reference set; ~200 x 64 floats each)
RETRAIN_ADVICE = "retrain on the training clips plus the field clips pilots confirmed normal"


# --- the report --------------------------------------------------------------------------------------------------


@dataclass
class DriftReport:
    """Drift of one machine's recent clips.  PSI and KS values are ``None`` where not compared;
    ``worst_bands`` holds ``(band index, approximate centre Hz, PSI)``, the worst first."""

    machine: str
    n_reference: int = 0  # training clips read for the level comparison
    n_recent: int = 0  # recent clips read
    n_held_out: int = 0  # held-out normal clips whose scores are the score reference
    n_unreadable: int = 0  # clips skipped because they could not be read
    score_psi: float | None = None
    score_ks_statistic: float | None = None
    score_ks_pvalue: float | None = None
    level_psi: float | None = None  # the largest per-band PSI
    worst_bands: list[tuple[int, float, float]] = field(default_factory=list)
    level_ks_pvalue: float | None = None
    state: str = NOT_ENOUGH_DATA
    reasons: list[str] = field(default_factory=list)
    detector: str | None = None
    model_version: int | None = None
    front_end: str | None = None  # the active model's (None: none saved, or a detector without one)
    automatic: bool = False  # the active model came from the automatic choice

    @property
    def retrain_command(self) -> str:
        """The command that retrains this machine's active detector, its arguments quoted for the shell: the
        automatic choice again when it chose the model, else the detector with its front end when that is PCEN."""
        detector = ("--detector", "auto" if self.automatic else self.detector) if self.detector else ()
        pcen = ("--front-end", self.front_end) if self.front_end == "pcen" and not self.automatic else ()
        return core_command("train", "--machine", self.machine, *detector, *pcen)

    def as_json(self) -> dict:
        """Every field as JSON-ready values (floats to 4 significant digits), ``worst_bands`` as
        ``[{"band", "centre_hz", "psi"}]``, plus ``retrain_command``."""
        out = {
            name: _sig(value) if isinstance(value, float) else value
            for name, value in vars(self).items()
            if name not in ("worst_bands", "reasons")
        }
        out["worst_bands"] = [{"band": b, "centre_hz": _sig(hz), "psi": _sig(p)} for b, hz, p in self.worst_bands]
        out["reasons"] = list(self.reasons)
        out["retrain_command"] = self.retrain_command
        return out


def _sig(value: float) -> float:
    return float(f"{value:.4g}")


def _spread(clip_ids: list[int], limit: int) -> list[int]:
    """At most ``limit`` of ``clip_ids``, evenly spaced by id: deterministic, covering the whole period."""
    clip_ids = sorted(clip_ids)
    if len(clip_ids) <= limit:
        return clip_ids
    return [clip_ids[i] for i in np.linspace(0, len(clip_ids) - 1, limit).round().astype(int)]


@dataclass(frozen=True)
class _ClipSets:
    reference: list[Clip]
    held_out: list[Clip]
    recent: list[Clip]
    sample_rate: int | None  # Hz; clips at other rates are left out (their mel bands span other frequencies)
    n_other_rate: int  # held-out and recent candidates left out for their sample rate
    retrainable: frozenset[int]  # ids of recent clips a retraining would use (see core.workflows.training)


RECENT_PAGE = 4  # recent clips are read newest first in pages of this many times ``recent``


def _reference_ids(session, machine: Machine, model: DetectorModel) -> tuple[dict[int, int], int | None]:
    """``({clip_id: sample rate} of the clips the model trained on, the model's rate)``: its provenance's clips
    of this machine, else the machine's normal training-split clips (a model trained elsewhere)."""
    trained = clip_rates(session, machine.id, sorted(set(model.provenance.get("clip_ids") or [])))
    if not trained:
        trained = clip_rates(session, machine.id)
    rate = (model.params or {}).get("sample_rate") or (
        Counter(trained.values()).most_common(1)[0][0] if trained else None
    )
    return trained, rate


def _held_out_ids(session, machine: Machine, model: DetectorModel, rate, trained) -> set[int]:
    """Ids of the normal clips (under the label policy) at ``rate``, ingested no later than the model was
    created, that it did not train on.  Only clips someone judged go through the policy: the others are what
    their layout says."""
    judged = judged_ids(session, machine.id)
    candidates = [(i, label) for i, label in drift_candidates(session, machine.id, rate, as_utc(model.created_at))
                  if i not in trained]  # fmt: skip
    labels = labels_for_clips(session, clips_by_id(session, [i for i, _ in candidates if i in judged]))
    return {i for i, label in candidates
            if (labels[i].label == Label.NORMAL if i in judged else label == Label.NORMAL)}  # fmt: skip


def _recent(session, machine: Machine, rate, skip: set[int], recent: int) -> list[Clip]:
    """The newest ``recent`` clips at ``rate`` outside ``skip``, leaving out those labelled abnormal or disputed
    (known faults and open disputes measure the detector, not drift): read newest first, a page at a time."""
    chosen: list[Clip] = []
    before = None
    while len(chosen) < recent:
        page = newest_clips_page(session, machine.id, rate, before, RECENT_PAGE * recent)
        if not page:
            break
        before = (page[-1].ingested_at, page[-1].id)
        page = [c for c in page if c.id not in skip]
        labels = labels_for_clips(session, page)
        chosen += [c for c in page if labels[c.id].label != Label.ABNORMAL and not labels[c.id].disputed]
    return chosen[:recent]


def _clip_sets(session, machine: Machine, model: DetectorModel, recent: int, max_reference: int) -> _ClipSets:
    """The reference, held-out and recent clips, read from the database by what they are (never every clip of
    the machine): the reference and held-out samples as ids first, then only the chosen rows."""
    trained, rate = _reference_ids(session, machine, model)
    reference = [i for i, r in trained.items() if rate is None or r == rate]
    held_out = _held_out_ids(session, machine, model, rate, trained)
    chosen = _recent(session, machine, rate, set(trained) | held_out, recent)
    learn = settings().train_from_verdicts
    retrainable = frozenset(c.id for c, found in zip(chosen, labels_for_clips(session, chosen).values(), strict=True)
                            if c.split != Split.TEST and why_not_learned(found, learn) is None)  # fmt: skip
    n_other_rate = len(other_rate_ids(session, machine.id, rate) - set(trained)) if rate is not None else 0
    return _ClipSets(
        clips_by_id(session, _spread(reference, max_reference)), clips_by_id(session, _spread(sorted(held_out),
        max_reference)), chosen, rate, n_other_rate, retrainable,
    )  # fmt: skip


def _finite(values: list[float]) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    return x[np.isfinite(x)]


def _compare_scores(report: DriftReport, held_out: np.ndarray, recent: np.ndarray) -> None:
    report.score_psi = population_stability_index(held_out, recent, psi_bins(held_out.size, recent.size))
    report.score_ks_statistic, report.score_ks_pvalue = ks_test(held_out, recent)
    psi, p = report.score_psi, report.score_ks_pvalue
    medians = f"median {np.median(held_out):.4g} -> {np.median(recent):.4g}"
    if psi > MAJOR_PSI and p < KS_ALPHA:
        report.reasons.append(f"scores of recent clips shifted: PSI {psi:.2f} > {MAJOR_PSI}, KS p {p:.2g} < {KS_ALPHA} "
                              f"({medians})")  # fmt: skip
    elif psi > MODERATE_PSI:
        report.reasons.append(f"scores of recent clips moved: PSI {psi:.2f} > {MODERATE_PSI}, KS p {p:.2g} ({medians})")


def _compare_levels(report: DriftReport, reference: np.ndarray, recent: np.ndarray, sr: int) -> None:
    per_band = band_psi(reference, recent, psi_bins(len(reference), len(recent)))
    centres = mel_band_centres(sr, per_band.size)
    report.level_psi = float(per_band.max())
    report.worst_bands = [(int(b), round(float(centres[b])), float(per_band[b])) for b in
                          np.argsort(-per_band, kind="stable")[:WORST_BANDS]]  # fmt: skip
    ref_mean, recent_mean = reference.mean(axis=1), recent.mean(axis=1)
    _, report.level_ks_pvalue = ks_test(ref_mean, recent_mean)
    psi, p = report.level_psi, report.level_ks_pvalue
    band, hz, _ = report.worst_bands[0]
    where = f"band {band} (~{hz:.0f} Hz)"
    means = f"mean level {ref_mean.mean():.1f} -> {recent_mean.mean():.1f} dB"
    if psi > MAJOR_PSI and p < KS_ALPHA:
        report.reasons.append(f"log-mel levels of recent clips shifted: PSI {psi:.2f} > {MAJOR_PSI} in {where}, "
                              f"KS p {p:.2g} < {KS_ALPHA} on the {means}")  # fmt: skip
    elif psi > MODERATE_PSI:
        report.reasons.append(f"log-mel levels of recent clips moved: PSI {psi:.2f} > {MODERATE_PSI} in {where}, "
                              f"KS p {p:.2g} on the {means}")  # fmt: skip


def drift_report(
    machine: str,
    *,
    recent: int = 50,
    url: str | None = None,
    max_reference: int = 200,
    n_jobs: int | None = None,
    score_missing: bool = True,
) -> DriftReport:
    """Drift of machine ``machine`` (``type/id``): its newest ``recent`` clips against what its active
    model learned from (see the module doc).  Clips the active model has not scored yet are scored
    first (:func:`core.workflows.scoring.score_with_model`), unless ``score_missing`` is false: then nothing is
    written and unscored clips are left out of the score comparison (for read-only callers such as the
    Overview page).  Raises ``BadInputError`` for an unknown machine."""
    if recent < 1 or max_reference < 1:
        raise BadInputError(Reason.INVALID_PARAMETER, f"recent and max_reference must be >= 1, got {recent}, "
                            f"{max_reference}")  # fmt: skip
    report, model, sets, machine_pk = _report_inputs(machine, recent, max_reference, url)
    if model is None:
        return report
    if sets.n_other_rate:
        report.reasons.append(f"{sets.n_other_rate} clips recorded at another sample rate than {sets.sample_rate} Hz "
                              "were left out")  # fmt: skip
    if len(sets.recent) < MIN_CLIPS or len(sets.reference) < MIN_CLIPS:
        return _not_enough(report, len(sets.reference), len(sets.recent))

    reference_levels = _reference_levels(model.id, sets.reference, n_jobs)
    batch = extract_features(list(dict.fromkeys(c.path for c in sets.recent)), LEVEL_PARAMS, n_jobs=n_jobs,
                             opener=open_clip)  # fmt: skip
    reference = [c for c in sets.reference if c.id in reference_levels]
    recent_clips = [c for c in sets.recent if c.path in batch.features]
    scores, score_failures = _scores(model, machine_pk, sets.held_out + recent_clips, url, n_jobs, score_missing)
    unreadable = {c.id for c in sets.reference if c.id not in reference_levels}
    unreadable |= {c.id for c in sets.recent if c.path in batch.failures}
    unreadable |= {c.id for c in sets.held_out if c.path in score_failures}
    report.n_unreadable = len(unreadable)
    if report.n_unreadable:
        report.reasons.append(f"{report.n_unreadable} clips could not be read and were skipped")
    report.n_reference, report.n_recent = len(reference), len(recent_clips)
    if report.n_recent < MIN_CLIPS or report.n_reference < MIN_CLIPS:
        return _not_enough(report, report.n_reference, report.n_recent)
    _compare_score_sets(report, model, [scores.get(c.id) for c in sets.held_out],
                        [scores.get(c.id) for c in recent_clips], score_missing)  # fmt: skip
    reference_array = np.array([reference_levels[c.id] for c in reference])
    recent_array = np.array([clip_levels(batch.features[c.path]) for c in recent_clips])
    _compare_levels(report, reference_array, recent_array, sets.sample_rate)
    return _conclude(report, sum(c.id in sets.retrainable for c in recent_clips))


def _report_inputs(
    machine: str, recent: int, max_reference: int, url: str | None
) -> tuple[DriftReport, DetectorModel | None, _ClipSets | None, int]:
    """``(report, active model, clip sets, machine pk)``; the model is None (and the report says so) without one."""
    with session_scope(url) as session:
        found = machine_named(session, machine)
        report = DriftReport(machine=found.key)
        model = found.active_model
        if model is None:
            report.reasons.append(f"no active model: train one with `{core_command('train', '--machine', found.key)}`")
            return report, None, None, found.id
        report.detector, report.model_version = model.detector, model.version
        report.front_end, report.automatic = model.front_end, "choice" in (model.provenance or {})
        return report, model, _clip_sets(session, found, model, recent, max_reference), found.id


def _compare_score_sets(
    report: DriftReport,
    model: DetectorModel,
    held_out: list[float | None],
    recent: list[float | None],
    score_missing: bool,
) -> None:
    """The score comparison, or the reason it was not made (scores are None for clips not scored)."""
    held_scores = _finite([v for v in held_out if v is not None])
    recent_scores = _finite([v for v in recent if v is not None])
    report.n_held_out = int(held_scores.size)
    unscored = sum(v is None for v in held_out + recent)
    if unscored and not score_missing and model.artifact_path is not None:
        report.reasons.append(f"{unscored} clips not scored yet were left out of the score comparison "
                              f"(`{core_command('score', '--machine', report.machine)}` scores them)")  # fmt: skip
    if model.artifact_path is None:
        report.reasons.append(f"scores not compared: the active model ({name_of(model, scope=False)}) "
                              "cannot score clips here")  # fmt: skip
    elif held_scores.size < MIN_CLIPS or recent_scores.size < MIN_CLIPS:
        report.reasons.append(f"scores not compared: {held_scores.size} scored normal clips held out from training "
                              f"and {recent_scores.size} scored recent clips (need {MIN_CLIPS} of each)")  # fmt: skip
    else:
        _compare_scores(report, held_scores, recent_scores)


def _conclude(report: DriftReport, n_retrainable: int) -> DriftReport:
    """Set the report's state from its statistics, with the reason or the advice that goes with it."""
    stats = (report.score_psi, report.score_ks_pvalue, report.level_psi, report.level_ks_pvalue)
    report.state = classify(*stats)
    if report.state == STABLE:
        report.reasons.append(stable_reason(*stats))
    elif report.state == RETRAIN:
        report.reasons.append(f"{RETRAIN_ADVICE}: {n_retrainable} of the {report.n_recent} recent clips so far")
    return report


def _not_enough(report: DriftReport, n_reference: int, n_recent: int) -> DriftReport:
    report.state, report.n_reference, report.n_recent = NOT_ENOUGH_DATA, n_reference, n_recent
    if n_recent < MIN_CLIPS:
        report.reasons.append(f"only {n_recent} recent clips outside the training set (need {MIN_CLIPS}): "
                              f"ingest newer recordings of {report.machine}")  # fmt: skip
    if n_reference < MIN_CLIPS:
        report.reasons.append(f"only {n_reference} training clips to compare with (need {MIN_CLIPS})")
    return report


_REFERENCE_CACHE: OrderedDict[tuple, dict[int, np.ndarray]] = OrderedDict()
_REFERENCE_LOCK = threading.Lock()


def _reference_levels(model_id: int, clips: list[Clip], n_jobs: int | None) -> dict[int, np.ndarray]:
    """``{clip_id: clip_levels}`` of the readable ``clips`` (a model's reference set), each file read once
    per model and reference set: the levels are kept for the ``REFERENCE_CACHE_SIZE`` sets used last
    (keyed by model id and the clips' ids and paths: ids restart in every database).  Unreadable clips
    are absent, and tried again next time."""
    key = (model_id, tuple((c.id, c.path) for c in clips))
    with _REFERENCE_LOCK:
        cached = _REFERENCE_CACHE.setdefault(key, {})
        _REFERENCE_CACHE.move_to_end(key)
        while len(_REFERENCE_CACHE) > REFERENCE_CACHE_SIZE:
            _REFERENCE_CACHE.popitem(last=False)
        missing = [c for c in clips if c.id not in cached]
    if missing:
        batch = extract_features(list(dict.fromkeys(c.path for c in missing)), LEVEL_PARAMS, n_jobs=n_jobs,
                                 opener=open_clip)  # fmt: skip
        read = {c.id: clip_levels(batch.features[c.path]) for c in missing if c.path in batch.features}
        with _REFERENCE_LOCK:
            cached.update(read)
    return {c.id: cached[c.id] for c in clips if c.id in cached}


def _scores(
    model: DetectorModel, machine_pk: int, clips: list[Clip], url, n_jobs, score_missing: bool
) -> tuple[dict[int, float], set[str]]:
    """The active model's scores of ``clips`` (``{clip_id: score}``), scoring the machine's unscored clips
    first when some lack one and ``score_missing``, and the paths it could not read."""
    ids = [c.id for c in clips]
    with session_scope(url) as session:
        scores = clip_scores(session, model.id, ids)
    if not score_missing or model.artifact_path is None or len(scores) == len(set(ids)):
        return scores, set()
    failed = {item["path"] for item in score_with_model(model, [machine_pk], url=url, n_jobs=n_jobs).failed}
    with session_scope(url) as session:
        return clip_scores(session, model.id, ids), failed


def drift_reports(
    machine_spec: str | None = None,
    *,
    recent: int = 50,
    url: str | None = None,
    max_reference: int = 200,
    n_jobs: int | None = None,
) -> list[DriftReport]:
    """A :func:`drift_report` for every machine matching ``machine_spec`` (``type/id``, ``type`` or all),
    by machine key.  Raises ``BadInputError`` when a given spec matches no machine."""
    with session_scope(url) as session:
        keys = [m.key for m in machines_named(session, machine_spec)]
    return [drift_report(k, recent=recent, url=url, max_reference=max_reference, n_jobs=n_jobs) for k in keys]


def drift_cache_key(machine: str, *, url: str | None = None) -> tuple[str, int | None]:
    """``(machine, id of its active model)``: what a cache of :func:`drift_report` is keyed on, beside a
    time limit.  Deliberately not the clip or verdict counts: every ingest or verdict would then recompute
    it (a new model is a new reference, so it must)."""
    with session_scope(url) as session:
        found = machine_by_key(session, machine)
        return (machine, found.active_model_id if found else None)
