"""The Review, Agreement and Audit pages, and the Triage page's second opinions, skips and own unsure verdicts,
through AppTest."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from core.access import Actor, Role
from core.workflows.review import adjudicate
from core.workflows.triage import record_verdict, triage_queue
from dashboard.components.annotator import UNNAMED
from dashboard.components.auth import ROLE_NOT_KNOWN, ROLE_SIGN_IN_OFF, role_shown
from dashboard.components.text import md_literal
from dashboard.registry import pages_for
from db.models import Adjudication
from db.session import session_scope
from tests.conftest import APP_SCRIPT, SEEDED_MACHINES, no_exception

MACHINE = SEEDED_MACHINES[0]
ANA, BOB = Actor("ana", Role.ANNOTATOR), Actor("bob", Role.ANNOTATOR)


def _click(app, label: str):
    next(b for b in app.button if b.label == label).click().run()
    no_exception(app)
    return app


def _submit(app):
    next(b for b in app.button if b.label == "Record the final verdict").click().run()
    no_exception(app)


def _as(actor: Actor, page: str, monkeypatch):
    """The app signed in as ``actor`` (``AUTH=local``, the session already holding them), on ``page``."""
    import streamlit as st

    st.cache_data.clear()
    monkeypatch.setenv("AUTH", "local")
    app = AppTest.from_file(APP_SCRIPT, default_timeout=60)
    app.session_state["signed_in_actor"] = actor
    app.run()
    no_exception(app)
    app.switch_page(f"dashboard/pages/{page}.py").run()
    no_exception(app)
    return app


def test_the_menu_offers_review_to_engineers_and_agreement_to_managers():
    titles = {role: [p.title for p in pages_for(Actor("x", role))] for role in Role}
    assert "Review" not in titles[Role.ANNOTATOR] and "Agreement" not in titles[Role.ANNOTATOR]
    assert "Review" in titles[Role.ENGINEER] and "Agreement" not in titles[Role.ENGINEER]
    assert {"Review", "Agreement"} <= set(titles[Role.MANAGER]) and {"Review", "Agreement"} <= set(titles[Role.ADMIN])


@pytest.fixture
def disputed(seeded, monkeypatch) -> int:
    monkeypatch.setenv("OVERLAP_FRACTION", "0")
    clip_id = triage_queue(MACHINE)[0].clip_id
    record_verdict(clip_id, "ana", "abnormal", anomaly_type="bearing", note="grinding", actor=ANA)
    record_verdict(clip_id, "bob", "normal", note="the conveyor", actor=BOB)
    return clip_id


def test_review_shows_every_verdict_and_records_the_final_one(disputed, monkeypatch):
    app = _as(Actor("eve", Role.ENGINEER), "review", monkeypatch)
    assert [t.value for t in app.title] == ["Review queue"]
    assert any(f"Awaiting a final verdict: **1 clip** of **{md_literal(MACHINE)}**." in m.value for m in app.markdown)
    table = app.dataframe[0].value
    assert table[["annotator", "role", "verdict", "anomaly type", "note"]].values.tolist() == [
        ["ana", "annotator", "abnormal", "bearing", "grinding"],
        ["bob", "annotator", "normal", "", "the conveyor"],
    ]
    app.radio(key=f"ruling_{disputed}").set_value("normal")
    app.text_area(key=f"ruling_reason_{disputed}").input("the conveyor, checked on site")
    _submit(app)
    with session_scope() as session:
        row = session.scalars(select(Adjudication)).one()
    assert (row.clip_id, row.adjudicator, row.role, row.verdict, row.reason) == (
        disputed, "eve", "engineer", "normal", "the conveyor, checked on site")  # fmt: skip
    assert "Nothing to review for this machine." in [s.value for s in app.success]  # and no count of 0 above it
    assert not any("Awaiting a final verdict" in m.value for m in app.markdown)
    app.sidebar.radio(key="review_show").set_value("Everything, settled included").run()
    assert any(md_literal("the conveyor, checked on site") in m.value for e in app.expander for m in e.markdown)


def test_the_clip_picker_opens_on_a_disputed_clip_before_unsure_ones(seeded, monkeypatch):
    """It opened on an unsure clip with a lower id although a disputed clip waited."""
    monkeypatch.setenv("OVERLAP_FRACTION", "0")
    unsure, disputed = sorted(c.clip_id for c in triage_queue(MACHINE))[:2]
    record_verdict(unsure, "ana", "unsure", actor=ANA)
    record_verdict(disputed, "ana", "abnormal", actor=ANA)
    record_verdict(disputed, "bob", "normal", actor=BOB)
    app = _as(Actor("eve", Role.ENGINEER), "review", monkeypatch)
    picker = app.selectbox(key="review_clip")
    assert picker.options == [f"#{disputed} · disputed", f"#{unsure} · unsure"]
    assert picker.value == disputed and app.radio(key=f"ruling_{disputed}").value is None


def test_with_sign_in_off_the_final_verdict_needs_and_records_the_sidebars_name(disputed, open_page):
    """It was recorded as "local user" when no name had been given in the session."""
    app = open_page("review")
    app.radio(key=f"ruling_{disputed}").set_value("normal")
    app.text_area(key=f"ruling_reason_{disputed}").input("checked on site")
    _submit(app)
    assert [e.value for e in app.error] == [f"Not recorded. {UNNAMED}"]
    with session_scope() as session:
        assert session.scalars(select(Adjudication)).all() == []
    app.sidebar.text_input(key="annotator_input").input("eve").run()  # the form keeps what was chosen and typed
    _submit(app)
    with session_scope() as session:
        row = session.scalars(select(Adjudication)).one()
    assert (row.clip_id, row.adjudicator, row.verdict, row.reason) == (disputed, "eve", "normal", "checked on site")


def test_review_refuses_an_empty_reason(disputed, monkeypatch):
    app = _as(Actor("eve", Role.ENGINEER), "review", monkeypatch)
    app.radio(key=f"ruling_{disputed}").set_value("abnormal")
    _submit(app)
    assert any("give the reason" in e.value for e in app.error)
    with session_scope() as session:
        assert session.scalars(select(Adjudication)).all() == []


def test_the_final_verdict_starts_unchosen_and_is_never_recorded_unchosen(disputed, monkeypatch):
    """"abnormal" was preselected: a reviewer could record it without choosing."""
    app = _as(Actor("eve", Role.ENGINEER), "review", monkeypatch)
    assert app.radio(key=f"ruling_{disputed}").value is None
    app.text_area(key=f"ruling_reason_{disputed}").input("the conveyor, checked on site")
    _submit(app)
    assert [e.value for e in app.error] == ["Not recorded: choose the final verdict, abnormal or normal."]
    with session_scope() as session:
        assert session.scalars(select(Adjudication)).all() == []
    assert app.text_area(key=f"ruling_reason_{disputed}").value == "the conveyor, checked on site"  # not typed again
    app.radio(key=f"ruling_{disputed}").set_value("normal")
    _submit(app)
    with session_scope() as session:
        assert [(r.clip_id, r.verdict) for r in session.scalars(select(Adjudication))] == [(disputed, "normal")]
    assert f"Saved: #{disputed} settled as normal." in [s.value for s in app.success]
    app.sidebar.radio(key="review_show").set_value("Everything, settled included").run()  # the settled clip again
    assert app.radio(key=f"ruling_{disputed}").value is None
    assert not app.text_area(key=f"ruling_reason_{disputed}").value  # the form starts empty again


def _in_order(block) -> list:
    """The elements under ``block``, depth first, in the order they are on the page."""
    found = []
    for child in block.children.values():
        found += _in_order(child) if getattr(child, "children", None) else [child]
    return found


def test_the_verdicts_and_the_final_verdict_form_come_before_the_clips_charts(disputed, monkeypatch):
    """They came after the waveform, error charts, STFT and mel spectrogram, about 1,500 px down."""
    app = _as(Actor("eve", Role.ENGINEER), "review", monkeypatch)
    page = _in_order(app.main)
    kinds = [e.type for e in page]
    verdicts = next(i for i, e in enumerate(page) if e.type == "subheader" and e.value == "Verdicts")
    button = next(i for i, e in enumerate(page) if getattr(e, "label", None) == "Record the final verdict")
    assert kinds.index("audio") < verdicts < kinds.index("dataframe") < button < kinds.index("plotly_chart")
    assert kinds.count("plotly_chart") == 5  # waveform, error over time and per band, STFT, mel spectrogram
    (charts,) = [i for i, e in enumerate(page) if e.type == "subheader" and e.value == "The clip"]
    assert button < charts < kinds.index("plotly_chart")


def test_agreement_page_for_managers(disputed, monkeypatch):
    adjudicate(disputed, "normal", "the conveyor", actor=Actor("eve", Role.ENGINEER))
    app = _as(Actor("max", Role.MANAGER), "agreement", monkeypatch)
    assert [t.value for t in app.title] == ["Annotator agreement"]
    assert [s.value for s in app.subheader] == list(SEEDED_MACHINES)
    first = [(m.label, m.value) for m in app.metric][:4]  # the first machine's; the other has no double clips
    assert first == [("Clips judged twice or more", "1"), ("Raw agreement", "0.00"), ("Cohen's kappa", "n/a"),
                     ("Krippendorff's alpha", "n/a")]  # fmt: skip
    people = app.dataframe[1].value
    assert people.set_index("annotator")["overruled"].to_dict() == {"ana": 1, "bob": 0}


def test_agreement_tables_read_undefined_figures_as_the_headline_does(disputed, monkeypatch):
    """The pair table showed an undefined kappa as "None" under a headline saying "n/a"."""
    adjudicate(disputed, "normal", "the conveyor", actor=Actor("eve", Role.ENGINEER))
    alone = next(c.clip_id for c in triage_queue(MACHINE) if c.clip_id != disputed)
    record_verdict(alone, "cy", "normal", actor=Actor("cy", Role.ANNOTATOR))  # cy: never adjudicated
    app = _as(Actor("max", Role.MANAGER), "agreement", monkeypatch)
    pairs, people = app.dataframe[0].value, app.dataframe[1].value
    assert pairs.values.tolist() == [["ana & bob", 1, "0.00", "n/a"]]
    assert people.set_index("annotator")["overruled share"].to_dict() == {"ana": "1.00", "bob": "0.00", "cy": "n/a"}


def test_a_second_annotator_judges_blind_and_nobody_gets_a_clip_twice(seeded, monkeypatch):
    monkeypatch.setenv("OVERLAP_FRACTION", "1")
    first = triage_queue(MACHINE)[0]
    record_verdict(first.clip_id, "ana", "abnormal", note="secret opinion", actor=ANA)
    ana = _as(ANA, "triage", monkeypatch)
    assert not any(c.value.startswith(f"clip #{first.clip_id}") for c in ana.caption)  # never served again
    bob = _as(BOB, "triage", monkeypatch)
    assert any(c.value == f"clip #{first.clip_id}" for c in bob.caption)  # still waits for a second annotator
    shown = " ".join([m.value for m in bob.markdown] + [c.value for c in bob.caption] + [i.value for i in bob.info])
    assert "secret opinion" not in shown and "ana" not in shown  # blind: nobody else's verdict first


def test_skip_brings_the_clip_back_at_the_end_and_own_unsure_verdicts_come_back(seeded, open_page, monkeypatch):
    monkeypatch.setenv("OVERLAP_FRACTION", "0")
    queue = triage_queue(MACHINE)
    app = open_page("triage")
    app.sidebar.text_input(key="annotator_input").input("carol").run()
    _click(app, "Skip for now")
    assert any(c.value.startswith(f"clip #{queue[1].clip_id}") for c in app.caption)
    assert "Skipped for now: 1 clip, back at the end of the queue." in [c.value for c in app.caption]
    _click(app, "Unsure")
    app.sidebar.radio(key="triage_show").set_value("My unsure verdicts").run()
    no_exception(app)
    assert any(f"**1 clip** of **{md_literal(MACHINE)}** you judged unsure" in m.value for m in app.markdown)
    assert any(c.value.startswith(f"clip #{queue[1].clip_id}") for c in app.caption)
    _click(app, "Reject (normal)")  # decided: it leaves the list
    assert any(f"No unsure verdict of yours stands on {md_literal(MACHINE)}" in s.value for s in app.success)


def test_the_audit_log_shows_each_verdict_to_the_second_for_managers(seeded, monkeypatch):
    """A manager's Audit page lists the verdict just recorded, its time to the second (no ISO microseconds)."""
    clip_id = triage_queue(MACHINE)[0].clip_id
    record_verdict(clip_id, "ana", "abnormal", anomaly_type="bearing", note="grinding", actor=ANA)
    app = _as(Actor("meg", Role.MANAGER), "audit", monkeypatch)
    events = app.dataframe[0].value
    verdicts = events[events["user"] == "ana"]
    assert len(verdicts) >= 1, events
    assert verdicts["at"].str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d").all(), verdicts["at"].tolist()
    assert "Newest first. Double-click a detail to read it whole." in [c.value for c in app.caption]  # it is cut


