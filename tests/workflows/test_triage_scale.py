"""The triage queue and Overview's counts at scale: chosen, ordered and limited by the database, yet exactly
what the label policy says, on SQLite and PostgreSQL (a small bulk-seeded plant; bench/db_scale.py times a big one)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from sqlalchemy import event, select

from core.workflows.labels import awaits_verdict, labels_for_machines
from core.workflows.triage import machine_summaries, queue_size, triage_queue
from db.models import Clip
from db.queries import (
    active_threshold,
    adjudications_of_machines,
    annotations_of_machines,
    awaiting_verdict,
    drift_candidates,
    get_or_create_machine,
    judged_ids,
    machines_matching,
    scored_clips,
)
from db.session import get_engine, session_scope, write_transaction

ROOT = Path(__file__).resolve().parents[2]
N_CLIPS = 1500
ORDERS = {"score": lambda r: (-r[1], r[0]), "margin": lambda r: (r[1], r[0]), "newest": lambda r: (-r[2], -r[0])}


def _bench():
    spec = importlib.util.spec_from_file_location("db_scale", ROOT / "bench" / "db_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def plant(any_db_url, monkeypatch):
    monkeypatch.setenv("OVERLAP_FRACTION", "0.3")
    seeded = _bench().seed(any_db_url, N_CLIPS, n_machines=3, overlap=0.3)
    assert seeded["verdicts"] > 50 and seeded["adjudications"] > 0
    return any_db_url, seeded


def _policy_queue(url: str, machine: str, annotator: str | None) -> list[tuple[int, float, float]]:
    """``(clip_id, score, ingested_at timestamp)`` of the clips awaiting a verdict, by the label policy in Python
    over every flagged clip: the reference the SQL must match."""
    with session_scope(url) as session:
        (found,) = machines_matching(session, machine)
        threshold = active_threshold(session, found.active_model_id).value
        flagged = [(c, v) for c, v in scored_clips(session, found.active_model_id, [found.id]) if v > threshold]
        labels = labels_for_machines(session, [c for c, _ in flagged], [found.id])
        return [
            (c.id, v, c.ingested_at.timestamp()) for c, v in flagged if awaits_verdict(labels[c.id], 0.3, annotator)
        ]


@pytest.mark.parametrize("annotator", [None, "ana", "bob", "carl"])
def test_the_queue_in_sql_is_the_label_policys_queue_in_every_order(plant, annotator):
    url, seeded = plant
    for machine in seeded["machines"]:
        expected = _policy_queue(url, machine, annotator)
        assert expected  # judged, unjudged, overlap and adjudicated clips all occur
        for order, key in ORDERS.items():
            ids = [r[0] for r in sorted(expected, key=key)]
            every = triage_queue(machine, order, annotator=annotator, limit=None, url=url)
            assert [item.clip_id for item in every] == ids
            assert [
                item.clip_id for item in triage_queue(machine, order, annotator=annotator, limit=7, url=url)
            ] == ids[:7]
        assert queue_size(machine, annotator=annotator, url=url) == len(expected)
    assert len(triage_queue(seeded["machines"][0], url=url, limit=3)) == 3


def test_overview_counts_from_aggregates_equal_the_label_policy(plant):
    url, seeded = plant
    with session_scope(url) as session:
        reference = {}
        for m in machines_matching(session):
            threshold = active_threshold(session, m.active_model_id).value
            clips = [c for c, _ in scored_clips(session, m.active_model_id, [m.id])]
            flagged = {c.id for c, v in scored_clips(session, m.active_model_id, [m.id]) if v > threshold}
            every = labels_for_machines(session, clips, [m.id])
            judged = [f for f in every.values() if f.judged]
            reference[m.key] = (
                len(clips), len(flagged), sum(f.pilot_label == "abnormal" for f in judged),
                sum(f.pilot_label == "normal" for f in judged), sum(f.pilot_unsure for f in judged),
                len(flagged - {f.clip_id for f in judged}), sum(f.disputed for f in judged),
                sum(every[i].judged and awaits_verdict(every[i], 0.3) for i in flagged),
                sum(f.settled for f in every.values()),
            )  # fmt: skip
    got = {s.machine: (s.clips, s.flagged, s.confirmed, s.rejected, s.unsure, s.unreviewed, s.disputed,
                       s.second_opinion, s.settled) for s in machine_summaries(url)}  # fmt: skip
    assert got == reference
    totals = [sum(column) for column in zip(*reference.values(), strict=True)]
    assert all(totals), str(totals)  # every count is exercised


def test_postgresql_serves_the_queue_from_its_index_with_a_limit(plant):
    url, seeded = plant
    if not url.startswith("postgresql"):
        pytest.skip("EXPLAIN of PostgreSQL's planner")
    with session_scope(url) as session:
        (found,) = machines_matching(session, seeded["machines"][0])
        query = awaiting_verdict(found.active_model_id, found.id, seeded["threshold"], 0.3, "ana")
        from db.queries import QUEUE_SORTS

        sql = (
            query.order_by(*QUEUE_SORTS["score"])
            .limit(20)
            .compile(get_engine(url), compile_kwargs={"literal_binds": True})
        )
    with get_engine(url).connect() as conn:
        plan = "\n".join(conn.exec_driver_sql("EXPLAIN " + str(sql)).scalars())
    assert "Limit" in plan and "ix_scores_model_id_score" in plan, plan


def _statements(url: str, work) -> list[str]:
    """The SQL statements ``work()`` sends to the database at ``url``."""
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    engine = get_engine(url)
    event.listen(engine, "before_cursor_execute", note)
    try:
        work()
    finally:
        event.remove(engine, "before_cursor_execute", note)
    return [s for s in seen if not s.lstrip().upper().startswith(("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK"))]


def test_overview_asks_the_same_few_queries_however_many_machines(plant):
    """Every machine's counts come from grouped queries over all machines, never a set of queries per machine."""
    url, seeded = plant
    before = machine_summaries(url)
    asked = _statements(url, lambda: machine_summaries(url))
    write_transaction(lambda session: [get_or_create_machine(session, "pump", f"id_{k:02d}") for k in range(5)], url)
    after = {s.machine: s for s in machine_summaries(url)}
    assert len(_statements(url, lambda: machine_summaries(url))) == len(asked) <= 8
    assert [after[s.machine] for s in before] == before
    assert after["pump/id_03"].clips == after["pump/id_03"].flagged == 0 and after["pump/id_03"].threshold is None


