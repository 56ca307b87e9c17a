"""dashboard/pages/explore.py through AppTest: a clip of the chosen machine with its player, waveform and
spectrogram, beside a typical normal clip of the same machine."""

from __future__ import annotations

import json

import pytest

from core.workflows.explore import clip_details, typical_normal_clip
from core.workflows.ingest import ingest
from dashboard.components.auth import ROLE_SIGN_IN_OFF
from dashboard.components.clip_view import clip_caption
from dashboard.components.text import md_literal
from db.queries import machines_matching
from db.session import session_scope
from tests.conftest import SEEDED_MACHINES, infos, no_exception, tone, write_wav


def _column(app, subheader: str):
    (column,) = [c for c in app.columns if [s.value for s in c.subheader] == [subheader]]
    return column


def _chart_titles(block) -> list[str]:
    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in block.get("plotly_chart")]


def _clip_ids(machine: str, label: str) -> list[int]:
    with session_scope() as session:
        (m,) = [x for x in machines_matching(session, machine) if x.key == machine]
        return [c.id for c in m.clips if c.label == label]


def test_empty_database_says_there_is_nothing_yet(open_page):
    app = open_page("explore")
    assert [t.value for t in app.title] == ["Explore a clip"]
    assert any("No machine" in text for text in infos(app))
    assert not app.selectbox and not app.get("audio")


def test_a_clip_of_the_chosen_machine_beside_a_typical_normal_clip(seeded, open_page):
    machine = SEEDED_MACHINES[1]
    clip_id = _clip_ids(machine, "abnormal")[-1]
    app = open_page("explore")
    app.sidebar.selectbox(key="machine_picker").select(machine).run()
    no_exception(app)
    clips = next(s for s in app.selectbox if s.label == "Clip")
    offered = sorted(int(option.split(" ")[0].lstrip("#")) for option in clips.options)
    assert offered == sorted(_clip_ids(machine, "normal") + _clip_ids(machine, "abnormal"))
    assert clips.value != clip_id  # the page opens on another clip
    clips.select(clip_id).run()
    no_exception(app)

    here, typical = _column(app, "This clip"), _column(app, "A typical normal clip")
    chosen, normal = clip_details(clip_id), clip_details(typical_normal_clip(clip_id))
    assert chosen.machine == normal.machine == machine and normal.label == "normal" and normal.split == "train"
    for column, details in ((here, chosen), (typical, normal)):
        assert len(column.get("audio")) == 1
        assert clip_caption(details.clip_id, details.path) in [c.value for c in column.caption]
        assert any(f"label: {details.label}" in m.value for m in column.markdown)
        titles = _chart_titles(column)
        assert "Waveform" in titles and "Mel spectrogram" in titles
    assert not infos(app)


def _y_range(column, title: str) -> list[float]:
    (spec,) = [json.loads(c.proto.spec) for c in column.get("plotly_chart")
               if json.loads(c.proto.spec)["layout"]["title"]["text"] == title]  # fmt: skip
    return spec["layout"]["yaxis"]["range"]


def _scores_and_threshold(machine: str) -> tuple[dict[int, float], float]:
    from db.queries import active_threshold, clip_scores

    with session_scope() as session:
        (m,) = [x for x in machines_matching(session, machine) if x.key == machine]
        scores = clip_scores(session, m.active_model_id, [c.id for c in m.clips])
        return scores, active_threshold(session, m.active_model_id).value


def test_clips_are_offered_with_their_score_and_by_highest_score_first(seeded, open_page):
    """Each option names the active model's score and whether it is flagged; "highest score" orders them so, and
    the clip on screen stays when the order changes."""
    machine = SEEDED_MACHINES[1]
    scores, threshold = _scores_and_threshold(machine)
    app = open_page("explore")
    app.sidebar.selectbox(key="machine_picker").select(machine).run()
    clips = next(s for s in app.selectbox if s.label == "Clip")
    assert [int(o.split(" ")[0].lstrip("#")) for o in clips.options] == sorted(scores)  # by id first
    lowest = min(scores, key=scores.get)
    clips.select(lowest).run()
    app.radio(key="explore_order").set_value("highest score").run()
    no_exception(app)
    clips = next(s for s in app.selectbox if s.label == "Clip")
    ordered = [int(o.split(" ")[0].lstrip("#")) for o in clips.options]
    assert ordered == sorted(scores, key=lambda c: -scores[c])
    assert clips.value == lowest  # still the clip on screen
    for option in clips.options:
        clip_id = int(option.split(" ")[0].lstrip("#"))
        assert f"score {scores[clip_id]:.4g}" in option
        assert ("flagged" in option) == (scores[clip_id] > threshold)
    assert any("flagged" in o for o in clips.options) and not all("flagged" in o for o in clips.options)


