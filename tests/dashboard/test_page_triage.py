"""dashboard/pages/triage.py through AppTest: the annotator's name first, one-click verdicts that are
stored with who and what, an undo that appends, and the review list of disagreements."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.workflows.triage import record_verdict, triage_queue
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
    app.sidebar.text_input(key="annotator_input").input(name).run()  # the sidebar's "Your name", on every page
    no_exception(app)
    return app


def _shown_clip(app) -> str:
    """The clip on screen, as its caption names it (id and file name)."""
    return next(c.value for c in app.caption if c.value.startswith("clip #"))


def _queue_line(app) -> str:
    """The progress line: "3 judged this session; 12 left for fan/id_00" (the machine as Markdown shows it)."""
    return next(m.value for m in app.markdown if " judged this session; " in m.value)


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
    asked = "Verdicts record who made them: give **Your name** in the sidebar (then press Enter) to start."
    assert not VERDICT_BUTTONS & _labels(app) and "↶ Undo my last verdict" not in _labels(app)  # not before a name
    assert infos(app) == [asked]
    assert not any("judged this session" in m.value for m in app.markdown)
    _sign_in(app, "   ")  # blank: still asked
    assert not VERDICT_BUTTONS & _labels(app) and infos(app) == [asked]
    _sign_in(app, " alice ")
    assert _labels(app) >= VERDICT_BUTTONS
    assert _queue_line(app) == f"0 judged this session; {len(triage_queue(MACHINE))} left for {md_literal(MACHINE)}"
    assert not app.sidebar.text_input  # the field makes way for a line: the keyboard's focus leaves it
    app.switch_page("dashboard/pages/thresholds.py").run()  # every page: the same name
    assert "Working as **alice**" in [c.value for c in app.sidebar.caption]
    next(b for b in app.sidebar.button if b.label == "Change").click().run()  # another name, from any page
    assert app.sidebar.text_input(key="annotator_input").value == "alice"
    app.sidebar.text_input(key="annotator_input").input("").run()  # emptied: the change is given up
    assert "Working as **alice**" in [c.value for c in app.sidebar.caption]
    next(b for b in app.sidebar.button if b.label == "Change").click().run()
    app.sidebar.text_input(key="annotator_input").input("bob").run()
    assert "Working as **bob**" in [c.value for c in app.sidebar.caption]


def test_confirm_abnormal_stores_the_verdict_and_brings_the_next_clip(seeded, open_page):
    queue = triage_queue(MACHINE)
    app = _open_queue(open_page, "alice")
    assert _shown_clip(app) == f"clip #{queue[0].clip_id}"
    kind = _anomaly_types()[-1]
    app.selectbox(key=f"type_{queue[0].clip_id}").select(kind)
    app.text_input(key=f"note_{queue[0].clip_id}").input("rattles at 3 s")
    _click(app, "Confirm abnormal")

    (row,) = _annotations()
    assert (row.clip_id, row.annotator, row.verdict, row.anomaly_type, row.note, row.undoes_id) == (
        queue[0].clip_id, "alice", "abnormal", kind, "rattles at 3 s", None,
    )  # fmt: skip
    assert _shown_clip(app) == f"clip #{queue[1].clip_id}"
    assert _queue_line(app) == f"1 judged this session; {len(queue) - 1} left for {md_literal(MACHINE)}"
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
    assert _queue_line(app) == f"1 judged this session; {len(queue) - 1} left for {md_literal(MACHINE)}"

    _click(app, "↶ Undo my last verdict")
    rows = _annotations()
    assert len(rows) == 2
    assert (rows[0].id, rows[0].verdict, rows[0].undoes_id) == (verdict.id, "normal", None)  # kept as it was
    assert (rows[1].clip_id, rows[1].annotator, rows[1].undoes_id) == (queue[0].clip_id, "alice", verdict.id)
    assert _queue_line(app) == f"0 judged this session; {len(queue)} left for {md_literal(MACHINE)}"
    assert _shown_clip(app) == f"clip #{queue[0].clip_id}"
    assert [item.clip_id for item in triage_queue(MACHINE)] == [item.clip_id for item in queue]

    _click(app, "↶ Undo my last verdict")  # nothing left to undo: no new row
    assert len(_annotations()) == 2
    assert "Last saved: nothing to undo." in [c.value for c in app.caption]


def test_without_sign_in_a_name_without_an_account_judges_blind(seeded, open_page):
    """With AUTH=none a typed name's verdict counts as an annotator's: it is judged without the clip's label, file
    name or the review list, as a signed-in annotator judges; a name with an engineer's account sees them."""
    from core.workflows.users import add_user

    clip = triage_queue(MACHINE)[0]
    app = _open_queue(open_page, "alice")
    assert _shown_clip(app) == f"clip #{clip.clip_id}"
    shown = " ".join(m.value for m in app.markdown) + " ".join(c.value for c in app.caption)
    assert "label:" not in shown and clip.path.rsplit("/", 1)[-1] not in shown
    assert not any(e.label.startswith("Review list") for e in app.expander)

    add_user("erin", "engineer", "a long enough password")
    app = _open_queue(open_page, "erin")
    assert _shown_clip(app) == clip_caption(clip.clip_id, clip.path)
    assert any("label:" in m.value for m in app.markdown) or any("label:" in c.value for c in app.caption)


