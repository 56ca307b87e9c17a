"""Queries the rest of the product uses; pages and commands never write SQL themselves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, and_, case, delete, exists, func, literal, or_, select, union, update
from sqlalchemy.orm import Session, aliased, selectinload

from core.vocabulary import CLASSES, JobState, Label, Split
from db.frames import join_details, split_details
from db.models import (
    Adjudication,
    Annotation,
    AnomalyType,
    AuditEvent,
    Clip,
    DetectorModel,
    Export,
    FailedSignIn,
    Machine,
    Notification,
    RejectedFile,
    Score,
    Threshold,
    TrainingJob,
    User,
    utcnow,
)

ALL_MACHINES_SCOPE = "*"  # scope of a model trained across machine types (supervised models on an export)


def get_or_create_machine(session: Session, machine_type: str, machine_id: str) -> Machine:
    """The machine ``machine_type/machine_id``, created if new."""
    machine = session.scalar(
        select(Machine).where(Machine.machine_type == machine_type, Machine.machine_id == machine_id)
    )
    if machine is None:
        machine = Machine(machine_type=machine_type, machine_id=machine_id)
        session.add(machine)
        session.flush()
    return machine


def known_hashes(session: Session, hashes: list[str]) -> set[str]:
    """Those of ``hashes`` already registered as clips."""
    if not hashes:
        return set()
    return set(session.scalars(select(Clip.content_hash).where(Clip.content_hash.in_(hashes))))


def clip_by_path(session: Session, path: str) -> Clip | None:
    """The clip registered under this (resolved) path, the newest when several were."""
    return session.scalars(select(Clip).where(Clip.path == path).order_by(Clip.id.desc()).limit(1)).first()


def clip_by_hash(session: Session, content_hash: str) -> Clip | None:
    return session.scalar(select(Clip).where(Clip.content_hash == content_hash))


def record_rejection(session: Session, path: str, reason: str, detail: str) -> None:
    session.add(RejectedFile(path=path, reason=reason, detail=detail))


@dataclass(frozen=True)
class ClipCount:
    machine_type: str
    machine_id: str
    label: str
    split: str
    n_clips: int


def clip_counts(session: Session) -> list[ClipCount]:
    """Clips per machine type, machine id, label and split, sorted."""
    rows = session.execute(
        select(Machine.machine_type, Machine.machine_id, Clip.label, Clip.split, func.count(Clip.id))
        .join(Clip.machine)
        .group_by(Machine.machine_type, Machine.machine_id, Clip.label, Clip.split)
        .order_by(Machine.machine_type, Machine.machine_id, Clip.label, Clip.split)
    )
    return [ClipCount(*row) for row in rows]


def count_clips(session: Session) -> int:
    return session.scalar(select(func.count(Clip.id))) or 0


def recent_rejections(session: Session, limit: int = 50) -> list[RejectedFile]:
    """The latest rejected files, newest first."""
    return list(session.scalars(select(RejectedFile).order_by(RejectedFile.id.desc()).limit(limit)))


# --- machines and models -------------------------------------------------------------------------


def machines_matching(session: Session, spec: str | None = None, *, with_models: bool = False) -> list[Machine]:
    """Machines named by ``spec``: ``type/id``, a whole ``type``, or ``None`` for all; sorted by key.
    ``with_models`` loads their active models too, in one more query (not one per machine)."""
    query = select(Machine).order_by(Machine.machine_type, Machine.machine_id)
    if with_models:
        query = query.options(selectinload(Machine.active_model))
    if spec:
        machine_type, _, machine_id = spec.partition("/")
        query = query.where(Machine.machine_type == machine_type)
        if machine_id:
            query = query.where(Machine.machine_id == machine_id)
    return list(session.scalars(query))


def machine_by_key(session: Session, key: str) -> Machine | None:
    """The machine ``type/id``, or ``None`` (a bare type names no single machine)."""
    machine_type, _, machine_id = key.partition("/")
    if not machine_id:
        return None
    return session.scalar(select(Machine).where(Machine.machine_type == machine_type, Machine.machine_id == machine_id))


def training_clips(session: Session, machine_pks: list[int]) -> list[Clip]:
    """Normal clips of the training split of these machines, by id."""
    return list(
        session.scalars(
            select(Clip)
            .where(Clip.machine_pk.in_(machine_pks), Clip.label == Label.NORMAL, Clip.split == Split.TRAIN)
            .order_by(Clip.id)
        )
    )


def clips_outside_test(session: Session, machine_pks: list[int]) -> list[Clip]:
    """Clips of these machines in the training split or in none (field clips), by id."""
    query = select(Clip).where(Clip.machine_pk.in_(machine_pks), Clip.split != Split.TEST).order_by(Clip.id)
    return list(session.scalars(query))


def test_clips(session: Session, machine_pks: list[int]) -> list[Clip]:
    """Labelled (normal or abnormal) clips of the test split of these machines, by id."""
    return list(
        session.scalars(
            select(Clip)
            .where(Clip.machine_pk.in_(machine_pks), Clip.split == Split.TEST, Clip.label.in_(CLASSES))
            .order_by(Clip.id)
        )
    )


def test_clips_any_label(session: Session, machine_pks: list[int]) -> list[Clip]:
    """Every clip of the test split of these machines, labelled by the layout or not, by id."""
    query = select(Clip).where(Clip.machine_pk.in_(machine_pks), Clip.split == Split.TEST).order_by(Clip.id)
    return list(session.scalars(query))


def next_model_version(session: Session, detector: str, scope: str) -> int:
    latest = session.scalar(
        select(func.max(DetectorModel.version)).where(DetectorModel.detector == detector, DetectorModel.scope == scope)
    )
    return (latest or 0) + 1


def add_threshold(session: Session, model_id: int, value: float, *, method: str, set_by: str, reason: str) -> Threshold:
    """Record a threshold setting; the latest one of a model is active."""
    row = Threshold(model_id=model_id, value=float(value), method=method, set_by=set_by, reason=reason)
    session.add(row)
    session.flush()
    return row


def active_threshold(session: Session, model_id: int) -> Threshold | None:
    return session.scalar(
        select(Threshold).where(Threshold.model_id == model_id).order_by(Threshold.id.desc()).limit(1)
    )


def threshold_history(session: Session, model_id: int) -> list[Threshold]:
    """Every threshold set on a model, newest first."""
    return list(session.scalars(select(Threshold).where(Threshold.model_id == model_id).order_by(Threshold.id.desc())))


def models_for(session: Session, machine: Machine) -> list[DetectorModel]:
    """Models trained for this machine or its whole type, and cross-type models (scope ``*``) whose
    training covered it (``provenance["machines"]``), newest first."""
    scopes = (machine.key, machine.machine_type, ALL_MACHINES_SCOPE)
    query = select(DetectorModel).where(DetectorModel.scope.in_(scopes)).order_by(DetectorModel.id.desc())
    found = session.scalars(query)
    return [m for m in found if m.scope != ALL_MACHINES_SCOPE or machine.key in m.provenance.get("machines", [])]


# --- scores ----------------------------------------------------------------------------------------


def unscored_clips(session: Session, model_id: int, machine_pks: list[int]) -> list[Clip]:
    """Clips of these machines that ``model_id`` has not scored yet, by id."""
    scored = select(Score.clip_id).where(Score.model_id == model_id)
    return list(
        session.scalars(select(Clip).where(Clip.machine_pk.in_(machine_pks), Clip.id.not_in(scored)).order_by(Clip.id))
    )


def add_scores(
    session: Session, model_id: int, scores: dict[int, float], details: dict[int, dict] | None = None
) -> None:
    """Store ``{clip_id: score}`` (and per-clip ``details``) for a model; clips it scored already are left."""
    known = set(
        session.scalars(select(Score.clip_id).where(Score.model_id == model_id, Score.clip_id.in_(list(scores))))
    )
    rows = []
    for clip_id, value in scores.items():
        if clip_id not in known:
            frames, rest = split_details((details or {}).get(clip_id))
            row = Score(clip_id=clip_id, model_id=model_id, score=float(value), frames=frames)
            if rest is not None:  # otherwise SQL NULL, not JSON null
                row.details = rest
            rows.append(row)
    session.add_all(rows)


def machine_scores(session: Session, model_id: int, machine_pk: int) -> dict[int, float]:
    """``{clip_id: score}`` of a model for the clips of one machine (those it scored)."""
    rows = session.execute(
        select(Score.clip_id, Score.score).join(Clip, Clip.id == Score.clip_id)
        .where(Score.model_id == model_id, Clip.machine_pk == machine_pk)
    )  # fmt: skip
    return {clip_id: value for clip_id, value in rows}


def clip_scores(session: Session, model_id: int, clip_ids: list[int]) -> dict[int, float]:
    """``{clip_id: score}`` of a model for these clips (those it scored)."""
    rows = session.execute(
        select(Score.clip_id, Score.score).where(Score.model_id == model_id, Score.clip_id.in_(clip_ids))
    )
    return {clip_id: value for clip_id, value in rows}


# --- the triage queue, in SQL ------------------------------------------------------------------------


OVERLAP_HASH_MULTIPLIER = 2654435761  # Knuth's multiplicative hash: (id * this) mod 2**32 spreads ids evenly
OVERLAP_HASH_RANGE = 2**32


def overlap_hash(clip_id):
    """``(clip_id * OVERLAP_HASH_MULTIPLIER) mod 2**32``: of an int in Python, of a column in SQL (the same value
    on SQLite and PostgreSQL: 64-bit integers).  A clip is in the overlap sample when it is below
    :func:`overlap_cut`."""
    if isinstance(clip_id, int):
        return (clip_id * OVERLAP_HASH_MULTIPLIER) % OVERLAP_HASH_RANGE
    return (clip_id * literal(OVERLAP_HASH_MULTIPLIER, BigInteger)) % literal(OVERLAP_HASH_RANGE, BigInteger)


def overlap_cut(overlap_fraction: float) -> int:
    """The hash below which a clip needs two annotators: ``overlap_fraction`` of the hash range."""
    return int(min(max(overlap_fraction, 0.0), 1.0) * OVERLAP_HASH_RANGE)


def _standing_count(clip_id_column, annotator: str | None = None):
    """SQL: how many annotators (``annotator`` alone, if named) have a standing verdict on the clip: a row that
    is neither an undo row nor undone."""
    row, undo = aliased(Annotation), aliased(Annotation)
    query = select(func.count(func.distinct(row.annotator))).where(
        row.clip_id == clip_id_column, row.undoes_id.is_(None), ~exists().where(undo.undoes_id == row.id)
    )
    return (query.where(row.annotator == annotator) if annotator is not None else query).scalar_subquery()


QUEUE_SORTS = {
    "score": (Score.score.desc(), Clip.id),
    "margin": (Score.score, Clip.id),  # above the threshold: the lowest score is the closest
    "newest": (Clip.ingested_at.desc(), Clip.id.desc()),
}


def awaiting_verdict(
    model_id: int, machine_pk: int, threshold: float, overlap_fraction: float, annotator: str | None = None
):
    """SQL for the machine's clips its model scores above ``threshold`` that still await a verdict (the label
    policy's rule 8, :func:`core.workflows.labels.awaits_verdict`): no adjudication, fewer annotators with a
    standing verdict than the clip needs (two in the overlap sample, else one), none of them ``annotator``.
    Selects ``clip_id, path, score, label, ingested_at``; served by ``scores (model_id, score, clip_id)`` and
    ``clips (machine_pk, ingested_at, id)``; the adjudicated clips are a ``NOT IN`` list the database hashes once
    (few; a correlated ``NOT EXISTS`` made PostgreSQL scan them per flagged clip when it misjudged the rows)."""
    needed = case((overlap_hash(Clip.id) < overlap_cut(overlap_fraction), 2), else_=1)
    query = (
        select(Clip.id.label("clip_id"), Clip.path, Score.score, Clip.label, Clip.ingested_at)
        .join(Score, Score.clip_id == Clip.id)
        .where(Score.model_id == model_id, Clip.machine_pk == machine_pk, Score.score > threshold,
               Clip.id.not_in(select(Adjudication.clip_id)), _standing_count(Clip.id) < needed)
    )  # fmt: skip
    if annotator is not None:
        query = query.where(_standing_count(Clip.id, annotator) == 0)
    return query


def queue_page(session: Session, query, order: str, limit: int | None) -> list:
    """The rows of :func:`awaiting_verdict`'s ``query`` in ``order`` (``score``, ``margin``, ``newest``), at most
    ``limit`` (None: all), ordered and limited by the database."""
    query = query.order_by(*QUEUE_SORTS[order])
    return list(session.execute(query if limit is None else query.limit(limit)))


def queue_count(session: Session, query) -> int:
    """How many rows :func:`awaiting_verdict`'s ``query`` has, counted by the database."""
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def active_cuts(session: Session) -> dict[int, tuple[int, float]]:
    """``{machine_pk: (active model id, its active threshold)}`` of the machines whose active model has a threshold
    (the model's latest threshold row), in one query."""
    return {pk: (model_id, cut) for pk, model_id, cut in session.execute(select(_cuts()))}


