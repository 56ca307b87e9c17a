"""core.workflows.triage: what the active model flags per machine, the review queue, verdicts (append-only, with undo)
and the clips on which pilots disagree."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select, update

from core.errors import BadInputError, Reason
from core.workflows.triage import QUEUE_ORDERS, machine_summaries, record_verdict, review_list, triage_queue, undo_last
from db.models import Annotation, AnomalyType, AuditEvent, Clip, Machine, Score, Threshold
from db.queries import add_threshold, anomaly_type_names
from db.session import session_scope
from tests.conftest import tone, write_wav

MACHINES = ("fan/id_00", "fan/id_02")


@pytest.fixture(autouse=True)
def one_verdict_is_enough(monkeypatch):
    """Most tests here read the queue as one verdict per clip (``OVERLAP_FRACTION=0``); the overlap's own tests
    (tests/workflows/test_review.py) set it."""
    monkeypatch.setenv("OVERLAP_FRACTION", "0")


def _machine(session, key: str) -> Machine:
    machine_type, machine_id = key.split("/")
    return session.scalar(select(Machine).where(Machine.machine_type == machine_type, Machine.machine_id == machine_id))


def _state(key: str) -> tuple[float, dict[int, float], list[int]]:
    """``(active threshold, {clip id: score} of the active model, every clip id)`` straight from the tables."""
    with session_scope() as session:
        machine = _machine(session, key)
        threshold = session.scalar(
            select(Threshold.value).where(Threshold.model_id == machine.active_model_id).order_by(Threshold.id.desc())
        )
        scores = dict(
            session.execute(
                select(Score.clip_id, Score.score)
                .join(Clip, Clip.id == Score.clip_id)
                .where(Score.model_id == machine.active_model_id, Clip.machine_pk == machine.id)
            ).all()
        )
        clip_ids = list(session.scalars(select(Clip.id).where(Clip.machine_pk == machine.id)))
    return threshold, scores, clip_ids


def _flagged(key: str) -> list[int]:
    """Clip ids above the active threshold, highest score first."""
    threshold, scores, _ = _state(key)
    return sorted((c for c, s in scores.items() if s > threshold), key=lambda c: -scores[c])


def _unflagged(key: str) -> list[int]:
    threshold, scores, _ = _state(key)
    return sorted(c for c, s in scores.items() if s <= threshold)


def _annotations() -> list[Annotation]:
    with session_scope() as session:
        return list(session.scalars(select(Annotation).order_by(Annotation.id)))


# --- machine_summaries ---------------------------------------------------------------------------------------


def test_summaries_before_any_verdict(seeded):
    summaries = machine_summaries()
    assert [s.machine for s in summaries] == list(MACHINES)
    with session_scope() as session:
        last_ingested = {
            key: session.scalar(select(func.max(Clip.ingested_at)).where(Clip.machine_pk == _machine(session, key).id))
            for key in MACHINES
        }
    for s in summaries:
        threshold, scores, clip_ids = _state(s.machine)
        flagged = sum(v > threshold for v in scores.values())
        assert s.clips == len(clip_ids) == len(scores) == 16
        assert 0 < flagged < 16
        assert (s.flagged, s.unreviewed) == (flagged, flagged)
        assert (s.confirmed, s.rejected, s.unsure) == (0, 0, 0)
        assert (s.detector, s.version) == ("mahalanobis", 1)
        assert s.threshold == threshold
        assert s.last_ingested_at == last_ingested[s.machine] and isinstance(s.last_ingested_at, datetime)
        assert s.last_verdict_at is None


def test_summaries_count_verdicts_and_unreviewed_flags(seeded):
    flagged = _flagged("fan/id_00")
    assert len(flagged) >= 4
    quiet = _unflagged("fan/id_00")[0]
    record_verdict(flagged[0], "ana", "abnormal", anomaly_type="bearing")
    record_verdict(flagged[1], "ana", "normal")
    record_verdict(flagged[2], "bo", "unsure")
    record_verdict(flagged[3], "bo", "abnormal")
    undo_last("bo")  # flagged[3] is unreviewed again
    record_verdict(quiet, "ana", "abnormal")  # a verdict on a clip the model passed counts as a confirmation too

    summaries = {s.machine: s for s in machine_summaries()}
    s = summaries["fan/id_00"]
    assert s.flagged == len(flagged)
    assert (s.confirmed, s.rejected, s.unsure) == (2, 1, 1)
    assert s.unreviewed == len(flagged) - 3
    with session_scope() as session:
        newest = session.scalar(select(func.max(Annotation.created_at)))
    assert s.last_verdict_at == newest
    assert s.last_verdict_at >= s.last_ingested_at

    other = summaries["fan/id_02"]
    assert (other.confirmed, other.rejected, other.unsure, other.last_verdict_at) == (0, 0, 0, None)
    assert other.unreviewed == other.flagged == len(_flagged("fan/id_02"))


def test_summaries_follow_the_latest_threshold(seeded):
    threshold, scores, _ = _state("fan/id_00")
    ranked = sorted(scores.values())
    new = ranked[-3]  # flagged means strictly above: exactly the two highest scores
    with session_scope(write=True) as session:
        add_threshold(session, _machine(session, "fan/id_00").active_model_id, new, method="manual", set_by="t",
                      reason="r")  # fmt: skip
    s = {s.machine: s for s in machine_summaries()}["fan/id_00"]
    assert (s.threshold, s.flagged, s.unreviewed) == (new, 2, 2)
    assert new != threshold


def test_summary_of_a_machine_without_an_active_model(seeded):
    with session_scope(write=True) as session:
        session.execute(update(Machine).where(Machine.id == _machine(session, "fan/id_02").id).values(
            active_model_id=None))  # fmt: skip
    s = {s.machine: s for s in machine_summaries()}["fan/id_02"]
    assert (s.clips, s.flagged, s.unreviewed) == (16, 0, 0)
    assert (s.detector, s.version, s.threshold) == (None, None, None)
    assert triage_queue("fan/id_02") == []


# --- triage_queue ----------------------------------------------------------------------------------------------


def test_queue_highest_score_first(seeded):
    threshold, scores, _ = _state("fan/id_00")
    queue = triage_queue("fan/id_00")  # default order: score
    assert [item.clip_id for item in queue] == _flagged("fan/id_00")
    assert [item.score for item in queue] == sorted((s for s in scores.values() if s > threshold), reverse=True)
    with session_scope() as session:
        for item in queue:
            clip = session.get(Clip, item.clip_id)
            assert (item.path, item.label, item.threshold) == (clip.path, clip.label, threshold)
            assert item.ingested_at == clip.ingested_at
            assert item.score == scores[clip.id] > threshold


def test_queue_closest_to_the_threshold_first(seeded):
    threshold, scores, _ = _state("fan/id_02")
    queue = triage_queue("fan/id_02", "margin")
    flagged = [c for c, s in scores.items() if s > threshold]
    assert [item.clip_id for item in queue] == sorted(flagged, key=lambda c: scores[c] - threshold)
    margins = [item.score - item.threshold for item in queue]
    assert margins == sorted(margins) and margins[0] > 0


def test_queue_newest_first(seeded):
    flagged = _flagged("fan/id_00")
    assert len(flagged) >= 3
    base = datetime(2026, 1, 1, tzinfo=UTC)
    # the lowest-scoring flagged clip becomes the newest, the highest-scoring the oldest
    stamps = {clip_id: base + timedelta(hours=k) for k, clip_id in enumerate(flagged)}
    with session_scope(write=True) as session:
        for clip_id, stamp in stamps.items():
            session.execute(update(Clip).where(Clip.id == clip_id).values(ingested_at=stamp))
    queue = triage_queue("fan/id_00", "newest")
    assert [item.clip_id for item in queue] == flagged[::-1]
    assert [item.ingested_at.replace(tzinfo=None) for item in queue] == [
        stamps[c].replace(tzinfo=None) for c in flagged[::-1]
    ]


def test_queue_ties_in_time_put_the_later_clip_first(seeded):
    flagged = _flagged("fan/id_00")
    with session_scope(write=True) as session:
        session.execute(update(Clip).where(Clip.id.in_(flagged)).values(ingested_at=datetime(2026, 1, 1, tzinfo=UTC)))
    assert [item.clip_id for item in triage_queue("fan/id_00", "newest")] == sorted(flagged, reverse=True)


def test_queue_leaves_out_clips_with_a_verdict_until_it_is_undone(seeded):
    flagged = _flagged("fan/id_00")
    record_verdict(flagged[0], "ana", "abnormal")
    record_verdict(flagged[1], "bo", "unsure")
    for order in QUEUE_ORDERS.values():
        ids = [item.clip_id for item in triage_queue("fan/id_00", order)]
        assert sorted(ids) == sorted(flagged[2:])
    assert [item.clip_id for item in triage_queue("fan/id_02")] == _flagged("fan/id_02")  # other machine untouched
    undo_last("ana")
    assert [item.clip_id for item in triage_queue("fan/id_00")] == [flagged[0], *flagged[2:]]


def test_queue_refuses_an_unknown_order(seeded):
    for order in ("loudest", "Score", ""):
        with pytest.raises(BadInputError, match="unknown queue order") as info:
            triage_queue("fan/id_00", order)
        assert info.value.reason is Reason.INVALID_PARAMETER


def test_queue_of_an_unknown_machine_or_a_bare_type_is_empty(seeded):
    assert triage_queue("fan/id_09") == []
    assert triage_queue("pump/id_00") == []
    assert triage_queue("fan") == []  # a type names several machines, not one queue


def test_queue_refuses_an_unknown_order_whatever_the_machine(seeded):
    with pytest.raises(BadInputError):
        triage_queue("fan/id_09", "loudest")


# --- record_verdict -------------------------------------------------------------------------------------------


def test_record_verdict_refuses_bad_input_and_writes_nothing(seeded):
    clip_id = _flagged("fan/id_00")[0]
    for annotator in ("", "   ", "\t"):
        with pytest.raises(BadInputError, match="annotator") as info:
            record_verdict(clip_id, annotator, "abnormal")
        assert info.value.reason is Reason.INVALID_PARAMETER
    for verdict in ("maybe", "Abnormal", "", "undo"):
        with pytest.raises(BadInputError, match="verdict must be one of") as info:
            record_verdict(clip_id, "ana", verdict)
        assert info.value.reason is Reason.INVALID_PARAMETER
    with pytest.raises(BadInputError, match="no clip with id 99999") as info:
        record_verdict(99999, "ana", "abnormal", anomaly_type="brand new")
    assert info.value.reason is Reason.NOT_FOUND
    assert _annotations() == []
    assert "brand new" not in _type_names()


@pytest.mark.parametrize(
    ("annotator", "kind", "message"),
    [("a" * 200, None, f"annotator '{'a' * 23}…' is 200 characters; at most 128"),
     ("ana", "k" * 70, f"anomaly type '{'k' * 23}…' is 70 characters; at most 64")],
)  # fmt: skip
def test_record_verdict_refuses_names_longer_than_the_database_keeps_on_every_backend(
    any_db_url, tmp_path, annotator, kind, message
):
    """PostgreSQL enforces the columns' lengths and SQLite does not: both refuse alike, before writing anything."""
    (clip_id,) = _registered_clips(any_db_url, tmp_path / "clips", n=1)
    with pytest.raises(BadInputError) as info:
        record_verdict(clip_id, annotator, "abnormal", anomaly_type=kind, url=any_db_url)
    assert (info.value.reason, info.value.detail) == (Reason.INVALID_PARAMETER, message)
    if kind is None:
        with pytest.raises(BadInputError, match=re.escape(message)):
            undo_last(annotator, url=any_db_url)
    with session_scope(any_db_url) as session:
        assert session.scalar(select(func.count(Annotation.id))) == 0
        assert session.scalar(select(func.count(AuditEvent.id))) == 1  # the ingest's, and no verdict's
        assert "k" * 70 not in anomaly_type_names(session)
    at_limits = record_verdict(clip_id, "a" * 128, "abnormal", anomaly_type="k" * 64, url=any_db_url)
    with session_scope(any_db_url) as session:
        row = session.get(Annotation, at_limits)
        assert (row.annotator, row.anomaly_type) == ("a" * 128, "k" * 64)
        assert "k" * 64 in anomaly_type_names(session)


