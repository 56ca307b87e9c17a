"""dashboard/pages/compare.py through AppTest: two models of a machine side by side on the same test
clips, or what to do when there is only one."""

from __future__ import annotations

import json
import re

import numpy as np
from sqlalchemy import select, update

from core.access import Actor, Role
from core.detection.registry import AUTO
from core.detection.selection import FRONT_END_NAMES
from core.workflows.audit import audit_events
from core.workflows.catalogue import machine_keys
from core.workflows.comparison import compare_models, model_choices
from core.workflows.ingest import ingest
from core.workflows.scoring import score
from core.workflows.training import active_model_id, train
from core.workflows.tuning import SuggestOptions, set_threshold, suggest
from dashboard.components.annotator import UNNAMED
from dashboard.components.format import number
from dashboard.components.text import md_literal
from dashboard.pages.compare import candidate_name
from db.models import Clip, DetectorModel, Machine, Score
from db.session import session_scope
from tests.conftest import SEEDED_MACHINES, infos, no_exception, tone, write_wav

MACHINE = SEEDED_MACHINES[0]


def test_empty_database_says_no_model_yet(open_page):
    app = open_page("compare")
    assert [t.value for t in app.title] == ["Compare models"]
    assert any("No machine has a trained model yet: train one with **Train detector** below" in text
               for text in infos(app))  # fmt: skip
    assert any("No machine yet: add clips on the Data page first" in text for text in infos(app))
    assert not app.button  # nothing to train


def test_one_model_asks_for_another(seeded, open_page):
    app = open_page("compare")
    # the seeded plant's models are Mahalanobis: the hint names the other detector and the control to train it
    (info,) = [text for text in infos(app) if text.startswith(f"{md_literal(MACHINE)} has only one model")]
    assert "for example autoencoder" in info and "**Train detector** below" in info
    assert not app.get("plotly_chart") and not app.dataframe
    assert app.selectbox(key="train_machine").value == MACHINE
    assert app.selectbox(key="train_detector").options == [  # as people read them, not the CLI's names
        "automatic choice", "autoencoder", "Mahalanobis", "band deviation", "frame k-NN", "frame GMM",
        "machine-ID classifier"]  # fmt: skip
    assert app.selectbox(key="train_detector").value == AUTO


def test_the_hint_names_an_untrained_detector_in_words(seeded, open_page):
    """With only an autoencoder the hint offers the next detector as people read it, not the CLI's name."""
    with session_scope() as session:
        session.execute(update(DetectorModel).values(detector="autoencoder"))  # the page only lists the models
    app = open_page("compare")
    (info,) = [text for text in infos(app) if text.startswith(f"{md_literal(MACHINE)} has only one model")]
    assert "for example Mahalanobis" in info


def test_machine_to_train_follows_the_pages_machine_and_keeps_a_pick_of_its_own(seeded, open_page):
    app = open_page("compare")
    assert app.selectbox(key="train_machine").value == SEEDED_MACHINES[0]
    app.sidebar.selectbox(key="machine_picker").set_value(SEEDED_MACHINES[1]).run()
    no_exception(app)
    assert app.selectbox(key="train_machine").value == SEEDED_MACHINES[1]  # it followed
    app.selectbox(key="train_machine").set_value(SEEDED_MACHINES[0]).run()
    assert app.selectbox(key="train_machine").value == SEEDED_MACHINES[0]  # another pick stands on a rerun
    assert app.sidebar.selectbox(key="machine_picker").value == SEEDED_MACHINES[1]