def _cuts():
    """SQL: ``(machine_pk, model_id, cut)`` per machine whose active model has a threshold (its latest row)."""
    latest = select(Threshold.model_id, func.max(Threshold.id).label("id")).group_by(Threshold.model_id).subquery()
    return (
        select(Machine.id.label("machine_pk"), Machine.active_model_id.label("model_id"), Threshold.value.label("cut"))
        .join(latest, latest.c.model_id == Machine.active_model_id)
        .join(Threshold, Threshold.id == latest.c.id)
        .subquery()
    )


def judged_tallies(session: Session, overlap_fraction: float) -> dict[int, list[tuple]]:
    """Per machine, the clips someone judged or adjudicated or its active model flags, grouped by what the label
    policy reads of them: ``(clips, abnormal, normal, unsure, annotators, adjudicated, flagged, in overlap, last
    verdict at)``: how many clips share the tally of how many annotators' standing verdicts (their latest row
    that is neither an undo row nor undone) say each verdict, how many annotators stand, whether an adjudication
    exists, whether the machine's active model scores the clip above its active threshold, whether it is in the
    ``overlap_fraction`` sample (:func:`overlap_hash`), and the latest verdict row's time among them (an undo
    included; None if none).  One query over every machine, driven by the verdicts and the flagged scores
    (``scores (model_id, score, clip_id)``), never by the clips, each clip's machine read once from ``clips (id,
    machine_pk)``, and grouped by the database: what the Overview's counts are made of
    (:func:`core.workflows.triage.machine_summaries`)."""
    row, undo = aliased(Annotation), aliased(Annotation)
    latest = (
        select(func.max(row.id).label("id"))
        .where(row.undoes_id.is_(None), ~exists().where(undo.undoes_id == row.id))
        .group_by(row.clip_id, row.annotator)
        .subquery()
    )
    said = (
        select(Annotation.clip_id, *[func.sum(case((Annotation.verdict == v, 1), else_=0)).label(v)
                                     for v in ("abnormal", "normal", "unsure")], func.count().label("annotators"))
        .join(latest, latest.c.id == Annotation.id)
        .group_by(Annotation.clip_id)
        .subquery()
    )  # fmt: skip
    last_at = func.max(Annotation.created_at).label("at")
    acted = select(Annotation.clip_id, last_at).group_by(Annotation.clip_id).cte("acted")  # read twice: made once
    cuts = _cuts()
    flagged = (
        select(Score.clip_id, cuts.c.machine_pk)
        .join(cuts, and_(Score.model_id == cuts.c.model_id, Score.score > cuts.c.cut))
        .cte("flagged")
    )
    judged = union(select(acted.c.clip_id), select(Adjudication.clip_id), select(flagged.c.clip_id)).subquery()
    zero = literal(0)
    per_clip = (
        select(Clip.machine_pk, func.coalesce(said.c.abnormal, zero).label("abnormal"),
               func.coalesce(said.c.normal, zero).label("normal"), func.coalesce(said.c.unsure, zero).label("unsure"),
               func.coalesce(said.c.annotators, zero).label("annotators"),
               case((Clip.id.in_(select(Adjudication.clip_id)), 1), else_=0).label("adjudicated"),
               case((flagged.c.clip_id.is_not(None), 1), else_=0).label("flagged"),
               case((overlap_hash(Clip.id) < overlap_cut(overlap_fraction), 1), else_=0).label("overlap"),
               acted.c.at)
        .select_from(judged)
        .join(Clip, Clip.id == judged.c.clip_id)
        .outerjoin(said, said.c.clip_id == Clip.id)
        .outerjoin(acted, acted.c.clip_id == Clip.id)
        .outerjoin(flagged, and_(flagged.c.clip_id == Clip.id, flagged.c.machine_pk == Clip.machine_pk))
        .cte("per_clip")
        .prefix_with("MATERIALIZED")  # made as written, from the judged and flagged clips (not merged into the
    )  # fmt: skip                    # grouping, which SQLite would drive from a scan of every clip)
    keys = [per_clip.c[k] for k in ("abnormal", "normal", "unsure", "annotators", "adjudicated", "flagged", "overlap")]
    query = select(per_clip.c.machine_pk, func.count(), *keys, func.max(per_clip.c.at)).group_by(
        per_clip.c.machine_pk, *keys
    )
    out: dict[int, list[tuple]] = {}
    for machine_pk, *tally in session.execute(query):
        out.setdefault(machine_pk, []).append(tuple(tally))
    return out