def test_record_verdict_refuses_a_nul_character_that_postgresql_cannot_store(any_db_url, tmp_path):
    (clip_id,) = _registered_clips(any_db_url, tmp_path / "clips", n=1)
    refused = [dict(annotator="an\x00a"), dict(anomaly_type="rub\x00"), dict(note="rattle\x00")]
    for given in refused:
        kwargs = {"annotator": "ana", "anomaly_type": None, "note": ""} | given
        with pytest.raises(BadInputError, match="holds a NUL character") as info:
            record_verdict(clip_id, kwargs.pop("annotator"), "abnormal", url=any_db_url, **kwargs)
        assert info.value.reason is Reason.INVALID_PARAMETER
    with session_scope(any_db_url) as session:
        assert session.scalar(select(func.count(Annotation.id))) == 0


def _type_names() -> list[str]:
    with session_scope() as session:
        return anomaly_type_names(session)


def test_record_verdict_stores_the_row(seeded):
    clip_id = _flagged("fan/id_00")[0]
    first = record_verdict(clip_id, "  ana ", "abnormal", anomaly_type=" bearing ", note="  grinding at 3 s \n")
    second = record_verdict(clip_id, "bo", "normal", note="sounds fine")
    assert second > first
    rows = _annotations()
    assert [r.id for r in rows] == [first, second]
    a, b = rows
    assert (a.clip_id, a.annotator, a.verdict, a.anomaly_type, a.note, a.undoes_id) == (
        clip_id, "ana", "abnormal", "bearing", "grinding at 3 s", None,
    )  # fmt: skip
    assert (b.clip_id, b.annotator, b.verdict, b.anomaly_type, b.note) == (clip_id, "bo", "normal", None, "sounds fine")
    assert a.created_at is not None and b.created_at >= a.created_at