def test_two_models_side_by_side_on_the_named_test_set(seeded, open_page):
    (trained,) = train(MACHINE, "mahalanobis", user="test").trained
    assert trained.version == 2
    ids = [model_id for model_id, _ in model_choices(MACHINE)]
    assert len(ids) == 2
    expected = compare_models(MACHINE, ids[:2])

    app = open_page("compare")
    assert not infos(app)
    assert [s.value for s in app.selectbox if s.label.startswith("Model ")] == ids[:2]  # the ids, as before
    # the pickers offer the models in words, as model_choices names them
    model_a = next(s for s in app.selectbox if s.label == "Model A")
    assert model_a.options == [f"Mahalanobis v2 ({MACHINE})", f"Mahalanobis v1 ({MACHINE})"]
    caption = next(c.value for c in app.caption if c.value.startswith("Test set:"))
    assert caption.startswith(f"Test set: {md_literal(f'test split of {MACHINE}: ')}")
    # one sentence: the core's own bracket (clips left out) is not followed by a second one
    assert caption == (f"Test set: {md_literal(expected.test_set)}, all {expected.n_test} scored by both models. "
                       "Abnormal is the positive class.")  # fmt: skip
    assert ") (" not in caption
    charts = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    assert [chart["layout"]["title"]["text"] for chart in charts] == [
        f"{r.name} at {number(r.at_threshold.threshold)}" for r in expected.results
    ]
    assert [chart["data"][0]["type"] for chart in charts] == ["heatmap", "heatmap"]
    (table,) = app.dataframe
    names = [r.name for r in expected.results]
    assert list(table.value.columns) == names and len(set(names)) == 2  # newest first: v2, then v1
    assert "v2" in names[0] and "v1" in names[1]
    assert list(table.value.index) == ["precision", "recall", "F1", "accuracy", "AUC", "pAUC"]
    for r in expected.results:
        assert table.value.loc["recall", r.name] == f"{r.at_threshold.recall:.3f}"
    # the same three decimals for every figure (never 0.52 beside 0.929, nor 1 for a recall)
    assert all(re.fullmatch(r"\d\.\d{3}", v) for v in table.value.to_numpy().ravel()), table.value


def _make_v1_active(app):
    return next(b for b in app.button if b.label.startswith("Make Mahalanobis v1"))


def test_make_a_compared_model_active_once_a_name_is_given(seeded, open_page):
    """With sign-in off the change was audited as "local user" when no name had been given."""
    (trained,) = train(MACHINE, "mahalanobis", user="test").trained  # v2 becomes active (same detector)
    app = open_page("compare")
    no_exception(app)
    assert _make_v1_active(app).disabled and _make_v1_active(app).help == UNNAMED
    assert UNNAMED in [c.value for c in app.caption]  # said on the page, not only in the tooltip
    app.sidebar.text_input(key="annotator_input").input("Ann").run()
    assert not _make_v1_active(app).disabled and UNNAMED not in [c.value for c in app.caption]
    _make_v1_active(app).click().run()
    no_exception(app)
    assert active_model_id(MACHINE) != trained.model_id
    assert any("is the active model" in c.value for c in app.caption)
    newest = audit_events(1)[0]
    assert (newest["user"], newest["action"]) == ("Ann", "activate model")


def _two_versions() -> tuple[int, int]:
    """``(v2, v1)`` of MACHINE's mahalanobis models; v2 (active) gets a threshold by hand at the median score of
    its abnormal test clips, so it passes anomalies v1 (its gamma threshold) flags: the two disagree."""
    (trained,) = train(MACHINE, "mahalanobis", user="test").trained
    v2, v1 = [model_id for model_id, _ in model_choices(MACHINE)]
    assert score(MACHINE).scored > 0  # v2, now active, scores the machine's clips
    with session_scope() as session:
        scores = session.scalars(
            select(Score.score).join(Clip, Clip.id == Score.clip_id)
            .where(Score.model_id == v2, Clip.split == "test", Clip.label == "abnormal")
        ).all()  # fmt: skip
    set_threshold(MACHINE, float(np.median(scores)), set_by="dora", reason="by ear")
    return trained.model_id, v1