def clip_counts_by_machine(session: Session) -> dict[int, tuple[int, datetime | None]]:
    """``{machine_pk: (clips, last ingested at)}`` of every machine, in one query read from ``clips (machine_pk,
    ingested_at, id)`` alone (a count and the index's last entry per machine)."""
    n_clips = select(func.count()).where(Clip.machine_pk == Machine.id).scalar_subquery()
    last_clip = select(func.max(Clip.ingested_at)).where(Clip.machine_pk == Machine.id).scalar_subquery()
    return {pk: (n or 0, last) for pk, n, last in session.execute(select(Machine.id, n_clips, last_clip))}


# --- verdicts --------------------------------------------------------------------------------------


def any_labelled_abnormal(session: Session, clip_ids: list[int]) -> bool:
    """Whether the layout labels any of these clips abnormal."""
    query = select(Clip.id).where(Clip.id.in_(clip_ids), Clip.label == Label.ABNORMAL).limit(1)
    return bool(clip_ids) and session.scalar(query) is not None


def clips_where(session: Session, machine_pks: list[int], *, split: str, label: str) -> list[Clip]:
    """The machines' clips of one split and layout label, by id."""
    query = select(Clip).where(Clip.machine_pk.in_(machine_pks), Clip.split == split, Clip.label == label)
    return list(session.scalars(query.order_by(Clip.id)))