def test_anomaly_type_is_kept_only_with_abnormal_and_new_ones_join_the_list(seeded):
    flagged = _flagged("fan/id_00")
    defaults = _type_names()
    assert "bearing" in defaults and "belt slip" not in defaults

    record_verdict(flagged[0], "ana", "normal", anomaly_type="ghost fault")
    record_verdict(flagged[1], "ana", "unsure", anomaly_type="ghost fault")
    record_verdict(flagged[2], "ana", "abnormal", anomaly_type="   ")
    record_verdict(flagged[3], "ana", "abnormal", anomaly_type="bearing")
    assert [r.anomaly_type for r in _annotations()] == [None, None, None, "bearing"]
    assert _type_names() == defaults  # nothing new: ignored, blank or already known

    record_verdict(flagged[0], "bo", "abnormal", anomaly_type=" belt slip ")
    record_verdict(flagged[1], "cy", "abnormal", anomaly_type="belt slip")
    assert _annotations()[-1].anomaly_type == "belt slip"
    assert _type_names() == sorted([*defaults, "belt slip"])
    with session_scope() as session:
        added = session.scalars(select(AnomalyType).where(AnomalyType.name == "belt slip")).all()
    assert [t.created_by for t in added] == ["bo"]  # once, by whoever named it first


# --- undo_last ---------------------------------------------------------------------------------------------------