def test_a_disagreeing_second_annotator_puts_the_clip_on_the_review_list(seeded, open_page, monkeypatch):
    """Two pilots have the same clip on screen; Alice confirms it first, then Bob rejects it (not blind: a blind
    annotator sees no list of others' verdicts)."""
    monkeypatch.setenv("BLIND_REVIEW", "no")
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
                             "kept, and engineers settle the disagreement on the Review page.")  # fmt: skip
    alice.run()
    assert not any("also judged" in text for text in infos(alice))
    for app in (alice, bob):
        (review,) = [e for e in app.expander if e.label.startswith("Review list")]
        assert review.label == "Review list: 1 clip where annotators disagree"
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
    assert "Triage queue" in text and "characters" in text and "at most" in text  # the page walked, error included
    assert not [word for word in ("sqlalchemy", "INSERT", "psycopg", "Traceback") if word in text]


def test_a_name_too_long_to_record_is_refused_at_the_name_field(queue_on, open_page):
    app = _sign_in(open_page("triage"), "a" * 200)
    assert [e.value for e in app.sidebar.error] == [f"your name '{'a' * 23}…' is 200 characters; at most 128"]
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

    detail = f"anomaly type '{'k' * 23}…' is 70 characters; at most 64"
    assert [e.value for e in app.error] == [f"The verdict was not saved: {md_literal(detail)}"]
    _no_sql_shown(app)
    assert _annotations() == [] and "k" * 70 not in _anomaly_types()
    assert _shown_clip(app) == f"clip #{clip.clip_id}"  # still on screen, to judge again
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


# --- keyboard, listening, where am I -------------------------------------------------------------------------------


def _button(app, label: str):
    return next(b for b in app.button if b.label == label)


def test_verdict_buttons_undo_and_play_carry_their_keyboard_shortcuts(seeded, open_page):
    app = _open_queue(open_page, "alice")
    expected = {"Confirm abnormal": "A", "Reject (normal)": "N", "Unsure": "U", "↶ Undo my last verdict": "Z",
                "Play most anomalous": "P", "Skip for now": "S"}  # fmt: skip
    assert {label: _button(app, label).proto.shortcut.upper() for label in expected} == expected


def test_a_shared_link_opens_its_clip_and_the_address_follows_the_clip_on_screen(seeded, open_page):
    queue = triage_queue(MACHINE)
    app = _open_queue(open_page, "alice")
    assert app.query_params == {"machine": MACHINE, "clip": str(queue[0].clip_id)}  # shareable as it stands
    app.query_params.update({"machine": MACHINE, "clip": str(queue[3].clip_id)})
    app.run()
    no_exception(app)
    assert _shown_clip(app) == f"clip #{queue[3].clip_id}"
    _click(app, "Unsure")
    assert _shown_clip(app) == f"clip #{queue[0].clip_id}"  # then the queue, in its order
    assert app.query_params["clip"] == str(queue[0].clip_id)
    _click(app, "↶ Undo my last verdict")  # the undone clip comes back on screen, to judge again
    assert _shown_clip(app) == f"clip #{queue[3].clip_id}"


def test_a_link_to_a_clip_of_another_machine_opens_that_machine(seeded, open_page):
    other = triage_queue(SEEDED_MACHINES[1])[2]
    app = _open_queue(open_page, "alice")
    app.query_params.update({"machine": MACHINE, "clip": str(other.clip_id)})  # the clip's machine wins
    app.run()
    no_exception(app)
    assert app.sidebar.selectbox(key="machine_picker").value == SEEDED_MACHINES[1]
    assert _shown_clip(app) == f"clip #{other.clip_id}"