def clip_ids_of(session: Session, machine_pks: list[int]) -> list[int]:
    """Ids of every clip of these machines."""
    return list(session.scalars(select(Clip.id).where(Clip.machine_pk.in_(machine_pks)).order_by(Clip.id)))


def clip_paths(session: Session, clip_ids: list[int]) -> dict[int, str]:
    return dict(session.execute(select(Clip.id, Clip.path).where(Clip.id.in_(clip_ids))).all())


def annotations_of_clips(session: Session, clip_ids: list[int]) -> list[Annotation]:
    """Every annotation row (undo rows included) of these clips, by id (:mod:`core.workflows.labels` reads them)."""
    if not clip_ids:
        return []
    return list(session.scalars(select(Annotation).where(Annotation.clip_id.in_(clip_ids)).order_by(Annotation.id)))


def annotations_of_machines(session: Session, machine_pks: list[int]) -> list[Annotation]:
    """Every annotation row (undo rows included) of these machines' clips, by id."""
    clip_ids = select(Clip.id).where(Clip.machine_pk.in_(machine_pks))
    return list(session.scalars(select(Annotation).where(Annotation.clip_id.in_(clip_ids)).order_by(Annotation.id)))


def add_annotation(
    session: Session,
    clip_id: int,
    annotator: str,
    verdict: str,
    anomaly_type: str | None = None,
    note: str = "",
    role: str | None = None,
) -> Annotation:
    """Append a verdict (``role``: the annotator's role when judging, None when not known)."""
    row = Annotation(clip_id=clip_id, annotator=annotator, verdict=verdict, anomaly_type=anomaly_type, note=note,
                     role=role)  # fmt: skip
    session.add(row)
    session.flush()
    return row


def adjudications_of_clips(session: Session, clip_ids: list[int]) -> list[Adjudication]:
    """Every adjudication of these clips, by id (the latest of a clip stands)."""
    if not clip_ids:
        return []
    query = select(Adjudication).where(Adjudication.clip_id.in_(clip_ids)).order_by(Adjudication.id)
    return list(session.scalars(query))