def test_undo_appends_a_row_and_the_clip_returns_to_the_queue(seeded):
    clip_id = _flagged("fan/id_00")[0]
    verdict_id = record_verdict(clip_id, "ana", "abnormal", anomaly_type="bearing", note="loud")
    assert clip_id not in {item.clip_id for item in triage_queue("fan/id_00")}

    undone = undo_last("ana")
    assert undone is not None
    assert (undone.id, undone.clip_id, undone.verdict, undone.annotator) == (verdict_id, clip_id, "abnormal", "ana")
    rows = _annotations()
    assert len(rows) == 2
    original, undo = rows
    assert (original.id, original.verdict, original.anomaly_type, original.note, original.undoes_id) == (
        verdict_id, "abnormal", "bearing", "loud", None,
    )  # fmt: skip
    assert (undo.clip_id, undo.annotator, undo.undoes_id) == (clip_id, "ana", verdict_id)
    assert clip_id in {item.clip_id for item in triage_queue("fan/id_00")}
    s = {s.machine: s for s in machine_summaries()}["fan/id_00"]
    assert (s.confirmed, s.unreviewed) == (0, s.flagged)
    with session_scope() as session:  # the Audit page's line reads as a sentence ("undid unsure" did not)
        event = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
        assert (event.action, event.target, event.detail) == (
            "undo", f"clip {clip_id}", f"undid the verdict abnormal (annotation {verdict_id})",
        )  # fmt: skip


