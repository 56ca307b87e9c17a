"""Training detectors on the normal clips of the training split plus the field clips the team labelled
normal (under ``TRAIN_FROM_VERDICTS=trusted``, the default, only trusted labels: two annotators agree, an
adjudication, or one verdict by an engineer or higher), one model per machine (or per machine type), stored
as a new model version with its provenance: what it took, what it left out and why.  The field clips left
out for want of a second opinion are offered to the review queue."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access import Action, Actor, on_behalf_of, require, worker_name
from core.detection.base import FrontEnd, check_front_end
from core.detection.ensemble import fit_detector
from core.detection.pooling import POOLINGS, check_pooling
from core.detection.registry import AUTO, CHOSEN_ONLY, DEFAULT_DETECTOR, SUPERVISED, TAKES, detector_class
from core.detection.selection import MAX_FAULT_CLIPS, MAX_OTHER_CLIPS, choose_detector, name_of
from core.detection.thresholds import DEFAULT_QUANTILE, gamma_threshold, prediction_threshold
from core.errors import BadInputError, NoModelError, Reason
from core.settings import TrainFrom, settings
from core.signal.batch import FeatureBatch, extract_features
from core.signal.features import FeatureParams
from core.vocabulary import Engine, LabelSource
from core.workflows.audit import record_event
from core.workflows.catalogue import machine_named, machines_named
from core.workflows.clip_store import open_clip
from core.workflows.labels import NotLearned, is_confirmed_fault, labels_for_machines, why_not_learned
from core.workflows.model_store import staged_artifact
from core.workflows.scoring import ScoreReport, score_with_model, wrong_sample_rate
from db.models import Clip, DetectorModel, Machine
from db.queries import (
    add_threshold,
    clips_outside_test,
    machine_by_key,
    machines_matching,
    models_for,
    next_model_version,
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
    n_from_verdicts: int = 0  # of n_train: clips the team labelled normal (verdicts or an adjudication)
    left_out: dict[str, int] = field(default_factory=dict)  # {NotLearned reason: clips} of the judged candidates
    awaiting_second_opinion: int = 0  # field clips one annotator called normal: offered to the review queue
    choice: str = ""  # with `--detector auto`: the choice and its evidence in words
    front_end: str | None = None  # what the detector reads (log_mel, pcen); None for one without a front end


@dataclass(frozen=True)
class LearningPlan:
    """What one detector learns normal from, under the label policy (:func:`clips_to_learn`).

    Attributes
    ----------
    clips : list of Clip
        The clips it learns from, by id.
    from_verdicts : dict of int to str
        Of those, the ones the team's word labels: ``{clip_id: label quality}`` (single, double, adjudicated).
    left_out : dict of str to list of int
        The candidates (outside the test split) left out, by :class:`~core.workflows.labels.NotLearned` reason,
        except the unjudged clips outside the training split (every field clip nobody judged).
    train_from : TrainFrom
    """

    clips: list[Clip]
    from_verdicts: dict[int, str]
    left_out: dict[str, list[int]]
    train_from: TrainFrom
    siblings: list[list[Clip]] = field(default_factory=list)  # per other machine of the type: its training clips
    faults: list[Clip] = field(default_factory=list)  # trusted abnormal clips outside the test split


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


def clips_to_learn(session: Session, machine_pks: list[int], train_from: TrainFrom | None = None) -> LearningPlan:
    """What a detector of these machines learns normal from, under the label policy's training rule
    (:func:`core.workflows.labels.why_not_learned`, ``train_from`` defaulting to ``TRAIN_FROM_VERDICTS``): the
    normal clips of the training split that no verdict contradicts, plus the field clips the team labelled
    normal (trusted labels only, by default); and what it leaves out, and why; and the confirmed faults the
    automatic choice weighs (:func:`core.workflows.labels.is_confirmed_fault`)."""
    train_from = TrainFrom(train_from or settings().train_from_verdicts)
    candidates = clips_outside_test(session, machine_pks)
    labels = labels_for_machines(session, candidates, machine_pks)
    clips, left_out, faults = [], {}, []
    for clip in candidates:
        why = why_not_learned(labels[clip.id], train_from)
        if why is None:
            clips.append(clip)
        elif why is not NotLearned.NOT_JUDGED or clip.split != "none":
            left_out.setdefault(why.value, []).append(clip.id)
        if is_confirmed_fault(labels[clip.id], train_from):
            faults.append(clip)
    from_verdicts = {c.id: labels[c.id].quality.value for c in clips
                     if labels[c.id].source is not LabelSource.GROUND_TRUTH}  # fmt: skip
    return LearningPlan(clips, from_verdicts, left_out, train_from, faults=faults)


def training_scopes(machines: list[Machine], per_type: bool) -> dict[str, list[Machine]]:
    """Group machines by what one model covers: each machine (``type/id``), or each ``type``."""
    scopes: dict[str, list[Machine]] = {}
    for machine in machines:
        scopes.setdefault(machine.machine_type if per_type else machine.key, []).append(machine)
    return scopes


def _params(detector: str, epochs: int | None, pooling: str | None = None, front_end: str | None = None) -> dict:
    """The hyper-parameters asked for: ``epochs`` for a detector trained in epochs (ignored by the others), a score
    ``pooling`` and a ``front_end`` for the detectors that take them (refused by the others, naming who does); all
    refused with ``auto``, whose candidates train with their own settings (so a setting that would change nothing
    is not taken silently); a detector that is not trained by this name (ensemble, a supervised one) is refused."""
    _check_unsupervised(detector)
    asked = {k: v for k, v in {"epochs": epochs, "pooling": pooling, "front_end": front_end}.items() if v is not None}
    if detector == AUTO:
        if asked:
            raise BadInputError(Reason.INVALID_PARAMETER, f"{', '.join(asked)}: the automatic choice trains each "
                                "candidate with its own settings; name a detector (e.g. --detector autoencoder) to "
                                "set them")  # fmt: skip
        return {}
    for option, check in (("pooling", check_pooling), ("front_end", check_front_end)):
        if option in asked and detector not in TAKES[option]:  # refused without importing every detector
            raise BadInputError(Reason.INVALID_PARAMETER, f"{option}: {detector} takes none; "
                                f"{', '.join(TAKES[option])} do")  # fmt: skip
        if option in asked:
            check(asked[option])
    cls = detector_class(detector)
    taken = cls.default_params()
    if "pooling" in asked and cls.poolings != POOLINGS and asked["pooling"] not in cls.poolings:  # its own few
        raise BadInputError(Reason.INVALID_PARAMETER, f"pooling: {detector} takes {' or '.join(cls.poolings)}, "
                            f"got {asked['pooling']!r}")  # fmt: skip
    return {k: v for k, v in asked.items() if k in taken}


def train_settings(detector: str) -> dict[str, list[str]]:
    """The settings :func:`train` takes for ``detector`` beyond its name, each with its choices, the detector's
    default first: ``{"front_end": ["log_mel", "pcen"], "pooling": ["top10", "mean", "max"]}`` for frame k-NN;
    ``{}`` for ``auto`` (its candidates bring their own) and for a detector that takes neither."""
    if detector == AUTO:
        return {}
    cls = detector_class(detector)
    taken, out = cls.default_params(), {}
    for option, choices in (("front_end", [str(f) for f in FrontEnd]), ("pooling", list(cls.poolings))):
        if option in taken:
            out[option] = [taken[option], *(c for c in choices if c != taken[option])]
    return out


@dataclass(frozen=True)
class _Run:
    """What every scope of one :func:`train` call shares."""

    detector: str
    params: dict
    url: str | None
    user: str
    log: Report
    progress: Callable[[int, int], None] | None
    n_scopes: int
    actor: Actor
    features: Callable[[list[str], FeatureParams], FeatureBatch] = extract_features  # on the chosen engine

    def scope_progress(self, index: int) -> Callable[[int, int], None]:
        """Progress of scope ``index`` on one bar across all scopes."""

        def update(done: int, total: int) -> None:
            if self.progress:
                self.progress(index * total + done, self.n_scopes * total)

        return update


def train(
    machine: str | None = None,
    detector: str = DEFAULT_DETECTOR,
    *,
    per_type: bool = False,
    epochs: int | None = None,
    pooling: str | None = None,
    front_end: str | None = None,
    url: str | None = None,
    user: str = "system",
    log: Report | None = None,
    progress: Callable[[int, int], None] | None = None,
    actor: Actor | None = None,
    engine: Engine = Engine.PROCESS,
    address: str | None = None,
) -> TrainingReport:
    """Train ``detector`` for each machine matching ``machine`` (``type/id``, ``type`` or all), the features
    extracted on ``engine`` (Ray: a local instance or the cluster at ``address``), the model fitted here;
    ``epochs``, ``pooling`` and ``front_end`` set those hyper-parameters of a named detector (see :func:`_params`).
    ``actor`` (default: the CLI's operator) needs the engineer role; a signed-in actor is recorded as
    the trainer (``user`` names it for the operator).

    Used: what the label policy lets a detector learn as normal (:func:`clips_to_learn`): the normal
    clips of the training split and the field clips the team labelled normal (by default only trusted
    labels: ``TRAIN_FROM_VERDICTS``), so that a model retrained after drift learns the new sound the pilots
    confirmed.  Never a clip of the test split, a disputed, abnormal or unjudged one.  What it left out, and
    why, is logged and kept in the provenance; the field clips awaiting a second opinion are offered to the
    review queue (:func:`core.workflows.review.review_queue` with ``second_opinions``).  Each model is saved
    under ``DATA_DIR/models``, registered as a new version with its provenance, gets a first threshold from
    a gamma fit to its training scores (quantile 0.9; with ``auto``, a prediction bound of held-out scores),
    and becomes the machine's active model when it has none or when it is a newer version of the active detector
    (a user's choice of another detector is kept).
    """
    actor = require(actor, Action.TRAIN)
    user = worker_name(actor, user)
    params = _params(detector, epochs, pooling, front_end)  # before any data is read: a refusal costs nothing
    plans, machine_pks = _training_plan(machine, per_type, url, siblings=detector in LEARN_FROM_SIBLINGS)
    run = _Run(detector, params, url, user, log or (lambda _line: None), progress, len(plans),
               on_behalf_of(actor, user), _feature_engine(engine, address))  # fmt: skip
    report = TrainingReport()
    for index, (scope, plan) in enumerate(plans.items()):
        if plan.left_out:
            run.log(f"{scope}: {describe_left_out(plan)}")
        rate, clips, others = one_sample_rate(plan.clips)
        if others:
            report.left_out += [wrong_sample_rate(clip, rate, f"the {scope} model") for clip in others]
            run.log(f"{scope}: left out {len(others)} training clip(s) not at {rate} Hz, e.g. "
                    f"{others[0].path} ({others[0].sample_rate} Hz)")  # fmt: skip
        try:
            if len(clips) < MIN_TRAINING_CLIPS:
                raise BadInputError(Reason.INVALID_PARAMETER, f"{len(clips)} normal training clips; at least "
                                    f"{MIN_TRAINING_CLIPS} are needed")  # fmt: skip
            trained = _train_scope(run, scope, clips, machine_pks[scope], rate, plan, run.scope_progress(index))
        except BadInputError as exc:  # one machine's unusable data never stops the others
            report.skipped.append({"scope": scope, "reason": exc.detail})
            run.log(f"skipped {scope}: {exc.detail}")
            continue
        report.trained.append(trained)
        _log_trained(run, scope, trained)
    return report


def _log_trained(run: _Run, scope: str, trained: TrainedModel) -> None:
    """One line (two with an automatic choice) saying what was trained, on what, how fast, at which threshold."""
    confirmed = f" ({trained.n_from_verdicts} of them labelled normal by the team)" if trained.n_from_verdicts else ""
    if trained.choice:
        run.log(f"{scope}: automatic choice: {trained.choice}")
    run.log(f"trained {trained.detector} v{trained.version} for {scope} on {trained.n_train} clips{confirmed} "
            f"in {trained.seconds:.1f} s; threshold {trained.threshold:.4g}")  # fmt: skip


@dataclass(frozen=True)
class MachineTraining:
    """What :func:`train_and_score` did for one machine.

    Attributes
    ----------
    report : TrainingReport
        The training (its ``trained`` is empty when the machine was skipped, with the reason in ``skipped``).
    scored : ScoreReport
        The new model scoring the machine's clips.
    queue_scored : ScoreReport
        The machine's active model scoring what it had not scored yet (the triage queue), when it is another model.
    active_model_id : int or None
        The machine's active model afterwards.
    """

    report: TrainingReport
    scored: ScoreReport
    queue_scored: ScoreReport
    active_model_id: int | None


def train_and_score(
    machine: str,
    detector: str = DEFAULT_DETECTOR,
    *,
    actor: Actor | None = None,
    user: str = "",
    url: str | None = None,
    log: Report | None = None,
    progress: Callable[[int, int], None] | None = None,
    scoring_progress: Callable[[int, int], None] | None = None,
    **settings: str,
) -> MachineTraining:
    """Train ``detector`` for the one machine ``machine`` (``type/id``) as :func:`train` does (``settings``: its
    ``pooling`` and ``front_end``, see :func:`train_settings`), then score its clips with the new model, and with its
    active model when that is another one, so a comparison and the triage queue have every score at once (a new
    machine's uploaded clips included).  ``actor`` needs the engineer role."""
    actor = require(actor, Action.TRAIN)
    with session_scope(url) as session:
        machine_named(session, machine)  # one machine: a bare type or an unknown name is refused here
    report = train(machine, detector, actor=actor, user=user or actor.name, url=url, log=log, progress=progress,
                   **settings)  # fmt: skip
    with session_scope(url) as session:
        found = machine_named(session, machine)
        new = session.get(DetectorModel, report.trained[0].model_id) if report.trained else None
        active, pks = found.active_model, [found.id]
    scored = score_with_model(new, pks, url=url, progress=scoring_progress) if new else ScoreReport()
    queue = ScoreReport()
    if active is not None and (new is None or active.id != new.id):
        queue = score_with_model(active, pks, url=url, progress=scoring_progress)
    return MachineTraining(report, scored, queue, active.id if active else None)


def _feature_engine(engine: Engine, address: str | None) -> Callable[[list[str], FeatureParams], FeatureBatch]:
    """``features(paths, params)`` on ``engine`` (``address``: the Ray cluster, only with the Ray engine)."""
    if Engine(engine) is Engine.PROCESS:
        if address:
            raise BadInputError(Reason.INVALID_PARAMETER, "--address needs --engine ray")
        return partial(extract_features, opener=open_clip)
    from core.workflows import ray_engine

    return partial(ray_engine.extract_features, address=address)


def _check_unsupervised(detector: str) -> None:
    if detector == AUTO:
        return
    detector_class(detector)  # fail fast on an unknown name
    if detector in CHOSEN_ONLY:
        raise BadInputError(Reason.INVALID_PARAMETER, f"{detector} is built by the automatic choice from the detectors "
                            "it ranks: train `--detector auto`")  # fmt: skip
    if detector in SUPERVISED:
        raise BadInputError(
            Reason.INVALID_PARAMETER,
            f"{detector} learns from labelled images: export them (`python -m core export OUT`), "
            "then run `python -m core train-supervised`",
        )


LEARN_FROM_SIBLINGS = frozenset({AUTO, "machine_id"})  # what learns from the type's other machines too


def _training_plan(
    machine: str | None, per_type: bool, url: str | None, *, siblings: bool = True
) -> tuple[dict[str, LearningPlan], dict[str, list[int]]]:
    """``(learning plan per scope, machine pks per scope)`` for :func:`train`; with ``siblings`` (the detectors that
    learn from them), each plan lists up to ``MAX_OTHER_CLIPS`` training clips of each other machine of its type."""
    with session_scope(url) as session:
        machines = machines_named(session, machine)
        if not machines:
            raise BadInputError(Reason.INVALID_PARAMETER, "no machines yet: ingest clips first")
        machine_pks = {scope: [m.id for m in group] for scope, group in training_scopes(machines, per_type).items()}
        plans = {scope: clips_to_learn(session, pks) for scope, pks in machine_pks.items()}
        for scope, plan in plans.items() if siblings else ():  # the other machines of each scope's type
            types = {m.machine_type for m in machines if m.id in machine_pks[scope]}
            others = [m for t in sorted(types) for m in machines_matching(session, t) if m.id not in machine_pks[scope]]
            plan.siblings.extend(clips_to_learn(session, [m.id]).clips[:MAX_OTHER_CLIPS] for m in others)
    return plans, machine_pks


def describe_left_out(plan: LearningPlan) -> str:
    """What a learning plan leaves out, and why, in words (for the training log)."""
    parts = [f"{len(ids)} {why}" for why, ids in sorted(plan.left_out.items(), key=lambda item: -len(item[1]))]
    text = f"left out {sum(len(ids) for ids in plan.left_out.values())} judged clip(s): {', '.join(parts)}"
    waiting = len(plan.left_out.get(NotLearned.SECOND_OPINION, []))
    if waiting:
        text += (f". {waiting} field clip(s) are one annotator's \"normal\", not trusted under TRAIN_FROM_VERDICTS="
                 f"{plan.train_from}: a second annotator's verdict or an adjudication lets them teach; they are "
                 "offered in the review queue (python -m core disputes --second-opinions)")  # fmt: skip
    return text


def _provenance(
    seconds: float, user: str, usable: list[Clip], failures: dict, plan: LearningPlan, sample_rate: int | None
) -> dict:
    """What a model records of its training: when, by whom, on which clips (and from whose word), which were
    unreadable, and which judged clips it left out and why."""
    taken = [plan.from_verdicts[clip.id] for clip in usable if clip.id in plan.from_verdicts]
    return {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_seconds": round(seconds, 3),
        "trained_by": user,
        "clip_ids": [clip.id for clip in usable],
        "unreadable": {path: str(error) for path, error in failures.items()},
        "n_train": len(usable),
        "n_from_verdicts": len(taken),  # clips the team labelled normal (verdicts or an adjudication)
        "from_verdicts": dict(Counter(taken)),  # {label quality: clips}: single, double, adjudicated
        "train_from_verdicts": plan.train_from.value,
        "left_out": {why: len(ids) for why, ids in plan.left_out.items()},  # {NotLearned reason: clips}
        "awaiting_second_opinion": plan.left_out.get(NotLearned.SECOND_OPINION, []),  # offered to the review queue
        "sample_rate": sample_rate,
    }


def _train_scope(
    run: _Run,
    scope: str,
    clips: list[Clip],
    machine_pks: list[int],
    sample_rate: int | None,
    plan: LearningPlan,
    progress: Callable[[int, int], None],
) -> TrainedModel:
    """Fit ``run.detector`` on ``clips`` and register it as the next version for ``scope``."""
    url, user = run.url, run.user
    feature_params = FeatureParams()
    batch = run.features([clip.path for clip in clips], feature_params)
    usable = [clip for clip in clips if clip.path in batch.features]
    if len(usable) < MIN_TRAINING_CLIPS:
        first = min(batch.failures.items())
        raise BadInputError(
            Reason.INVALID_PARAMETER,
            f"only {len(usable)} readable normal training clips; at least {MIN_TRAINING_CLIPS} are needed "
            f"({len(batch.failures)} unreadable, e.g. {first[1]})",
        )
    started = time.perf_counter()
    model, threshold, method, rule, choice = _fit(run, [batch.features[clip.path] for clip in usable], plan,
                                                  sample_rate, feature_params, progress)  # fmt: skip
    seconds = time.perf_counter() - started
    detector = model.name
    provenance = _provenance(seconds, user, usable, batch.failures, plan, sample_rate)
    if choice is not None:
        provenance["choice"] = choice
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
            session, row.id, threshold, method=method, set_by="system", reason=rule,
        )  # fmt: skip
        activate_if_current(session, machine_pks, row, chosen=choice is not None)
        record_event(session, run.actor, Action.TRAIN, scope, f"{name_of(row, scope=False)} on {len(usable)} clips "
                     f"(model {row.id}, threshold {threshold:.4g})")  # fmt: skip
        return TrainedModel(
            row.id, detector, scope, version, len(usable), seconds, threshold, provenance["n_from_verdicts"],
            provenance["left_out"], len(provenance["awaiting_second_opinion"]), (choice or {}).get("note", ""),
            row.front_end,
        )  # fmt: skip


def _features_at(run: _Run, clips: list[Clip], sample_rate: int | None, feature_params: FeatureParams) -> list:
    """The features of the readable ``clips`` at ``sample_rate`` (on the run's engine, read through the clip store
    as every clip is); the others are skipped."""
    paths = [clip.path for clip in clips if clip.sample_rate == sample_rate]
    features = run.features(paths, feature_params).features if paths else {}
    return [features[p] for p in paths if p in features]


def _sibling_features(run: _Run, plan: LearningPlan, sample_rate: int | None, feature_params: FeatureParams,
                      ) -> list[list]:  # fmt: skip
    """Per other machine of the type, the features of its readable training clips at ``sample_rate``."""
    out = [_features_at(run, clips, sample_rate, feature_params) for clips in plan.siblings]
    return [group for group in out if group]


def _fit(run: _Run, features: list, plan: LearningPlan, sample_rate: int | None, feature_params: FeatureParams,
         progress: Callable[[int, int], None]) -> tuple:  # fmt: skip
    """``(fitted detector, first threshold, its method, its reason, the choice's record or None)``.

    ``run.detector`` as asked, its threshold a gamma fit to its training scores; or, for ``auto``, the detector
    :func:`core.detection.selection.choose_detector` picks from the training clips (and the type's other machines',
    and the confirmed faults of the plan),
    its threshold the upper prediction bound (:func:`core.detection.thresholds.prediction_threshold`) of its
    scores of *held-out* normal training clips (cross-validation): a plug-in quantile of a few scores sits too
    low, the bound keeps about ``1 - DEFAULT_QUANTILE`` (10%) of new normal clips flagged before any verdict."""
    if run.detector != AUTO:
        others = _sibling_features(run, plan, sample_rate, feature_params) if plan.siblings else []
        model = fit_detector(detector_class(run.detector)(feature_params, **run.params), features, others,
                             progress=progress)  # fmt: skip
        return (
            model,
            gamma_threshold(model.decision_scores_, DEFAULT_QUANTILE),
            "gamma",
            (f"gamma fit to {len(features)} normal training scores, quantile {DEFAULT_QUANTILE}"),
            None,
        )
    others = _sibling_features(run, plan, sample_rate, feature_params)
    faults = _features_at(run, plan.faults[:MAX_FAULT_CLIPS], sample_rate, feature_params)
    choice = choose_detector(features, others, faults=faults, params=feature_params, progress=progress)
    model = fit_detector(detector_class(choice.detector)(feature_params, **choice.params), features, others)
    held_out = choice.held_out_normal if len(choice.held_out_normal) >= 2 else model.decision_scores_
    which = "held-out (cross-validated)" if len(choice.held_out_normal) >= 2 else "training"
    reason = (f"upper {DEFAULT_QUANTILE} prediction bound (Student t, log scores when positive) of {len(held_out)} "
              f"{which} normal scores (automatic choice)")  # fmt: skip
    return model, prediction_threshold(held_out, DEFAULT_QUANTILE), "prediction_bound", reason, choice.as_dict()


def activate_if_current(
    session: Session, machine_pks: list[int], model: DetectorModel, *, chosen: bool = False
) -> None:
    """Make ``model`` active on machines with no active model or an older version of its detector (with the same
    front end and pooling: a PCEN model trained by hand does not replace the active log-mel one); a ``chosen``
    model (``train --detector auto``) also replaces an earlier automatic choice, whichever detector that was."""
    for machine in session.scalars(select(Machine).where(Machine.id.in_(machine_pks))):
        current = machine.active_model
        if current is None or _same_kind(current, model) or (chosen and "choice" in (current.provenance or {})):
            machine.active_model_id = model.id


def _same_kind(a: DetectorModel, b: DetectorModel) -> bool:
    """Whether ``b`` is a new version of ``a``'s kind: the same detector, front end (none saved: log-mel) and
    pooling (compared where both saved one)."""
    pooling = [m.hyper_parameters.get("pooling") for m in (a, b)]
    return (a.detector == b.detector and (a.front_end or FrontEnd.LOG_MEL) == (b.front_end or FrontEnd.LOG_MEL)
            and (None in pooling or pooling[0] == pooling[1]))  # fmt: skip


def activate(
    spec: str,
    *,
    detector: str | None = None,
    model_id: int | None = None,
    actor: Actor | None = None,
    url: str | None = None,
) -> int:
    """Make a model active for machine ``spec`` (``type/id``): a given ``model_id``, or the newest
    version of ``detector`` trained for the machine or its type.  Returns the model id.

    ``actor`` (default: the CLI's operator) needs the manager role."""
    actor = require(actor, Action.ACTIVATE_MODEL)
    with session_scope(url, write=True) as session:
        machine = machine_named(session, spec)
        candidates = [
            m for m in models_for(session, machine) if (model_id is None or m.id == model_id)
            and (detector is None or m.detector == detector) and m.artifact_path
        ]  # fmt: skip
        if not candidates:
            wanted = f"model {model_id}" if model_id is not None else f"a {detector} model"
            raise NoModelError(f"{spec} has no {wanted} that can score here: train it first")
        machine.active_model_id = candidates[0].id
        chosen = candidates[0]
        record_event(session, actor, Action.ACTIVATE_MODEL, spec,
                     f"model {chosen.id}: {name_of(chosen)}")  # fmt: skip
        return chosen.id


def active_model_id(spec: str, *, url: str | None = None) -> int | None:
    """The id of machine ``spec``'s active model, if it has one."""
    with session_scope(url) as session:
        machine = machine_by_key(session, spec)
        return machine.active_model_id if machine else None