def adjudications_of_machines(session: Session, machine_pks: list[int]) -> list[Adjudication]:
    """Every adjudication of these machines' clips, by id."""
    clip_ids = select(Clip.id).where(Clip.machine_pk.in_(machine_pks))
    query = select(Adjudication).where(Adjudication.clip_id.in_(clip_ids)).order_by(Adjudication.id)
    return list(session.scalars(query))


def add_adjudication(
    session: Session,
    clip_id: int,
    adjudicator: str,
    role: str,
    verdict: str,
    reason: str,
    anomaly_type: str | None = None,
) -> Adjudication:
    """Append an adjudication (never updated: the latest of a clip stands)."""
    row = Adjudication(clip_id=clip_id, adjudicator=adjudicator, role=role, verdict=verdict, reason=reason,
                       anomaly_type=anomaly_type)  # fmt: skip
    session.add(row)
    session.flush()
    return row


def verdict_history(session: Session, clip_id: int) -> list[Annotation]:
    """Every annotation row of a clip, oldest first (undo rows included)."""
    return list(session.scalars(select(Annotation).where(Annotation.clip_id == clip_id).order_by(Annotation.id)))


def last_undoable(session: Session, annotator: str) -> Annotation | None:
    """The annotator's latest verdict that has not been undone (undo rows themselves excluded)."""
    undone = select(Annotation.undoes_id).where(Annotation.undoes_id.is_not(None))
    return session.scalar(
        select(Annotation)
        .where(Annotation.annotator == annotator, Annotation.undoes_id.is_(None), Annotation.id.not_in(undone))
        .order_by(Annotation.id.desc())
        .limit(1)
    )


def anomaly_type_names(session: Session) -> list[str]:
    return list(session.scalars(select(AnomalyType.name).order_by(AnomalyType.name)))


def add_anomaly_type(session: Session, name: str, created_by: str) -> None:
    if session.scalar(select(AnomalyType).where(AnomalyType.name == name)) is None:
        session.add(AnomalyType(name=name, created_by=created_by))


def scored_clips(session: Session, model_id: int, machine_pks: list[int]) -> list[tuple[Clip, float]]:
    """``(clip, score)`` of every clip of these machines scored by the model, by clip id."""
    rows = session.execute(
        select(Clip, Score.score)
        .join(Score, Score.clip_id == Clip.id)
        .where(Score.model_id == model_id, Clip.machine_pk.in_(machine_pks))
        .order_by(Clip.id)
    )
    return [(clip, value) for clip, value in rows]


def tuning_rows(session: Session, model_id: int, machine_pk: int, splits: list[str]) -> list:
    """``(id, label, split, score, judged)`` rows (five columns, never whole clips) of the machine's clips in
    ``splits`` the model scored that the layout labels normal or abnormal or someone judged (``judged``: an
    annotation or adjudication exists): every clip that may be in the Thresholds page's labelled set, by id."""
    judged = _judged_ids_sql()
    query = (
        select(Clip.id, Clip.label, Clip.split, Score.score, judged.c.clip_id.is_not(None).label("judged"))
        .join(Score, Score.clip_id == Clip.id)
        .outerjoin(judged, judged.c.clip_id == Clip.id)
        .where(Score.model_id == model_id, Clip.machine_pk == machine_pk, Clip.split.in_(splits),
               or_(Clip.label.in_(CLASSES), judged.c.clip_id.is_not(None)))
        .order_by(Clip.id)
    )  # fmt: skip
    return list(session.execute(query))


def score_sketch(
    session: Session, model_id: int, machine_pk: int, splits: list[str], leave_out: list[int], points: int
) -> tuple[int, list[float]]:
    """``(n, scores)`` of the machine's clips in ``splits`` the model scored that the layout does not label and
    nobody judged (but those in ``leave_out``): how many, and at most ``points + 1`` of their scores at evenly
    spaced ranks (the first of each of ``points`` equal runs, and the highest), ascending; all of them when
    ``n <= points``.  Counted and ranked by the database in one pass (window functions), so what is read stays
    bounded however many clips there are."""
    base = (
        select(Score.score.label("score"))
        .join(Clip, Clip.id == Score.clip_id)
        .where(Score.model_id == model_id, Clip.machine_pk == machine_pk, Clip.split.in_(splits),
               Clip.label.not_in(CLASSES), ~exists().where(Annotation.clip_id == Clip.id),
               ~exists().where(Adjudication.clip_id == Clip.id))
    )  # fmt: skip
    if leave_out:
        base = base.where(Clip.id.not_in(leave_out))
    rank = func.row_number().over(order_by=(Score.score, Score.clip_id)).label("rank")
    ranked = base.add_columns(rank, func.count().over().label("n")).subquery()
    runs = max(points, 1)  # rank r (1-based) of n is in run (r - 1) * runs // n: keep each run's first, and the last
    starts = (ranked.c.rank - 1) * runs // ranked.c.n > (ranked.c.rank - 2) * runs // ranked.c.n
    picked = select(ranked.c.score, ranked.c.n).where(or_(ranked.c.rank == 1, ranked.c.rank == ranked.c.n, starts))
    rows = session.execute(picked.order_by(ranked.c.rank)).all()
    return (rows[0].n if rows else 0), [row.score for row in rows]