def test_undo_with_nothing_to_undo_returns_none(seeded):
    assert undo_last("ana") is None
    clip_id = _flagged("fan/id_00")[0]
    record_verdict(clip_id, "ana", "normal")
    assert undo_last("ana") is not None
    assert undo_last("ana") is None  # its only verdict is undone already; undo rows are never undone
    assert len(_annotations()) == 2


def test_undo_never_touches_another_annotators_verdict(seeded):
    flagged = _flagged("fan/id_00")
    mine = record_verdict(flagged[0], "ana", "abnormal")
    record_verdict(flagged[1], "bo", "normal")  # bo's verdict is the latest of all
    assert undo_last("cy") is None
    assert undo_last("ana").id == mine
    rows = _annotations()
    assert [(r.annotator, r.undoes_id) for r in rows] == [("ana", None), ("bo", None), ("ana", mine)]
    queue = {item.clip_id for item in triage_queue("fan/id_00")}
    assert flagged[0] in queue and flagged[1] not in queue


def test_a_second_undo_cancels_the_annotators_previous_verdict(seeded):
    flagged = _flagged("fan/id_00")
    first = record_verdict(flagged[0], "ana", "abnormal")
    record_verdict(flagged[2], "bo", "abnormal")
    second = record_verdict(flagged[1], "ana", "normal")
    assert undo_last(" ana ").id == second
    assert undo_last("ana").id == first
    assert undo_last("ana") is None
    assert [r.undoes_id for r in _annotations()] == [None, None, None, second, first]
    queue = {item.clip_id for item in triage_queue("fan/id_00")}
    assert {flagged[0], flagged[1]} <= queue and flagged[2] not in queue


def test_undo_of_a_changed_mind_restores_the_earlier_verdict(seeded):
    clip_id = _flagged("fan/id_00")[0]
    record_verdict(clip_id, "ana", "abnormal")
    record_verdict(clip_id, "ana", "normal")
    s = {s.machine: s for s in machine_summaries()}["fan/id_00"]
    assert (s.confirmed, s.rejected) == (0, 1)
    undo_last("ana")
    s = {s.machine: s for s in machine_summaries()}["fan/id_00"]
    assert (s.confirmed, s.rejected) == (1, 0)
    assert clip_id not in {item.clip_id for item in triage_queue("fan/id_00")}