def test_the_same_model_twice_does_not_crash(seeded, open_page):
    _two_versions()
    app = open_page("compare")
    model_b = next(s for s in app.selectbox if s.label == "Model B")
    model_b.set_value(app.selectbox[[s.label for s in app.selectbox].index("Model A")].value).run()
    no_exception(app)
    assert any("Model A and Model B are the same model" in text for text in infos(app))
    assert not app.get("plotly_chart")


def test_the_clips_the_models_disagree_on_are_listed_with_a_link_to_each(seeded, open_page):
    v2, v1 = _two_versions()
    expected = compare_models(MACHINE, [v2, v1])
    app = open_page("compare")
    (table,) = [d.value for d in app.dataframe if "open" in d.value.columns]
    assert len(table) == len(expected.disagreements) > 0 and table.columns[0] == "open"
    names = [r.name for r in expected.results]
    assert any(f"A is {md_literal(names[0])}, B is {md_literal(names[1])}." in c.value for c in app.caption)
    limits = [r.at_threshold.threshold for r in expected.results]
    with session_scope() as session:
        for _, row in table.iterrows():
            scores = [session.scalar(select(Score.score).where(Score.model_id == m, Score.clip_id == row["clip"]))
                      for m in (v2, v1)]  # fmt: skip
            flags = [score > limit for score, limit in zip(scores, limits, strict=True)]
            assert flags[0] != flags[1]  # one flags, the other passes
            assert [row["A flags"], row["B flags"]] == flags  # short names: every column in view at 1280 px
            assert [row["A score"], row["B score"]] == [number(scores[0]), number(scores[1])]
            assert row["open"] == f"explore?machine={MACHINE.replace('/', '%2F')}&clip={row['clip']}"
            clip = session.get(Clip, int(row["clip"]))
            assert row["file"] == clip.path.rsplit("/", 1)[-1]
    # every graded clip not listed is flagged, or passed, by both
    assert len(table) == sum(
        (a > limits[0]) != (b > limits[1]) for a, b in zip(*_graded_scores(expected, (v2, v1)), strict=True)
    )


def _graded_scores(comparison, model_ids) -> list[list[float]]:
    """Each model's scores of the graded clips (the clips of the test split both scored and neither trained on)."""
    with session_scope() as session:
        trained_on = {i for m in model_ids for i in session.get(DetectorModel, m).provenance["clip_ids"]}
        pk = session.scalar(select(Machine.id).where(Machine.machine_type + "/" + Machine.machine_id == MACHINE))
        ids = [i for i in session.scalars(select(Clip.id).where(Clip.machine_pk == pk, Clip.split == "test"))
               if i not in trained_on]  # fmt: skip
        assert len(ids) == comparison.n_test
        return [[session.scalar(select(Score.score).where(Score.model_id == m, Score.clip_id == i)) for i in ids]
                for m in model_ids]  # fmt: skip


def test_a_link_opens_the_clip_on_explore(seeded):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import APP_SCRIPT

    with session_scope() as session:
        pk = session.scalar(select(Machine.id).where(Machine.machine_type + "/" + Machine.machine_id == "fan/id_02"))
        clip_id = session.scalars(select(Clip.id).where(Clip.machine_pk == pk).order_by(Clip.id.desc())).first()
    app = AppTest.from_file(APP_SCRIPT, default_timeout=60).run()
    app.query_params["machine"] = "fan/id_02"
    app.query_params["clip"] = str(clip_id)
    app.switch_page("dashboard/pages/explore.py").run()
    no_exception(app)
    assert app.sidebar.selectbox[0].value == "fan/id_02"
    clip_box = next(s for s in app.selectbox if s.label == "Clip")
    assert clip_box.value == clip_id