def test_the_two_clips_error_charts_share_their_scale(seeded, open_page):
    """Scaled alone, a typical normal clip's small errors would fill its chart as an abnormal clip's do."""
    machine = SEEDED_MACHINES[1]
    clip_id = _clip_ids(machine, "abnormal")[-1]
    app = open_page("explore")
    app.sidebar.selectbox(key="machine_picker").select(machine).run()
    next(s for s in app.selectbox if s.label == "Clip").select(clip_id).run()
    no_exception(app)
    here, typical = _column(app, "This clip"), _column(app, "A typical normal clip")
    chosen, normal = clip_details(clip_id), clip_details(typical_normal_clip(clip_id))
    for title, errors in (("Error over time", "frame_errors"), ("Error per mel band", "band_errors")):
        low, high = _y_range(here, title)
        assert _y_range(typical, title) == [low, high]
        both = getattr(chosen, errors) + getattr(normal, errors)
        assert low <= min(both) and max(both) <= high and high < max(both) * 1.1
    assert "The two clips' detector error charts share their scales." in [c.value for c in app.caption]


def test_unscored_clips_show_without_a_typical_one(open_page, tmp_path):
    for k in range(2):
        write_wav(tmp_path / "plant" / "fan" / "id_00" / "normal" / f"{k}.wav", tone(1.0, seed=k))
    ingest([str(tmp_path / "plant")], n_jobs=1)
    app = open_page("explore")
    here = _column(app, "This clip")
    assert len(here.get("audio")) == 1
    assert "Waveform" in _chart_titles(here) and "Mel spectrogram" in _chart_titles(here)
    typical = _column(app, "A typical normal clip")
    assert infos(typical) == ["No scored normal training clip of this machine to compare with yet."]
    assert not typical.get("audio")


def test_each_clip_has_the_stft_view_beside_the_mel_one(seeded, open_page):
    app = open_page("explore")
    no_exception(app)
    for subheader in ("This clip", "A typical normal clip"):
        column = _column(app, subheader)
        tabs = {t.label: t for t in column.tabs}
        assert list(tabs) == ["Mel spectrogram", "STFT"]
        assert _chart_titles(tabs["STFT"]) == ["STFT (dB)"] and _chart_titles(tabs["Mel spectrogram"]) == [
            "Mel spectrogram"
        ]
        (stft,) = [json.loads(c.proto.spec) for c in tabs["STFT"].get("plotly_chart")]
        assert stft["data"][0]["type"] == "heatmap" and stft["layout"]["yaxis"]["title"]["text"] == "frequency (Hz)"


def test_the_worst_second_button_has_room_for_its_label(open_page, tmp_path):
    """Explore shows two clips side by side: the button's column is wider there than on Triage."""
    from core.workflows.training import train

    for k in range(6):
        write_wav(tmp_path / "plant" / "fan" / "id_00" / "normal" / f"{k}.wav", tone(2.0, seed=k))
    ingest([str(tmp_path / "plant")], n_jobs=1)
    train(None, "autoencoder", epochs=1)  # frame by frame errors: the worst second exists
    from core.workflows.scoring import score

    score()
    app = open_page("explore")
    here = _column(app, "This clip")
    (column,) = [c for c in here.columns if [b.label for b in c.button] == ["Play most anomalous"]]
    assert column.weight == pytest.approx(0.6)  # 3/5 of the row under the player (a narrow column cut the label off)


def test_the_clip_header_shows_score_and_threshold_as_plain_decimals(seeded, open_page):
    """A threshold of 4.996 is not "5", and a score is never written as 1.2e-05."""
    from core.workflows.tuning import set_threshold
    from dashboard.components.format import numbers_apart

    set_threshold(SEEDED_MACHINES[0], 4.996, set_by="eve", reason="test")
    app = open_page("explore")
    here = _column(app, "This clip")
    details = clip_details(next(s for s in app.selectbox if s.label == "Clip").value)
    score, threshold = numbers_apart(details.score, details.threshold)
    assert threshold == "4.996" and "e" not in score
    (header,) = [m.value for m in here.markdown if " · score " in m.value]
    assert header.endswith(f" · score **{score}** (threshold 4.996)")


def _clip_box(app):
    return next(s for s in app.selectbox if s.label == "Clip")


def _follow(app, machine: str, clip: str):
    app.query_params.clear()
    app.query_params.update({"machine": machine, "clip": clip})
    app.run()
    no_exception(app)
    return app