# --- review_list ----------------------------------------------------------------------------------------------------


def _path(clip_id: int) -> str:
    with session_scope() as session:
        return session.get(Clip, clip_id).path


def test_review_list_shows_current_normal_vs_abnormal_disagreements(seeded):
    a, b, c, d = _flagged("fan/id_00")[:4]
    other = _flagged("fan/id_02")[0]
    record_verdict(a, "ana", "abnormal")
    record_verdict(a, "bo", "normal")  # disagreement
    record_verdict(b, "ana", "abnormal")
    record_verdict(b, "bo", "unsure")  # unsure is no disagreement
    record_verdict(c, "ana", "abnormal")
    record_verdict(c, "bo", "abnormal")  # agreement
    record_verdict(d, "ana", "normal")
    record_verdict(d, "ana", "abnormal")  # one annotator changing their mind is no disagreement
    record_verdict(other, "cy", "normal")
    record_verdict(other, "ana", "abnormal")  # disagreement on the other machine

    assert review_list("fan/id_00") == [
        {"clip_id": a, "path": _path(a), "verdicts": {"ana": "abnormal", "bo": "normal"}}
    ]
    assert [row["clip_id"] for row in review_list()] == sorted([a, other])
    assert [row["clip_id"] for row in review_list("fan")] == sorted([a, other])
    assert [row["clip_id"] for row in review_list("fan/id_02")] == [other]
    assert review_list("pump") == []


def test_review_list_drops_a_clip_once_one_side_undoes(seeded):
    a = _flagged("fan/id_00")[0]
    record_verdict(a, "ana", "abnormal")
    record_verdict(a, "bo", "normal")
    assert [row["clip_id"] for row in review_list()] == [a]
    undo_last("bo")
    assert review_list() == []
    record_verdict(a, "bo", "abnormal")  # bo comes round: agreement
    assert review_list() == []


def test_review_list_uses_each_annotators_latest_live_verdict(seeded):
    a = _flagged("fan/id_00")[0]
    record_verdict(a, "ana", "normal")
    record_verdict(a, "ana", "abnormal")
    record_verdict(a, "bo", "abnormal")
    assert review_list() == []
    undo_last("ana")  # ana is back to "normal"
    assert review_list() == [{"clip_id": a, "path": _path(a), "verdicts": {"ana": "normal", "bo": "abnormal"}}]


def test_verdicts_on_a_deleted_score_do_not_break_the_queue(seeded):
    """A verdict on a clip the model no longer scores is still a verdict; the queue just lacks the clip."""
    flagged = _flagged("fan/id_00")
    record_verdict(flagged[0], "ana", "abnormal")
    with session_scope(write=True) as session:
        session.execute(delete(Score).where(Score.clip_id == flagged[1]))
    assert [item.clip_id for item in triage_queue("fan/id_00")] == flagged[2:]
    s = {s.machine: s for s in machine_summaries()}["fan/id_00"]
    assert (s.flagged, s.confirmed, s.unreviewed) == (len(flagged) - 1, 1, len(flagged) - 2)


# --- many annotators at once ---------------------------------------------------------------------

WRITERS, VERDICTS_EACH = 8, 200
WRITER_SCRIPT = """
import sys
from core.workflows.triage import record_verdict
url, writer, n, clip_ids = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), [int(c) for c in sys.argv[4].split(",")]
for i in range(n):
    verdict = ("normal", "abnormal", "unsure")[(writer + i) % 3]
    record_verdict(clip_ids[(writer * 7 + i) % len(clip_ids)], f"pilot-{writer}", verdict,
                   anomaly_type=f"type-{i // 4}", note=f"{writer}:{i}", url=url)
"""


def _registered_clips(url: str, folder, n: int = 6) -> list[int]:
    from core.workflows.ingest import ingest

    for k in range(n):
        write_wav(folder / f"clip_{k}.wav", tone(1.0, freq=300 + 50 * k, seed=k))
    assert ingest([str(folder)], url=url, n_jobs=1).ingested == n
    with session_scope(url) as session:
        return list(session.scalars(select(Clip.id)))