def test_a_threshold_tuned_on_the_graded_clips_is_warned_about(seeded, open_page):
    v2, _ = _two_versions()
    fitted = suggest(MACHINE, SuggestOptions("max_f1", use_test=True))  # fitted on the test split
    set_threshold(MACHINE, fitted.value, set_by="erin", reason=fitted.reason, method="max_f1")
    app = open_page("compare")
    name = next(name for model_id, name in model_choices(MACHINE) if model_id == v2)
    (warning,) = [w.value for w in app.warning if "was tuned on the clips it is graded on" in w.value]
    graded = compare_models(MACHINE, [v2, model_choices(MACHINE)[1][0]]).n_test  # the test split: all of them
    said = f"{name}'s threshold was tuned on the clips it is graded on here (max F1 on labelled clips including "
    assert warning.startswith(md_literal(said + f"{graded} of the {graded} graded here"))
    assert "set by erin" in warning
    assert len([w for w in app.warning if "tuned" in w.value]) == 1  # v1's gamma threshold was fitted on no label
    scopes = next(c.value for c in app.caption if "In brackets" in c.value)
    assert md_literal("(*) a supervised model") in scopes and md_literal(f"({MACHINE}) this machine") in scopes


def _new_machine(root, n_normal: int = 8, n_abnormal: int = 2) -> None:
    """Clips of a machine nobody trained for, as a MIMII folder: ``pump/id_09/{normal,abnormal}``."""
    for k in range(n_normal):
        write_wav(root / "pump" / "id_09" / "normal" / f"n{k}.wav", tone(1.0, freq=300.0, seed=k))
    for k in range(n_abnormal):
        write_wav(root / "pump" / "id_09" / "abnormal" / f"a{k}.wav", tone(1.0, freq=1900.0, amplitude=0.9, seed=k))


def test_an_engineer_trains_a_new_machines_detector_from_the_page_and_its_clips_are_scored(seeded, open_page, tmp_path):
    _new_machine(tmp_path / "upload")
    assert ingest([str(tmp_path / "upload")]).ingested == 10
    assert "pump/id_09" not in machine_keys(require_model=True)  # uploaded, never scored
    app = open_page("compare")
    button = app.button(key="train_button")  # sign-in off: the model records its trainer, so a name first
    assert button.disabled and button.help == UNNAMED and UNNAMED in [c.value for c in app.caption]
    app.sidebar.text_input(key="annotator_input").input("Ann").run()
    assert not app.button(key="train_button").disabled and UNNAMED not in [c.value for c in app.caption]
    app.selectbox(key="train_machine").set_value("pump/id_09")
    app.selectbox(key="train_detector").set_value("mahalanobis")
    app.button(key="train_button").click().run()
    no_exception(app)
    assert not app.error
    (note,) = [s.value for s in app.success]
    assert note.startswith(md_literal("Trained Mahalanobis v1 for pump/id_09 on "))
    assert md_literal("(the fit took ") in note and md_literal("then 10 clips scored.") in note  # the fit alone timed
    assert md_literal("It is now the active model of pump/id_09") in note
    assert "pump/id_09" in machine_keys(require_model=True)
    with session_scope() as session:
        pk = session.scalar(select(Machine.id).where(Machine.machine_type == "pump", Machine.machine_id == "id_09"))
        machine = session.get(Machine, pk)
        clips = session.scalars(select(Clip.id).where(Clip.machine_pk == pk)).all()
        scored = session.scalars(select(Score.clip_id).where(Score.model_id == machine.active_model_id)).all()
        assert sorted(scored) == sorted(clips) and len(clips) == 10  # every clip scored: the queue can fill
        assert machine.active_model.provenance["trained_by"] == "Ann"  # it said "local user" when no name was given
    newest = audit_events(1)[0]  # scoring is not audited: the training is the newest event
    assert (newest["user"], newest["action"]) == ("Ann", "train")


