"""The triage queue and Overview's counts at scale: chosen, ordered and limited by the database, yet exactly
what the label policy says, on SQLite and PostgreSQL (a small bulk-seeded plant; bench/db_scale.py times a big one)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from core.workflows.labels import awaits_verdict, labels_for_machines
from core.workflows.triage import machine_summaries, queue_size, triage_queue
from db.queries import active_threshold, awaiting_verdict, machines_matching, scored_clips
from db.session import get_engine, session_scope

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