def test_drift_candidates_and_judged_ids_are_what_they_say(plant):
    """drift_candidates: the machine's clips at the rate until a time that the layout calls normal or someone judged
    (the normal ones from an index, the judged ones from the verdicts): the same as reading every clip."""
    url, seeded = plant
    with session_scope(url) as session:
        for machine in machines_matching(session):
            clips = list(session.scalars(select(Clip).where(Clip.machine_pk == machine.id)))
            judged = {a.clip_id for a in annotations_of_machines(session, [machine.id])}
            judged |= {a.clip_id for a in adjudications_of_machines(session, [machine.id])}
            until = sorted(c.ingested_at for c in clips)[len(clips) // 2]
            expected = sorted((c.id, c.label) for c in clips if c.ingested_at <= until and c.sample_rate == 16000
                              and (c.label == "normal" or c.id in judged))  # fmt: skip
            assert drift_candidates(session, machine.id, 16000, until) == expected
            assert drift_candidates(session, machine.id, None, until) == expected
            assert drift_candidates(session, machine.id, 8000, until) == []
            assert judged_ids(session, machine.id) == judged and judged
            assert any(label != "normal" for _, label in expected) and any(label == "normal" for _, label in expected)


def test_sqlite_answers_overview_and_drift_from_covering_indexes(plant):
    url, seeded = plant
    if not url.startswith("sqlite"):
        pytest.skip("EXPLAIN QUERY PLAN of SQLite's planner")
    asked = _statements(url, lambda: machine_summaries(url))
    with session_scope(url) as session:
        (found,) = machines_matching(session, seeded["machines"][0])
        asked += _statements(url, lambda: drift_candidates(session, found.id, 16000, found.active_model.created_at))
    with get_engine(url).connect() as conn:
        plans = "\n".join(str(row) for sql in asked for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql,
                          (1,) * sql.count("?")))  # fmt: skip
    assert "COVERING INDEX ix_scores_model_id_score_clip_id" in plans, plans
    assert "COVERING INDEX ix_clips_machine_pk_label_sample_rate_ingested_at_split_id" in plans, plans
    assert "SCAN clips " not in plans and "SCAN scores " not in plans, plans