def clips_in_splits(session: Session, clip_ids: list[int], splits: list[str]) -> list[int]:
    """Those of ``clip_ids`` (any number: asked in chunks) whose clip is in one of ``splits``."""
    out: list[int] = []
    for start in range(0, len(clip_ids), IN_CHUNK):
        chunk = clip_ids[start : start + IN_CHUNK]
        out += session.scalars(select(Clip.id).where(Clip.id.in_(chunk), Clip.split.in_(splits)))
    return sorted(out)


def score_details(session: Session, model_id: int, clip_id: int) -> dict | None:
    """A score's details: ``frame_errors`` and ``band_errors`` (unpacked from their float16 bytes) and
    whatever else was stored; None when the clip has no score or no details."""
    row = session.execute(
        select(Score.frames, Score.details).where(Score.model_id == model_id, Score.clip_id == clip_id)
    ).first()
    return None if row is None else join_details(row.frames, row.details)


def clips_per_day(session: Session, machine_pk: int, days: int = 7) -> float:
    """Mean clips ingested per day for a machine over the last ``days`` days (0 when none)."""
    since = utcnow() - timedelta(days=days)
    n = session.scalar(select(func.count(Clip.id)).where(Clip.machine_pk == machine_pk, Clip.ingested_at >= since))
    return (n or 0) / days


def counts_for_machine(session: Session, machine: Machine) -> tuple[int, int, int, int]:
    """``(scores of its active model, annotations of its clips, thresholds of its active model, adjudications
    of its clips)``."""
    clip_ids = select(Clip.id).where(Clip.machine_pk == machine.id)
    model_id = machine.active_model_id
    return (
        session.scalar(select(func.count(Score.id)).where(Score.model_id == model_id)) or 0,
        session.scalar(select(func.count(Annotation.id)).where(Annotation.clip_id.in_(clip_ids))) or 0,
        session.scalar(select(func.count(Threshold.id)).where(Threshold.model_id == model_id)) or 0,
        session.scalar(select(func.count(Adjudication.id)).where(Adjudication.clip_id.in_(clip_ids))) or 0,
    )


# --- exports and supervised training jobs ----------------------------------------------------------


def latest_export(session: Session) -> Export | None:
    return session.scalars(select(Export).order_by(Export.id.desc()).limit(1)).first()


def export_by_dir(session: Session, out_dir: str) -> Export | None:
    """The newest export written to ``out_dir`` (a resolved path)."""
    return session.scalars(select(Export).where(Export.out_dir == out_dir).order_by(Export.id.desc()).limit(1)).first()


def add_training_job(
    session: Session, backend: str, export_id: int | None, external: dict | None = None
) -> TrainingJob:
    job = TrainingJob(backend=backend, status=JobState.PENDING.value, export_id=export_id, external=external or {})
    session.add(job)
    session.flush()
    return job


def update_training_job(session: Session, job_id: int, **changes) -> TrainingJob:
    """Set columns of job ``job_id``; ``external`` is merged into what is stored, not replaced."""
    job = session.get(TrainingJob, job_id)
    if job is None:
        raise LookupError(f"no training job {job_id}")
    if "external" in changes:
        changes["external"] = {**(job.external or {}), **changes["external"]}
    for name, value in changes.items():
        setattr(job, name, value)
    job.updated_at = utcnow()
    return job


def move_training_job(session: Session, job_id: int, expected: str, new: str) -> bool:
    """Set the job's status to ``new`` if it is ``expected`` (one conditional UPDATE); whether it was."""
    moved = session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == expected)
        .values(status=new, updated_at=utcnow())
    )
    return moved.rowcount == 1


def training_jobs(session: Session, limit: int = 50, backend: str | None = None) -> list[TrainingJob]:
    """The newest training jobs first."""
    query = select(TrainingJob).order_by(TrainingJob.id.desc()).limit(limit)
    if backend:
        query = query.where(TrainingJob.backend == backend)
    return list(session.scalars(query))


# --- continuous ingestion ---------------------------------------------------------------------------


def _under(path_column, folder: str):
    """SQL condition: ``path_column`` names a file inside ``folder`` (a resolved path)."""
    return path_column.startswith(folder.rstrip("/") + "/", autoescape=True)


def _latest_per_path(session: Session, path_column, time_column, folder: str) -> dict[str, datetime]:
    rows = session.execute(
        select(path_column, func.max(time_column)).where(_under(path_column, folder)).group_by(path_column)
    )
    return {path: when for path, when in rows}


def clips_ingested_under(session: Session, folder: str) -> dict[str, datetime]:
    """``{path: last time a clip was registered under it}`` for clip paths inside ``folder`` (a resolved path)."""
    return _latest_per_path(session, Clip.path, Clip.ingested_at, folder)


def rejections_under(session: Session, folder: str) -> dict[str, datetime]:
    """``{path: last time refused}`` for refused files inside ``folder``."""
    return _latest_per_path(session, RejectedFile.path, RejectedFile.seen_at, folder)