def test_the_progress_line_counts_this_sessions_verdicts_and_an_empty_queue_points_elsewhere(seeded, open_page):
    queue = triage_queue(MACHINE)
    for item in queue[2:]:  # someone else (same name, another session) judged all but two
        record_verdict(item.clip_id, "alice", "normal")
    app = _open_queue(open_page, "alice")
    assert _queue_line(app) == f"0 judged this session; 2 left for {md_literal(MACHINE)}"
    _click(app, "Confirm abnormal")
    assert _queue_line(app) == f"1 judged this session; 1 left for {md_literal(MACHINE)}"
    _click(app, "Reject (normal)")
    assert _queue_line(app) == f"2 judged this session; 0 left for {md_literal(MACHINE)}"
    assert not VERDICT_BUTTONS & _labels(app)
    other = SEEDED_MACHINES[1]
    left = len(triage_queue(other, annotator="alice"))
    go = f"{md_literal(other)}: {left} left"
    assert go in _labels(app)
    _click(app, go)
    assert app.sidebar.selectbox(key="machine_picker").value == other
    assert _queue_line(app) == f"2 judged this session; {left} left for {md_literal(other)}"
    assert app.query_params["machine"] == other


def test_play_most_anomalous_loops_that_span_and_half_speed_says_so(seeded, open_page):
    from core.signal.display import most_abnormal_window
    from core.workflows.explore import clip_details

    clip = triage_queue(MACHINE)[0]
    details = clip_details(clip.clip_id)
    start, end = most_abnormal_window(details.frame_errors, 512, details.sample_rate)
    app = _open_queue(open_page, "alice")
    (audio,) = app.get("audio")
    assert not audio.proto.loop
    _click(app, "Play most anomalous")
    (audio,) = app.get("audio")
    assert audio.proto.loop and audio.proto.autoplay and audio.proto.start_time == 0  # the span itself, sliced
    looping = f"Looping {start:.2f}–{end:.2f} s (the most anomalous second)"
    assert looping in [c.value for c in app.caption]
    app.toggle(key="triage_half").set_value(True).run()
    assert f"{looping} at half speed" in [c.value for c in app.caption]
    _click(app, "Play whole clip")
    (audio,) = app.get("audio")
    assert not audio.proto.loop and not any(c.value.startswith("Looping") for c in app.caption)


def test_a_link_naming_no_clip_id_or_a_deleted_clip_says_so_and_shows_the_queue(seeded, open_page):
    queue = triage_queue(MACHINE)
    app = _open_queue(open_page, "alice")
    first = _above(app, "Confirm abnormal")
    app.query_params.update({"machine": MACHINE, "clip": "12abc"})
    app.run()
    no_exception(app)
    assert [w.value for w in app.warning] == ["The link's clip “12abc” is not a clip number; here is your queue."]
    assert _shown_clip(app) == f"clip #{queue[0].clip_id}"
    assert _above(app, "Confirm abnormal") == first  # said under the buttons: they keep their place
    app.query_params.update({"machine": MACHINE, "clip": "999999"})
    app.run()
    no_exception(app)
    assert [w.value for w in app.warning] == ["Clip #999999 is not in the database; here is your queue."]
    assert _shown_clip(app) == f"clip #{queue[0].clip_id}"
    assert _above(app, "Confirm abnormal") == first
    app.run()
    assert not app.warning  # said once


def test_skip_for_now_has_a_key_of_its_own(seeded, open_page):
    """Keyboard-only judging: skip (S) has its key, shown on the button, and no two buttons share one."""
    queue = triage_queue(MACHINE)
    app = _open_queue(open_page, "alice")
    assert _button(app, "Skip for now").proto.shortcut.upper() == "S"
    keys = [b.proto.shortcut.upper() for b in app.button if b.proto.shortcut]
    assert len(keys) == len(set(keys)) >= 6, keys
    _click(app, "Skip for now")
    assert _shown_clip(app) == f"clip #{queue[1].clip_id}" and _annotations() == []


def test_on_the_last_clip_skip_stays_in_place_and_says_why_it_does_nothing(seeded, open_page):
    """It vanished on the last clip, and S then did nothing without a word."""
    queue = triage_queue(MACHINE)
    for item in queue[1:]:
        record_verdict(item.clip_id, "alice", "normal")
    app = _open_queue(open_page, "alice")
    skip = _button(app, "Skip for now")
    assert skip.disabled and skip.proto.help == "Nothing else waits in your queue: this is its last clip"
    assert skip.proto.shortcut.upper() == "S"


