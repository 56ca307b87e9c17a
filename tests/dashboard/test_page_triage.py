"""dashboard/pages/triage.py through AppTest: the annotator's name first, one-click verdicts that are
stored with who and what, an undo that appends, and the review list of disagreements."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.workflows.triage import triage_queue
from dashboard.components.clip_view import clip_caption
from dashboard.components.text import md_literal
from db.models import Annotation
from db.queries import anomaly_type_names
from db.session import session_scope
from tests.conftest import SEEDED_MACHINES, infos, no_exception

MACHINE = SEEDED_MACHINES[0]  # the machine the sidebar picks first
VERDICT_BUTTONS = {"Confirm abnormal", "Reject (normal)", "Unsure"}


def _labels(app) -> set[str]:
    return {b.label for b in app.button}


def _click(app, label: str):
    next(b for b in app.button if b.label == label).click().run()
    no_exception(app)
    return app


def _sign_in(app, name: str):
    app.text_input(key="annotator_input").input(name)
    app.form_submit_button[0].click().run()
    no_exception(app)
    return app


def _shown_clip(app) -> str:
    """The clip on screen, as its caption names it (id and file name)."""
    return next(c.value for c in app.caption if c.value.startswith("clip #"))


def _queue_line(app) -> str:
    return next(m.value for m in app.markdown if "await a verdict" in m.value)


def _annotations() -> list[Annotation]:
    with session_scope() as session:
        rows = list(session.scalars(select(Annotation).order_by(Annotation.id)))
        session.expunge_all()
        return rows


def _anomaly_types() -> list[str]:
    with session_scope() as session:
        return anomaly_type_names(session)


def _open_queue(open_page, name: str):
    app = _sign_in(open_page("triage"), name)
    assert _labels(app) >= VERDICT_BUTTONS
    return app


def test_empty_database_asks_the_name_then_says_no_model_yet(open_page):
    app = open_page("triage")
    assert [t.value for t in app.title] == ["Triage queue"]
    assert not VERDICT_BUTTONS & _labels(app)
    _sign_in(app, "alice")
    assert any("No machine has a trained model yet" in text for text in infos(app))


def test_the_queue_needs_an_annotator_name(seeded, open_page):
    app = open_page("triage")
    assert _labels(app) == {"Start annotating"}  # no verdict (nor undo) before a name
    assert not any("await a verdict" in m.value for m in app.markdown)
    _sign_in(app, "   ")  # blank: still asked
    assert _labels(app) == {"Start annotating"}
    _sign_in(app, " alice ")
    assert _labels(app) >= VERDICT_BUTTONS
    assert _queue_line(app).startswith(f"**{len(triage_queue(MACHINE))}** flagged clip(s) of **{md_literal(MACHINE)}**")
    assert "Annotating as **alice**" in [c.value for c in app.sidebar.caption]


def test_confirm_abnormal_stores_the_verdict_and_brings_the_next_clip(seeded, open_page):
    queue = triage_queue(MACHINE)
    app = _open_queue(open_page, "alice")
    assert _shown_clip(app) == clip_caption(queue[0].clip_id, queue[0].path)
    kind = _anomaly_types()[-1]
    app.selectbox(key=f"type_{queue[0].clip_id}").select(kind)
    app.text_input(key=f"note_{queue[0].clip_id}").input("rattles at 3 s")
    _click(app, "Confirm abnormal")

    (row,) = _annotations()
    assert (row.clip_id, row.annotator, row.verdict, row.anomaly_type, row.note, row.undoes_id) == (
        queue[0].clip_id, "alice", "abnormal", kind, "rattles at 3 s", None,
    )  # fmt: skip
    assert _shown_clip(app) == clip_caption(queue[1].clip_id, queue[1].path)
    assert _queue_line(app).startswith(f"**{len(queue) - 1}** flagged")
    assert f"Last saved: #{queue[0].clip_id}: abnormal ({kind})." in [c.value for c in app.caption]

    # A new anomaly type typed while confirming joins the team's list.
    app.selectbox(key=f"type_{queue[1].clip_id}").select("+ new type…").run()
    app.text_input(key=f"newtype_{queue[1].clip_id}").input("bearing whine")
    _click(app, "Confirm abnormal")
    assert [(r.clip_id, r.anomaly_type) for r in _annotations()][-1] == (queue[1].clip_id, "bearing whine")
    assert "bearing whine" in _anomaly_types()


def test_undo_appends_a_row_and_returns_the_clip_to_the_queue(seeded, open_page):
    queue = triage_queue(MACHINE)
    app = _open_queue(open_page, "alice")
    _click(app, "Reject (normal)")
    (verdict,) = _annotations()
    assert (verdict.clip_id, verdict.verdict, verdict.anomaly_type) == (queue[0].clip_id, "normal", None)
    assert _queue_line(app).startswith(f"**{len(queue) - 1}** flagged")

    _click(app, "↶ Undo my last verdict")
    rows = _annotations()
    assert len(rows) == 2
    assert (rows[0].id, rows[0].verdict, rows[0].undoes_id) == (verdict.id, "normal", None)  # kept as it was
    assert (rows[1].clip_id, rows[1].annotator, rows[1].undoes_id) == (queue[0].clip_id, "alice", verdict.id)
    assert _queue_line(app).startswith(f"**{len(queue)}** flagged")
    assert _shown_clip(app) == clip_caption(queue[0].clip_id, queue[0].path)
    assert [item.clip_id for item in triage_queue(MACHINE)] == [item.clip_id for item in queue]

    _click(app, "↶ Undo my last verdict")  # nothing left to undo: no new row
    assert len(_annotations()) == 2
    assert "Last saved: nothing to undo." in [c.value for c in app.caption]


def test_a_disagreeing_second_annotator_puts_the_clip_on_the_review_list(seeded, open_page):
    """Two pilots have the same clip on screen; Alice confirms it first, then Bob rejects it."""
    clip = triage_queue(MACHINE)[0]
    alice = _open_queue(open_page, "alice")
    bob = _open_queue(open_page, "bob")
    assert _shown_clip(alice) == _shown_clip(bob) == clip_caption(clip.clip_id, clip.path)
    assert not any(e.label.startswith("Review list") for e in alice.expander)

    _click(alice, "Confirm abnormal")
    _click(bob, "Reject (normal)")  # the clip has left Bob's queue meanwhile: his verdict must still count

    assert {(r.annotator, r.verdict) for r in _annotations() if r.clip_id == clip.clip_id} == {
        ("alice", "abnormal"), ("bob", "normal"),
    }  # fmt: skip
    assert infos(bob)[0] == (f"#{clip.clip_id} was also judged by others (alice said abnormal); every verdict is "
                             "kept, and the clip is on the review list of disagreements.")  # fmt: skip
    alice.run()
    assert not any("also judged" in text for text in infos(alice))
    for app in (alice, bob):
        (review,) = [e for e in app.expander if e.label.startswith("Review list")]
        assert review.label == "Review list: 1 clip(s) where annotators disagree"
        assert [m.value for m in review.markdown] == [
            f"- #{clip.clip_id} {md_literal(clip.path.rsplit('/', 1)[-1])} — alice: abnormal, bob: normal"
        ]


def test_confirm_without_choosing_a_type_stores_no_type(seeded, open_page):
    app = _open_queue(open_page, "carol")
    _click(app, "Confirm abnormal")
    (row,) = _annotations()
    assert (row.verdict, row.anomaly_type) == ("abnormal", None)  # never a type nobody chose


# --- names longer than the database keeps, on every backend ----------------------------------------------------------


@pytest.fixture
def queue_on(any_db_url, tmp_path, monkeypatch) -> str:
    """The app's database (``DATABASE_URL``) on each backend: one machine, a Mahalanobis model, every clip flagged."""
    from core.datasets.demo import write_plant
    from core.workflows.ingest import ingest
    from core.workflows.scoring import score
    from core.workflows.training import train
    from core.workflows.tuning import set_threshold

    monkeypatch.setenv("DATABASE_URL", any_db_url)
    write_plant(tmp_path / "plant", machines=1, normal=8, abnormal=2, duration_s=1.0, seed=0, n_jobs=1)
    ingest([str(tmp_path / "plant")], n_jobs=1)
    train(MACHINE, "mahalanobis")
    score(n_jobs=1)
    set_threshold(MACHINE, -1e9, set_by="test", reason="flag every clip")
    assert triage_queue(MACHINE)
    return any_db_url