def test_train_detector_offers_the_settings_of_the_detector_picked(seeded, open_page):
    """Any candidate of the evidence table (e.g. frame k-NN (top 10%, PCEN)) can be trained from the page as from
    ``train --front-end --pooling``: the selects follow the detector (none for the automatic choice)."""
    app = open_page("compare", name="Ann")
    labels = lambda: [s.label for s in app.selectbox]  # noqa: E731
    assert "Front end" not in labels() and "Score pooling" not in labels()  # auto: its candidates bring their own
    app.selectbox(key="train_detector").set_value("mahalanobis").run()
    assert "Front end" in labels() and "Score pooling" not in labels()
    app.selectbox(key="train_detector").set_value("frame_knn").run()
    front_end = app.selectbox(key="train_front_end_frame_knn")
    assert front_end.options == [FRONT_END_NAMES["log_mel"], FRONT_END_NAMES["pcen"]] and front_end.index == 0
    assert app.selectbox(key="train_pooling_frame_knn").options == ["top 10%", "mean", "max"]
    front_end.set_value("pcen")
    app.selectbox(key="train_pooling_frame_knn").set_value("max")
    app.selectbox(key="train_machine").set_value(SEEDED_MACHINES[0])
    app.button(key="train_button").click().run()
    no_exception(app)
    assert not app.error and app.success[0].value.startswith(md_literal("Trained frame k-NN (PCEN) v1 for "))
    assert any(name.startswith("frame k-NN (PCEN) v1") for _, name in model_choices(SEEDED_MACHINES[0]))
    with session_scope() as session:
        newest = session.scalars(select(DetectorModel).order_by(DetectorModel.id.desc())).first()
        assert newest.detector == "frame_knn"
        assert (newest.params["detector"]["front_end"], newest.params["detector"]["pooling"]) == ("pcen", "max")

def test_an_annotator_may_not_train_from_the_page(seeded, monkeypatch):
    from tests.dashboard.test_page_review import _as

    app = _as(Actor("ana", Role.ANNOTATOR), "compare", monkeypatch)
    button = app.button(key="train_button")
    assert button.disabled and "train needs the engineer role" in button.help


def test_automatic_choice_section_shows_the_choice_its_evidence_and_uncertainty(seeded, open_page):
    app = open_page("compare")
    assert any("No automatic choice for" in c.value for c in app.caption)
    (chosen,) = train(MACHINE, "auto", user="test").trained
    app = open_page("compare")
    no_exception(app)
    assert "Automatic choice (training data only)" in [s.value for s in app.subheader]
    from core.workflows.evaluation import automatic_choice

    choice = automatic_choice(MACHINE)
    assert choice["model_id"] == chosen.model_id
    verdicts = [m.value for m in [*app.info, *app.warning] if m.value.startswith("Chosen: ")]
    assert len(verdicts) == 1 and f"Why: {md_literal(choice['note'])}" in verdicts[0] and "nan" not in verdicts[0]
    (evidence,) = [d.value for d in app.dataframe if "pseudo-AUC" in d.value.columns]
    # ranked as the choice ranks them: by the weighted pseudo-AUC, the chosen one first
    ranked = sorted(choice["evidence"], key=lambda k: -choice["evidence"][k]["weighted"])
    assert list(evidence["candidate"]) == [candidate_name(label) for label in ranked]
    assert not any("_" in name for name in evidence["candidate"])  # readable names, not the CLI's labels
    assert {"band deviation (max)", "frame GMM (top 10%)"} <= set(evidence["candidate"])
    if choice["chosen"] != "ensemble":
        assert evidence["candidate"].iloc[0] == candidate_name(choice["chosen"])
        assert verdicts[0].startswith(f"Chosen: **{md_literal(candidate_name(choice['chosen']))}** (model")
    assert {"weighted pseudo-AUC", "pseudo-AUC", "± (s.e.)", "tone", "impulses", "band_noise", "gain"} <= set(
        evidence.columns)  # fmt: skip
    assert all(re.fullmatch(r"\d\.\d{3}|", str(v)) for v in evidence["± (s.e.)"])  # blank, never None or nan
    (caption,) = [c.value for c in app.caption if "The test split is never used" in c.value]
    assert f"{choice['n_other_clips']} clips of other machines and 0 confirmed faults of this machine" in caption
    assert "other machines' clips weigh 75% when there are some, confirmed faults 50% of the whole" in caption
