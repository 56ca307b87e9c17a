"""dashboard/pages/overview.py through AppTest: the empty state, and the seeded plant's counts."""

from __future__ import annotations

from core.triage import machine_summaries, record_verdict, triage_queue
from tests.conftest import SEEDED_MACHINES, infos, no_exception


def _metrics(app) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def test_empty_database_shows_how_to_add_clips(open_page):
    app = open_page("overview")
    assert [t.value for t in app.title] == ["Overview"]
    assert any("No clips yet" in text and "Data" in text for text in infos(app))
    assert not app.metric and not app.dataframe


def test_seeded_plant_shows_counts_machines_and_review_progress(seeded, open_page):
    summaries = machine_summaries()
    flagged = sum(s.flagged for s in summaries)
    assert flagged > 0
    app = open_page("overview")
    assert not infos(app)
    metrics = _metrics(app)
    assert metrics["Clips"] == "32" and metrics["Machines"] == "2"
    assert metrics["Flagged"] == metrics["Awaiting review"] == str(flagged)
    assert metrics["Flags reviewed"] == "0%"
    machines = app.dataframe[0].value
    assert list(machines["machine"]) == list(SEEDED_MACHINES)
    assert list(machines["detector"]) == ["mahalanobis v1", "mahalanobis v1"]

    first = triage_queue(SEEDED_MACHINES[0])[0]
    record_verdict(first.clip_id, "alice", "abnormal")
    app.run()
    no_exception(app)
    metrics = _metrics(app)
    assert metrics["Awaiting review"] == str(flagged - 1)
    assert metrics["Flags reviewed"] == f"{1 / flagged:.0%}"