def test_with_sign_in_off_review_audit_and_explore_say_one_role_for_whoever_acted(disputed, open_page):
    """With sign-in off the Audit page said "admin" (and Review's final verdicts "(admin)") for the people whose
    verdicts Review said "not known": nobody's role is checked, and every page now says so in the same words."""
    cy = Actor("cy", Role.ADMIN, operator=True)  # the dashboard's person with sign-in off, named "cy"
    record_verdict(disputed, "cy", "abnormal", actor=cy)
    app = open_page("review", name="Ann")
    table = app.dataframe[0].value
    assert dict(zip(table["annotator"], table["role"], strict=True)) == {
        "ana": "annotator", "bob": "annotator", "cy": ROLE_SIGN_IN_OFF}  # fmt: skip
    app.radio(key=f"ruling_{disputed}").set_value("normal")
    app.text_area(key=f"ruling_reason_{disputed}").input("checked on site")
    _submit(app)
    app.sidebar.radio(key="review_show").set_value("Everything, settled included").run()
    said = [m.value for m in app.markdown if "checked on site" in m.value]
    assert len(said) == 1 and f"Ann ({ROLE_SIGN_IN_OFF}): **normal**" in said[0], said

    app.switch_page("dashboard/pages/audit.py").run()
    no_exception(app)
    events = app.dataframe[0].value
    roles = {(e.user, e.action): e.role for e in events.itertuples()}
    assert roles[("cy", "judge")] == roles[("Ann", "adjudicate")] == ROLE_SIGN_IN_OFF  # as on Review
    assert roles[("ana", "judge")] == "annotator"  # a role that was checked (her verdict came signed in)

    app.switch_page("dashboard/pages/explore.py").run()
    no_exception(app)
    next(s for s in app.selectbox if s.label == "Clip").set_value(disputed).run()
    assert any(f"Ann ({md_literal(ROLE_SIGN_IN_OFF)}): **final verdict: normal**" in m.value for m in app.markdown)


def test_with_sign_in_on_roles_are_shown_as_recorded(monkeypatch):
    monkeypatch.setenv("AUTH", "local")
    assert [role_shown(role) for role in ("admin", "engineer", None)] == ["admin", "engineer", ROLE_NOT_KNOWN]
    monkeypatch.setenv("AUTH", "none")
    assert [role_shown(role) for role in ("admin", "engineer", None)] == [ROLE_SIGN_IN_OFF, "engineer",
                                                                          ROLE_SIGN_IN_OFF]  # fmt: skip
