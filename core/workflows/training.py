"""Training detectors on the normal clips of the training split plus the field clips pilots confirmed
normal, one model per machine (or per machine type), stored as a new model version with its provenance."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.signal.batch import extract_features
from core.detection.registry import DEFAULT_DETECTOR, SUPERVISED, detector_class
from core.errors import BadInputError, Reason
from core.signal.features import FeatureParams
from core.workflows.model_store import staged_artifact
from core.workflows.scoring import wrong_sample_rate
from core.detection.thresholds import DEFAULT_QUANTILE, gamma_threshold
from db.models import Clip, DetectorModel, Machine
from db.queries import (
    add_threshold,
    field_clips_confirmed_normal,
    machine_by_key,
    machines_matching,
    models_for,
    next_model_version,
    training_clips,
)
from db.session import session_scope

MIN_TRAINING_CLIPS = 3
Report = Callable[[str], None]


@dataclass(frozen=True)
class TrainedModel:
    model_id: int
    detector: str
    scope: str
    version: int
    n_train: int
    seconds: float
    threshold: float
    n_from_verdicts: int = 0  # of n_train: field clips whose standing pilot verdict is normal


@dataclass
class TrainingReport:
    trained: list[TrainedModel] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"scope", "reason"}
    left_out: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason", "detail"}: clips not used


def one_sample_rate(clips: list) -> tuple[int | None, list, list]:
    """Split clips into those at the most common sample rate (ties: the higher rate) and the others.

    Features depend on the sample rate (mel bands span 0..sr/2, a hop is 512 samples), so
    one model only ever sees, and later scores, clips of one rate.  Returns
    ``(rate, same, others)``; ``rate`` is ``None`` for no clips.
    """
    rates = Counter(clip.sample_rate for clip in clips)
    if not rates:
        return None, [], []
    rate = max(rates, key=lambda r: (rates[r], r))
    return rate, [c for c in clips if c.sample_rate == rate], [c for c in clips if c.sample_rate != rate]


def clips_to_learn(session: Session, machine_pks: list[int]) -> tuple[list[Clip], set[int]]:
    """What a detector of these machines learns normal from, by id: the normal clips of the training
    split plus the field clips pilots confirmed normal; and the ids of the latter."""
    confirmed = field_clips_confirmed_normal(session, machine_pks)
    clips = sorted(training_clips(session, machine_pks) + confirmed, key=lambda clip: clip.id)
    return clips, {clip.id for clip in confirmed}


def training_scopes(machines: list[Machine], per_type: bool) -> dict[str, list[Machine]]:
    """Group machines by what one model covers: each machine (``type/id``), or each ``type``."""
    scopes: dict[str, list[Machine]] = {}
    for machine in machines:
        scopes.setdefault(machine.machine_type if per_type else machine.key, []).append(machine)
    return scopes


def _params(detector: str, epochs: int | None) -> dict:
    cls = detector_class(detector)
    return {"epochs": epochs} if epochs is not None and "epochs" in cls.default_params() else {}


def train(
    machine: str | None = None,
    detector: str = DEFAULT_DETECTOR,
    *,
    per_type: bool = False,
    epochs: int | None = None,
    url: str | None = None,
    user: str = "system",
    log: Report | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TrainingReport:
    """Train ``detector`` for each machine matching ``machine`` (``type/id``, ``type`` or all).

    Used: the normal clips of the training split, plus the field clips (split ``none``, label
    ``unknown``: what ``watch`` ingests) whose standing pilot verdict is ``normal``, so that a model
    retrained after drift learns the new sound the pilots confirmed.  Never a clip of the test split,
    an abnormal clip or an unjudged one.  Each model is saved under
    ``DATA_DIR/models``, registered as a new version with its provenance, gets a first
    threshold from a gamma fit to its training scores (quantile 0.9), and becomes the
    machine's active model when it has none or when it is a newer version of the
    active detector (a user's choice of another detector is kept).
    """
    detector_class(detector)  # fail fast on an unknown name
    if detector in SUPERVISED:
        raise BadInputError(
            Reason.INVALID_PARAMETER,
            f"{detector} learns from labelled images: export them (`python -m core export OUT`), "
            "then run `python -m core train-supervised`",
        )
    with session_scope(url) as session:
        machines = machines_matching(session, machine)
        if not machines:
            raise BadInputError(
                Reason.INVALID_PARAMETER, f"no machine matches {machine!r}" if machine else "no machines"
            )
        machine_pks = {scope: [m.id for m in group] for scope, group in training_scopes(machines, per_type).items()}
        scopes, from_verdicts = {}, set()
        for scope, pks in machine_pks.items():
            scopes[scope], confirmed = clips_to_learn(session, pks)
            from_verdicts |= confirmed
    report = TrainingReport()
    for index, (scope, all_clips) in enumerate(scopes.items()):
        rate, clips, others = one_sample_rate(all_clips)
        if others:
            report.left_out += [wrong_sample_rate(clip, rate, f"the {scope} model") for clip in others]
            if log:
                log(
                    f"{scope}: left out {len(others)} training clip(s) not at {rate} Hz, e.g. "
                    f"{others[0].path} ({others[0].sample_rate} Hz)"
                )

        def scope_progress(done: int, total: int, index: int = index) -> None:  # one bar across all scopes
            if progress:
                progress(index * total + done, len(scopes) * total)

        if len(clips) < MIN_TRAINING_CLIPS:
            reason = f"{len(clips)} normal training clips; at least {MIN_TRAINING_CLIPS} are needed"
            report.skipped.append({"scope": scope, "reason": reason})
            if log:
                log(f"skipped {scope}: {reason}")
            continue
        try:
            trained = _train_scope(
                scope,
                clips,
                machine_pks[scope],
                detector,
                _params(detector, epochs),
                url,
                user,
                scope_progress,
                rate,
                from_verdicts,
            )
        except BadInputError as exc:  # one machine's unusable data never stops the others
            report.skipped.append({"scope": scope, "reason": exc.detail})
            if log:
                log(f"skipped {scope}: {exc.detail}")
            continue
        report.trained.append(trained)
        if log:
            confirmed = (
                f" ({trained.n_from_verdicts} of them field clips pilots confirmed normal)"
                if trained.n_from_verdicts
                else ""
            )
            log(
                f"trained {detector} v{trained.version} for {scope} on {trained.n_train} clips{confirmed} "
                f"in {trained.seconds:.1f} s; threshold {trained.threshold:.4g}"
            )
    return report


def _train_scope(
    scope, clips, machine_pks, detector, params, url, user, progress, sample_rate, from_verdicts
) -> TrainedModel:
    feature_params = FeatureParams()
    batch = extract_features([clip.path for clip in clips], feature_params)
    usable = [clip for clip in clips if clip.path in batch.features]
    if len(usable) < MIN_TRAINING_CLIPS:
        first = min(batch.failures.items())
        raise BadInputError(
            Reason.INVALID_PARAMETER,
            f"only {len(usable)} readable normal training clips; at least {MIN_TRAINING_CLIPS} are needed "
            f"({len(batch.failures)} unreadable, e.g. {first[1]})",
        )
    started = time.perf_counter()
    model = detector_class(detector)(feature_params, **params).fit(
        [batch.features[clip.path] for clip in usable], progress=progress
    )
    seconds = time.perf_counter() - started
    threshold = gamma_threshold(model.decision_scores_, DEFAULT_QUANTILE)
    provenance = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_seconds": round(seconds, 3),
        "trained_by": user,
        "clip_ids": [clip.id for clip in usable],
        "unreadable": {path: str(error) for path, error in batch.failures.items()},
        "n_train": len(usable),
        "n_from_verdicts": sum(clip.id in from_verdicts for clip in usable),  # field clips pilots confirmed normal
        "sample_rate": sample_rate,
    }
    # The files are complete before the row exists: written to a staging folder first (outside the write
    # lock), renamed into place in the transaction that registers them.  A run killed at any point leaves no
    # row without its complete folder (a folder without a row, killed before the commit, is replaced next time).
    save = partial(model.save, provenance=provenance)
    with staged_artifact(detector, scope, save) as publish, session_scope(url, write=True) as session:
        version = next_model_version(session, detector, scope)
        folder = publish(version)
        row = DetectorModel(
            detector=detector, scope=scope, version=version, artifact_path=str(folder),
            params={"detector": model.params, "features": feature_params.as_dict(), "sample_rate": sample_rate},
            provenance=provenance,
        )  # fmt: skip
        session.add(row)
        session.flush()
        add_threshold(
            session, row.id, threshold, method="gamma", set_by="system",
            reason=f"gamma fit to {len(usable)} normal training scores, quantile {DEFAULT_QUANTILE}",
        )  # fmt: skip
        activate_if_current(session, machine_pks, row)
        return TrainedModel(
            row.id, detector, scope, version, len(usable), seconds, threshold, provenance["n_from_verdicts"]
        )


def activate_if_current(session: Session, machine_pks: list[int], model: DetectorModel) -> None:
    """Make ``model`` active on machines with no active model or an older version of its detector."""
    for machine in session.scalars(select(Machine).where(Machine.id.in_(machine_pks))):
        current = machine.active_model
        if current is None or current.detector == model.detector:
            machine.active_model_id = model.id


def activate(spec: str, *, detector: str | None = None, model_id: int | None = None, url: str | None = None) -> int:
    """Make a model active for machine ``spec`` (``type/id``): a given ``model_id``, or the newest
    version of ``detector`` trained for the machine or its type.  Returns the model id."""
    with session_scope(url, write=True) as session:
        machine = machine_by_key(session, spec)
        if machine is None:
            raise BadInputError(Reason.INVALID_PARAMETER, f"no machine {spec!r} (give it as type/id)")
        candidates = [
            m for m in models_for(session, machine) if (model_id is None or m.id == model_id)
            and (detector is None or m.detector == detector) and m.artifact_path
        ]  # fmt: skip
        if not candidates:
            wanted = f"model {model_id}" if model_id is not None else f"a {detector} model"
            raise BadInputError(Reason.INVALID_PARAMETER, f"{spec} has no {wanted} that can score here: train it first")
        machine.active_model_id = candidates[0].id
        return candidates[0].id


def active_model_id(spec: str, *, url: str | None = None) -> int | None:
    """The id of machine ``spec``'s active model, if it has one."""
    with session_scope(url) as session:
        machine = machine_by_key(session, spec)
        return machine.active_model_id if machine else None