def test_a_link_to_a_clip_of_another_machine_opens_it_there_says_so_and_the_address_follows(seeded, open_page):
    """Opened on the link's machine, the page showed that machine's first clip while the address named another."""
    named, own = SEEDED_MACHINES
    clip_id = _clip_ids(own, "abnormal")[0]
    app = _follow(open_page("explore"), named, str(clip_id))
    said = f"Clip #{clip_id} is a clip of {md_literal(own)}, not of {md_literal(named)}; here it is on its own machine."
    assert [w.value for w in app.warning] == [said]
    assert app.sidebar.selectbox(key="machine_picker").value == own and _clip_box(app).value == clip_id
    assert app.query_params == {"machine": own, "clip": str(clip_id)}
    other = _clip_ids(own, "normal")[0]
    _clip_box(app).select(other).run()  # the address follows the clip chosen, and the link is not read again
    no_exception(app)
    assert _clip_box(app).value == other and not app.warning
    assert app.query_params == {"machine": own, "clip": str(other)}


@pytest.mark.parametrize(
    ("machine", "clip", "said"),
    [
        (SEEDED_MACHINES[0], "99999", "The link's clip 99999 is not in the database"),
        (SEEDED_MACHINES[0], "*12*", f"The link's clip {md_literal('*12*')} is no clip id"),
        ("junk", "abc", "The link's clip abc is no clip id, and its machine junk is not in the database"),
    ],
)
def test_a_link_naming_what_is_not_here_says_so_and_the_address_names_the_clip_shown(
    seeded, open_page, machine, clip, said
):
    """The page showed the machine's first clip with no word, the address still naming the link's clip."""
    first = SEEDED_MACHINES[0]
    earlier = _clip_ids(first, "normal")[-1]
    app = _follow(open_page("explore"), first, str(earlier))  # an earlier link's clip is not shown instead
    assert _clip_box(app).value == earlier and not app.warning
    app = _follow(app, machine, clip)
    shown = _clip_box(app).value
    assert shown == min(_clip_ids(first, "normal") + _clip_ids(first, "abnormal"))  # the machine's first clip
    assert [w.value for w in app.warning] == [f"{said}; here is clip #{shown} of {md_literal(first)} instead."]
    assert app.query_params == {"machine": first, "clip": str(shown)}


def test_the_history_of_a_settled_clip_shows_its_final_verdict(seeded, open_page):
    """A clip settled on the Review page listed only its two disputing verdicts: it looked disputed still.  Each
    line names the role its author had (the verdicts' lines named only the person)."""
    from core.access import Actor, Role
    from core.workflows.review import adjudicate
    from core.workflows.triage import record_verdict

    machine = SEEDED_MACHINES[0]
    clip_id = _clip_ids(machine, "abnormal")[0]
    record_verdict(clip_id, "alice", "abnormal", actor=Actor("alice", Role.ANNOTATOR))
    record_verdict(clip_id, "bob", "normal")  # a name the CLI's operator recorded: no role known
    engineer = Actor("eve", Role.ENGINEER)
    adjudicate(clip_id, "abnormal", "first *look*", anomaly_type="bearing", actor=engineer)
    reason = "the *idle* hum\nheard on site"
    adjudicate(clip_id, "normal", reason, actor=engineer)
    app = _follow(open_page("explore"), machine, str(clip_id))
    lines = [m.value for m in _column(app, "This clip").markdown if m.value.startswith("- ")]
    (early, late) = clip_details(clip_id).rulings
    assert [line.split(" · ", 1)[1] for line in lines] == [
        "alice (annotator): **abnormal**",
        f"bob ({md_literal(ROLE_SIGN_IN_OFF)}): **normal**",  # every verdict says who and in which role
        f"eve (engineer): final verdict abnormal (bearing), since replaced — {md_literal('first *look*')}",
        f"eve (engineer): **final verdict: normal** — {md_literal(reason, multiline=True)}",
    ]
    assert lines[-1].startswith(f"- {late.created_at:%Y-%m-%d %H:%M} · ") and early.created_at <= late.created_at


def test_the_quarter_page_error_charts_have_no_mode_bar_over_their_titles(seeded, open_page):
    """On hover, Plotly's mode bar wrapped over 'Error over time' in these narrow charts; a box still selects a span
    by dragging (the chart's drag mode), and the wider charts keep their mode bar."""
    app = open_page("explore")
    for subheader in ("This clip", "A typical normal clip"):
        charts = {
            json.loads(c.proto.spec)["layout"]["title"]["text"]: c for c in _column(app, subheader).get("plotly_chart")
        }
        for title in ("Error over time", "Error per mel band"):
            assert json.loads(charts[title].proto.config or "{}").get("displayModeBar") is False, title
        assert json.loads(charts["Error over time"].proto.spec)["layout"]["dragmode"] == "select"
        assert json.loads(charts["Waveform"].proto.config or "{}").get("displayModeBar") is not False