def flagged_since(
    session: Session, machine: Machine, since: datetime, folder: str | None = None, after_id: int = 0
) -> list[tuple[Clip, float, float]]:
    """``(clip, score, threshold)`` of the machine's clips ingested at or after ``since`` (stored inside
    ``folder`` when given, with an id above ``after_id``: those a caller has not handled yet) that its
    active model scores above the active threshold, by clip id."""
    model_id = machine.active_model_id
    threshold = active_threshold(session, model_id) if model_id else None
    if threshold is None:
        return []
    rows = (
        select(Clip, Score.score)
        .join(Score, Score.clip_id == Clip.id)
        .where(Score.model_id == model_id, Clip.machine_pk == machine.id, Clip.id > after_id,
               Clip.ingested_at >= since, Score.score > threshold.value)
        .order_by(Clip.id)
    )  # fmt: skip
    if folder is not None:
        rows = rows.where(_under(Clip.path, folder))
    return [(clip, value, threshold.value) for clip, value in session.execute(rows)]


# --- drift ----------------------------------------------------------------------------------------


def clips_newest_first(session: Session, machine_pk: int) -> list[Clip]:
    """Every clip of a machine, the newest ingested first (ties: the highest id first)."""
    return list(
        session.scalars(
            select(Clip).where(Clip.machine_pk == machine_pk).order_by(Clip.ingested_at.desc(), Clip.id.desc())
        )
    )


IN_CHUNK = 5000  # ids per IN (...) list: under every backend's limit on bound parameters


def clips_by_id(session: Session, clip_ids: list[int]) -> list[Clip]:
    """These clips (any number of ids: asked in chunks), by id."""
    out: list[Clip] = []
    for start in range(0, len(clip_ids), IN_CHUNK):
        out += session.scalars(select(Clip).where(Clip.id.in_(clip_ids[start : start + IN_CHUNK])))
    return sorted(out, key=lambda c: c.id)


def clip_rates(session: Session, machine_pk: int, clip_ids: list[int] | None = None) -> dict[int, int]:
    """``{clip_id: sample rate}`` of the machine's clips among ``clip_ids`` (None: its normal training-split
    clips), read as two columns, never whole rows."""
    query = select(Clip.id, Clip.sample_rate).where(Clip.machine_pk == machine_pk)
    if clip_ids is None:
        return dict(session.execute(query.where(Clip.label == Label.NORMAL, Clip.split == Split.TRAIN)).all())
    out: dict[int, int] = {}
    for start in range(0, len(clip_ids), IN_CHUNK):
        out.update(session.execute(query.where(Clip.id.in_(clip_ids[start : start + IN_CHUNK]))).all())
    return out


def _judged_ids_sql():
    """SQL: the ids of the clips someone judged (an annotation row, undo rows included) or adjudicated, read from
    the verdict tables' ``(clip_id, created_at)`` indexes (a few per cent of the clips, never a scan of them)."""
    return union(select(Annotation.clip_id), select(Adjudication.clip_id)).subquery()


def drift_candidates(session: Session, machine_pk: int, rate: int | None, until: datetime) -> list[tuple[int, str]]:
    """``(clip_id, layout label)`` of the machine's clips at ``rate`` ingested until ``until`` that the layout
    calls normal or someone judged: the clips that may be normal held-out clips (two columns, by id).  The
    normal ones come from ``clips (machine_pk, label, sample_rate, ingested_at, split, id)`` alone, the judged ones
    from the verdicts."""
    normal = select(Clip.id, Clip.label).where(Clip.machine_pk == machine_pk, Clip.label == Label.NORMAL,
                                               Clip.ingested_at <= until)  # fmt: skip
    judged = _judged_ids_sql()
    others = (
        select(Clip.id, Clip.label)
        .join(judged, judged.c.clip_id == Clip.id)
        .where(Clip.machine_pk == machine_pk, Clip.label != Label.NORMAL, Clip.ingested_at <= until)
    )
    if rate is not None:
        normal, others = normal.where(Clip.sample_rate == rate), others.where(Clip.sample_rate == rate)
    found = [tuple(row) for part in (normal, others) for row in session.execute(part)]
    return sorted(found)


def judged_ids(session: Session, machine_pk: int) -> set[int]:
    """Ids of the machine's clips someone judged or adjudicated (driven by the verdicts, not the clips)."""
    judged = _judged_ids_sql()
    query = select(Clip.id).join(judged, judged.c.clip_id == Clip.id).where(Clip.machine_pk == machine_pk)
    return set(session.scalars(query))


def other_rate_ids(session: Session, machine_pk: int, rate: int) -> set[int]:
    """Ids of the machine's clips recorded at another sample rate than ``rate`` (few: a misconfigured recorder),
    read from ``clips (machine_pk, label, sample_rate, ..., id)``."""
    return set(session.scalars(select(Clip.id).where(Clip.machine_pk == machine_pk, Clip.sample_rate != rate)))


def newest_clips_page(
    session: Session, machine_pk: int, rate: int | None, before: tuple[datetime, int] | None, limit: int
) -> list[Clip]:
    """Up to ``limit`` of the machine's clips at ``rate``, the newest ingested first (ties: the highest id first),
    after the clip ``before`` (its ``(ingested_at, id)``) in that order; served by ``clips (machine_pk,
    ingested_at, id)``."""
    query = select(Clip).where(Clip.machine_pk == machine_pk)
    if rate is not None:
        query = query.where(Clip.sample_rate == rate)
    if before is not None:
        at, clip_id = before
        query = query.where(or_(Clip.ingested_at < at, and_(Clip.ingested_at == at, Clip.id < clip_id)))
    return list(session.scalars(query.order_by(Clip.ingested_at.desc(), Clip.id.desc()).limit(limit)))