def test_my_unsure_list_keeps_the_address_on_the_clip_on_screen(seeded, open_page):
    """The shareable address names the clip on screen in the list of one's unsure verdicts too, so the link a
    pilot copies there opens that very clip for a colleague."""
    queue = triage_queue(MACHINE)
    for item in (queue[2], queue[4]):
        record_verdict(item.clip_id, "alice", "unsure", note="hum at 3 s" if item is queue[2] else "")
    app = _open_queue(open_page, "alice")
    app.sidebar.radio(key="triage_show").set_value("My unsure verdicts").run()
    no_exception(app)
    for clip_id in (queue[4].clip_id, queue[2].clip_id):  # the latest judged first, then the other one picked
        app.selectbox(key="unsure_clip").select(clip_id).run()
        no_exception(app)
        assert _shown_clip(app) == f"clip #{clip_id}"
        assert app.query_params == {"machine": MACHINE, "clip": str(clip_id)}
    said = next(c.value for c in app.caption if c.value.startswith("You judged"))  # under the buttons
    assert said.startswith(f"You judged #{queue[2].clip_id} unsure on ") and said.endswith(": “hum at 3 s”.")
    assert "Skip for now" not in _labels(app)  # nothing to skip to in this list

    colleague = _sign_in(open_page("triage"), "bob")
    colleague.query_params.update(app.query_params)  # the copied link, opened
    colleague.run()
    no_exception(colleague)
    assert _shown_clip(colleague) == f"clip #{queue[2].clip_id}"


def _above(app, label: str) -> list[str]:
    """The kinds of what the main area draws above the button ``label``, in page order (its layout, not its text)."""
    kinds: list[str] = []

    def walk(node) -> bool:
        for child in node.children.values():
            if getattr(child, "type", None) == "button" and child.label == label:
                return True
            kinds.append(str(getattr(child, "type", type(child).__name__)))
            if hasattr(child, "children") and walk(child):
                return True
        return False

    assert walk(app.main), f"no {label!r} button"
    return kinds


def test_the_verdict_buttons_stay_in_place_after_a_verdict_and_a_skip(seeded, open_page):
    """A repeated click must land on the same button: the last verdict saved and the clips skipped are said
    below the buttons, on a line there from the first clip on, never above them."""
    queue = triage_queue(MACHINE)
    app = _open_queue(open_page, "alice")
    first = _above(app, "Confirm abnormal")
    assert "Last saved: nothing yet this session." in [c.value for c in app.caption]
    _click(app, "Unsure")
    assert f"Last saved: #{queue[0].clip_id}: unsure." in [c.value for c in app.caption]
    assert _above(app, "Confirm abnormal") == first
    _click(app, "Skip for now")
    assert "Skipped for now: 1 clip, back at the end of the queue." in [c.value for c in app.caption]
    assert _above(app, "Confirm abnormal") == first

    again = _open_queue(open_page, "alice")  # a new session: on the list of unsure verdicts, nothing saved yet
    again.sidebar.radio(key="triage_show").set_value("My unsure verdicts").run()
    unsure = _above(again, "Confirm abnormal")
    _click(again, "Unsure")  # judged unsure again: still on the list, the buttons where they were
    assert f"Last saved: #{queue[0].clip_id}: unsure." in [c.value for c in again.caption]
    assert _above(again, "Confirm abnormal") == unsure


def test_the_verdict_buttons_stay_in_place_while_looping_beside_a_review_list_and_on_a_linked_clip(
    seeded, open_page, monkeypatch
):
    """What comes and goes is drawn below the buttons: the line under the player (looping or not), the review
    list of disagreements, and the line saying that a linked clip is not awaiting this pilot's verdict."""
    monkeypatch.setenv("BLIND_REVIEW", "no")  # not blind: the review list is shown
    clip = triage_queue(MACHINE)[0]
    alice, bob = _open_queue(open_page, "alice"), _open_queue(open_page, "bob")
    first = _above(bob, "Confirm abnormal")
    assert "The whole clip, 10.0 s" in [c.value for c in bob.caption]
    _click(bob, "Play most anomalous")
    assert any(c.value.startswith("Looping ") for c in bob.caption)
    assert _above(bob, "Confirm abnormal") == first
    _click(bob, "Play whole clip")

    _click(alice, "Confirm abnormal")
    _click(bob, "Reject (normal)")  # a disagreement: the review list appears
    assert any(e.label.startswith("Review list") for e in bob.expander)
    assert _above(bob, "Confirm abnormal") == first
    bob.query_params.update({"machine": MACHINE, "clip": str(clip.clip_id)})  # a link to the clip he judged
    bob.run()
    no_exception(bob)
    assert _shown_clip(bob) == clip_caption(clip.clip_id, clip.path)
    assert (f"Clip #{clip.clip_id} is not awaiting your verdict (judged already, or no longer flagged); a verdict "
            "adds yours.") in [c.value for c in bob.caption]  # fmt: skip
    assert _above(bob, "Confirm abnormal") == first