def test_eight_processes_writing_200_verdicts_each_lose_and_duplicate_nothing(any_db_url, tmp_path):
    """Every verdict of 8 concurrent writer processes is stored exactly once, on both backends, even while
    they race to add the same new anomaly types."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    clip_ids = _registered_clips(any_db_url, tmp_path / "clips")
    repo = Path(__file__).resolve().parents[2]
    env = os.environ | {"PYTHONPATH": str(repo)}
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, any_db_url, str(w), str(VERDICTS_EACH),
                          ",".join(map(str, clip_ids))], cwd=repo, env=env, stderr=subprocess.PIPE, text=True)
        for w in range(WRITERS)
    ]  # fmt: skip
    failures = [p.stderr.read() for p in writers if p.wait(timeout=600) != 0]
    assert not failures, failures[0]
    with session_scope(any_db_url) as session:
        notes = list(session.scalars(select(Annotation.note)))
        per_annotator = dict(
            session.execute(select(Annotation.annotator, func.count()).group_by(Annotation.annotator)).all()
        )
        types = anomaly_type_names(session)
    assert len(notes) == WRITERS * VERDICTS_EACH
    assert set(notes) == {f"{w}:{i}" for w in range(WRITERS) for i in range(VERDICTS_EACH)}  # none lost, none twice
    assert per_annotator == {f"pilot-{w}": VERDICTS_EACH for w in range(WRITERS)}
    assert sorted(t for t in types if t.startswith("type-")) == sorted(f"type-{i // 4}" for i in range(0, 200, 4))


# --- where am I ---------------------------------------------------------------------------------------------------


def test_triage_link_puts_machine_and_clip_in_the_query(monkeypatch):
    from urllib.parse import parse_qs, urlsplit

    from core.workflows.triage import triage_link

    monkeypatch.delenv("PUBLIC_URL", raising=False)
    assert triage_link("fan/id_00", 7) is None  # no address known
    monkeypatch.setenv("PUBLIC_URL", "https://triage.example.com/plant/")
    link = triage_link("fan/id 00&x", 7)
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "triage.example.com", "/plant/triage")
    assert parse_qs(parts.query) == {"machine": ["fan/id 00&x"], "clip": ["7"]}  # a folder name cannot break it
    assert triage_link("fan/id_00", 7, base_url="http://127.0.0.1:8501") == (
        "http://127.0.0.1:8501/triage?machine=fan%2Fid_00&clip=7"
    )


def test_machines_with_work_names_the_machines_whose_queue_is_not_empty(seeded):
    from core.workflows.triage import machines_with_work

    counts = {key: len(triage_queue(key, annotator="alice")) for key in MACHINES}
    assert all(counts.values())
    assert machines_with_work("alice") == sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    for clip in triage_queue(MACHINES[0]):  # alice judges every clip of the first machine
        record_verdict(clip.clip_id, "alice", "normal")
    assert machines_with_work("alice") == [(MACHINES[1], counts[MACHINES[1]])]
    assert dict(machines_with_work("bob"))[MACHINES[1]] == counts[MACHINES[1]]
    assert MACHINES[0] not in dict(machines_with_work("bob"))  # one verdict is enough here (OVERLAP_FRACTION=0)


@pytest.mark.parametrize(("text", "expected"), [("12", 12), (" 7 ", 7), ("0", 0), ("²", None), ("1e9", None),
                                                ("-3", None), ("", None), (None, None), ("9" * 19, None),
                                                ("9" * 18, int("9" * 18))])  # fmt: skip
def test_a_links_clip_parameter_is_a_clip_id_or_nothing(text, expected):
    from core.workflows.triage import linked_clip_id

    assert linked_clip_id(text) == expected