# --- the notification outbox (core.workflows.notify) ----------------------------------------------------------------


def add_notification(session: Session, clip_id: int, model_id: int, channel: str, target: str, payload: dict) -> bool:
    """Add an outbox row for this clip, model and channel unless one exists; whether it was added (a row a
    concurrent writer adds meanwhile makes the commit fail on the unique key)."""
    exists = session.scalar(
        select(Notification.id).where(
            Notification.clip_id == clip_id, Notification.model_id == model_id, Notification.channel == channel
        )
    )
    if exists is not None:
        return False
    session.add(Notification(clip_id=clip_id, model_id=model_id, channel=channel, target=target, payload=payload))
    return True


def due_notification_ids(
    session: Session, channels: list[str], now: datetime, limit: int, only_targets: dict[str, list[str]] | None = None
) -> list[int]:
    """Ids of the pending outbox rows of these channels that are due at ``now``, oldest first; of a channel in
    ``only_targets``, only the rows whose target it lists."""
    restricted = only_targets or {}
    wanted = or_(
        Notification.channel.in_([c for c in channels if c not in restricted]),
        *[and_(Notification.channel == c, Notification.target.in_(restricted[c])) for c in channels if c in restricted],
    )
    return list(
        session.scalars(
            select(Notification.id)
            .where(Notification.status == "pending", Notification.next_attempt_at <= now, wanted)
            .order_by(Notification.id)
            .limit(limit)
        )
    )


def pending_targets(session: Session, channel: str, exclude: list[str]) -> list[tuple[str, str]]:
    """The distinct ``(target, last_error)`` of the pending outbox rows of ``channel`` whose target is none of
    ``exclude``."""
    query = (
        select(Notification.target, Notification.last_error)
        .where(Notification.status == "pending", Notification.channel == channel, Notification.target.not_in(exclude))
        .distinct()
    )
    return [(target, error) for target, error in session.execute(query)]


def note_pending_error(session: Session, channel: str, target: str, error: str) -> None:
    """Set the ``last_error`` of the pending outbox rows of ``channel`` to ``target`` (their next attempt kept)."""
    session.execute(
        update(Notification)
        .where(Notification.status == "pending", Notification.channel == channel, Notification.target == target)
        .values(last_error=error)
        .execution_options(synchronize_session=False)
    )


def claim_notification(
    session: Session, notification_id: int, now: datetime, lease_until: datetime
) -> Notification | None:
    """Claim an outbox row for sending: one conditional UPDATE moves its ``next_attempt_at`` to ``lease_until``
    if it is still pending and due at ``now``, so that no other sender takes it meanwhile.  The row as it
    stands when this call claimed it; ``None`` when another sender claimed or finished it first."""
    claimed = session.execute(
        update(Notification)
        .where(
            Notification.id == notification_id,
            Notification.status == "pending",
            Notification.next_attempt_at <= now,
        )
        .values(next_attempt_at=lease_until)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        return None
    return session.get(Notification, notification_id)


def update_notification(session: Session, notification_id: int, **changes) -> None:
    """Set columns of outbox row ``notification_id``."""
    session.execute(
        update(Notification)
        .where(Notification.id == notification_id)
        .values(**changes)
        .execution_options(synchronize_session=False)
    )


# --- users, sign-in attempts and the audit log (core.workflows.users, core.workflows.audit) --------------------------


def user_by_name(session: Session, name: str) -> User | None:
    """The user named exactly ``name``, or None."""
    return session.scalar(select(User).where(User.name == name))


def user_by_email(session: Session, email: str) -> User | None:
    """The user with this e-mail (stored in lower case: pass it lower-cased)."""
    return session.scalar(select(User).where(User.email == email))


def users_by_name(session: Session) -> list[User]:
    """Every user, sorted by name."""
    return list(session.scalars(select(User).order_by(User.name)))


def failed_sign_ins_since(session: Session, name: str, since: datetime) -> list[datetime]:
    """When sign-in failed for ``name`` after ``since``, the newest first."""
    rows = select(FailedSignIn.at).where(FailedSignIn.name == name, FailedSignIn.at > since)
    return list(session.scalars(rows.order_by(FailedSignIn.at.desc())))


def add_failed_sign_in(session: Session, name: str, now: datetime, forget_before: datetime) -> None:
    """Record a failed sign-in for ``name`` at ``now``, and forget every failure (of any name) before
    ``forget_before``: rate limiting never looks that far back."""
    session.execute(delete(FailedSignIn).where(FailedSignIn.at < forget_before))
    session.add(FailedSignIn(name=name, at=now))


def clear_failed_sign_ins(session: Session, name: str) -> None:
    """Forget every failed sign-in of ``name`` (after a successful one)."""
    session.execute(delete(FailedSignIn).where(FailedSignIn.name == name))


def audit_events_newest_first(session: Session, limit: int) -> list[AuditEvent]:
    """The latest ``limit`` audit events, the newest first (ties: the latest written first)."""
    return list(session.scalars(select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)))