def _page_text(app) -> str:
    """Everything the page shows (each element's full content), for what must never be on it."""

    def walk(node):
        yield str(getattr(node, "proto", ""))
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    return "\n".join(walk(app._tree))


def _no_sql_shown(app) -> None:
    text = _page_text(app)
    assert "Triage queue" in text and "characters; at most" in text  # the walk sees the page, error included
    assert not [word for word in ("sqlalchemy", "INSERT", "psycopg", "Traceback") if word in text]


def test_a_name_too_long_to_record_is_refused_at_the_name_form(queue_on, open_page):
    app = _sign_in(open_page("triage"), "a" * 200)
    assert [e.value for e in app.error] == [f"your name '{'a' * 23}…' is 200 characters; at most 128"]
    assert not VERDICT_BUTTONS & _labels(app)  # still asked for a name
    _no_sql_shown(app)
    _sign_in(app, "a" * 128)
    assert _labels(app) >= VERDICT_BUTTONS


def test_an_anomaly_type_too_long_to_store_shows_the_error_and_saves_nothing(queue_on, open_page):
    clip = triage_queue(MACHINE)[0]
    app = _open_queue(open_page, "alice")
    app.selectbox(key=f"type_{clip.clip_id}").select("+ new type…").run()
    app.text_input(key=f"newtype_{clip.clip_id}").input("k" * 70)
    _click(app, "Confirm abnormal")

    assert [e.value for e in app.error] == [
        f"The verdict was not saved: anomaly type '{'k' * 23}…' is 70 characters; at most 64"
    ]
    _no_sql_shown(app)
    assert _annotations() == [] and "k" * 70 not in _anomaly_types()
    assert _shown_clip(app) == clip_caption(clip.clip_id, clip.path)  # still on screen, to judge again
    app.text_input(key=f"newtype_{clip.clip_id}").input("k" * 64)
    _click(app, "Confirm abnormal")
    assert [(r.clip_id, r.anomaly_type) for r in _annotations()] == [(clip.clip_id, "k" * 64)]


def test_a_database_failure_while_saving_shows_one_line_without_the_sql(seeded, open_page, monkeypatch):
    from sqlalchemy.exc import DataError

    import core.workflows.triage

    def refuse(*_args, **_kwargs):
        raise DataError("INSERT INTO annotations (annotator) VALUES (%(annotator)s)", {"annotator": "x"},
                        Exception("value too long for type character varying(128)"))  # fmt: skip

    monkeypatch.setattr(core.workflows.triage, "record_verdict", refuse)
    app = _open_queue(open_page, "alice")
    _click(app, "Reject (normal)")
    assert [e.value for e in app.error] == [
        "The verdict was not saved: the database could not be used: value too long for type character varying(128); "
        "try again, and if it persists, report it with the server log"
    ]
    text = _page_text(app)
    assert "INSERT" not in text and "sqlalchemy" not in text
    assert _annotations() == []
