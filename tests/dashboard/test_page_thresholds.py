"""dashboard/pages/thresholds.py through AppTest: the slider drives the metrics and the confusion
matrix, Save appends a Threshold row with who and why, and a suggestion moves the slider."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from sqlalchemy import func, select, update

from core.detection.metrics import metrics_at
from core.workflows.triage import record_verdict
from core.workflows.tuning import SuggestOptions, suggest, tuning_data
from dashboard.components.text import md_literal
from db.models import Clip, Machine, Threshold
from db.queries import active_threshold
from db.session import session_scope
from tests.conftest import SEEDED_MACHINES, infos, no_exception

MACHINE = SEEDED_MACHINES[0]


def _confusion(app) -> tuple[int, int, int, int]:
    """``(tp, fn, fp, tn)`` as the page's confusion heatmap shows them (cell text ``"count<br>rate"``)."""
    (chart,) = [c for c in app.get("plotly_chart") if c.proto.spec and "Confusion matrix" in c.proto.spec]
    cells = json.loads(chart.proto.spec)["data"][0]["text"]
    (tp, fn), (fp, tn) = [[int(re.match(r"\d+", cell).group()) for cell in row] for row in cells]
    return tp, fn, fp, tn


def _expected(value: float) -> tuple[int, int, int, int]:
    data = tuning_data(MACHINE, use_test=True)  # the page includes the test split by default
    flagged = data.scores > value
    y = data.is_abnormal
    return int((flagged & y).sum()), int((~flagged & y).sum()), int((flagged & ~y).sum()), int((~flagged & ~y).sum())


def _metrics(app) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def _click(app, label: str):
    next(b for b in app.button if b.label == label).click().run()
    no_exception(app)
    return app


def _model_id() -> int:
    return tuning_data(MACHINE).model_id


def test_empty_database_says_no_model_yet(open_page):
    app = open_page("thresholds")
    assert [t.value for t in app.title] == ["Threshold tuning"]
    assert any("No machine has a trained model yet" in text for text in infos(app))
    assert not app.slider


def test_moving_the_slider_changes_the_confusion_matrix_and_metrics(seeded, open_page):
    app = open_page("thresholds")
    slider = app.slider(key="threshold_slider")
    with session_scope() as session:
        assert slider.value == pytest.approx(active_threshold(session, _model_id()).value)
    start = _confusion(app)
    assert start == _expected(slider.value) and start[0] > 0
    assert _metrics(app)["Recall"] == f"{start[0] / (start[0] + start[1]):.2f}"

    top = slider.max  # nothing scores above the highest score: nothing flagged
    app.slider(key="threshold_slider").set_value(top).run()
    no_exception(app)
    moved = _confusion(app)
    assert moved == _expected(top) and moved != start
    assert moved[0] == moved[2] == 0
    assert _metrics(app)["Recall"] == "0.00"
    assert _metrics(app)["Expected flags per day"] == "0.0"


def test_save_appends_a_threshold_row_with_who_and_why(seeded, open_page):
    model_id = _model_id()
    with session_scope() as session:
        before = session.scalar(select(func.count(Threshold.id)))
        old = active_threshold(session, model_id).value
    app = open_page("thresholds")
    slider = app.slider(key="threshold_slider")
    value = float(np.mean([slider.value, slider.max]))
    slider.set_value(value).run()
    app.text_input(key="threshold_reason").input("fewer false alarms on night shift")
    app.text_input(key="threshold_by").input("carol")
    _click(app, "Save threshold")

    assert any(f"Threshold {value:.4g} saved for {md_literal(MACHINE)}" in s.value for s in app.success)
    with session_scope() as session:
        assert session.scalar(select(func.count(Threshold.id))) == before + 1
        current = active_threshold(session, model_id)
        assert (current.value, current.set_by, current.reason, current.method) == (
            pytest.approx(value), "carol", "fewer false alarms on night shift", "manual",
        )  # fmt: skip
        assert session.scalar(select(func.count()).where(Threshold.value == old)) >= 1  # history kept


def test_save_without_a_name_is_refused(seeded, open_page):
    with session_scope() as session:
        before = session.scalar(select(func.count(Threshold.id)))
    app = open_page("thresholds")
    _click(app, "Save threshold")
    assert any("say who sets the threshold" in e.value for e in app.error)
    with session_scope() as session:
        assert session.scalar(select(func.count(Threshold.id))) == before


def test_gamma_suggestion_moves_the_slider_and_fills_the_reason(seeded, open_page):
    gamma = suggest(MACHINE, SuggestOptions("gamma"))
    app = open_page("thresholds")
    top = app.slider(key="threshold_slider").max
    assert gamma.value < top
    app.slider(key="threshold_slider").set_value(top).run()
    _click(app, "Gamma quantile 0.9")
    assert app.slider(key="threshold_slider").value == pytest.approx(gamma.value)
    assert app.text_input(key="threshold_reason").value == gamma.reason
    assert _confusion(app) == _expected(gamma.value)


def test_a_labelled_suggestion_without_labelled_anomalies_warns(seeded, open_page):
    app = open_page("thresholds")
    app.checkbox(key="threshold_use_test").uncheck().run()  # only the test split has labelled clips
    assert any("No scored clip to tune on yet" in text for text in infos(app)) and not app.slider
    with session_scope(write=True) as session:  # two test clips become field clips the pilots call normal
        pk = session.scalar(select(Machine.id).where(Machine.machine_type + "/" + Machine.machine_id == MACHINE))
        ids = session.scalars(select(Clip.id).where(Clip.machine_pk == pk, Clip.split == "test",
                                                    Clip.label == "normal").limit(2)).all()  # fmt: skip
        session.execute(update(Clip).where(Clip.id.in_(ids)).values(split="none", label="unknown"))
    for clip_id in ids:
        record_verdict(clip_id, "ana", "normal")
    app.run()
    value = app.slider(key="threshold_slider").value
    _click(app, "Max F1")
    assert any("no labelled abnormal clip to fit on" in w.value for w in app.warning)
    assert any("judge flagged clips on the Triage page" in w.value for w in app.warning)
    assert app.slider(key="threshold_slider").value == value


def test_max_f1_maximises_the_f1_the_page_shows_on_the_clips_it_shows(seeded, open_page):
    app = open_page("thresholds")
    _click(app, "Max F1")
    chosen = app.slider(key="threshold_slider").value
    data = tuning_data(MACHINE, use_test=True)
    best_f1 = max(metrics_at(data.is_abnormal, data.scores, t).f1 for t in [*data.scores, data.scores.min() - 1])
    assert float(_metrics(app)["F1"]) == pytest.approx(best_f1, abs=0.005)  # shown with two decimals
    assert _confusion(app) == _expected(chosen)  # the matrix counts the same clips the suggestion fitted on
    assert app.text_input(key="threshold_reason").value.endswith(data.label_source)
