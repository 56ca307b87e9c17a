"""dashboard/pages/compare.py through AppTest: two models of a machine side by side on the same test
clips, or what to do when there is only one."""

from __future__ import annotations

import json

from core.workflows.comparison import compare_models, model_choices
from core.workflows.training import active_model_id, train
from dashboard.components.text import md_literal
from tests.conftest import SEEDED_MACHINES, infos, no_exception

MACHINE = SEEDED_MACHINES[0]


def test_empty_database_says_no_model_yet(open_page):
    app = open_page("compare")
    assert [t.value for t in app.title] == ["Compare models"]
    assert any("No machine has a trained model yet" in text for text in infos(app))


def test_one_model_asks_for_another(seeded, open_page):
    app = open_page("compare")
    # the seeded plant's models are Mahalanobis: the hint names the command for the other detector
    assert any(text.startswith(f"{md_literal(MACHINE)} has only one model") for text in infos(app))
    [command] = [c.value for c in app.code]
    assert command == f"python -m core train --machine {MACHINE} --detector autoencoder"
    assert not app.get("plotly_chart") and not app.dataframe


def test_two_models_side_by_side_on_the_named_test_set(seeded, open_page):
    (trained,) = train(MACHINE, "mahalanobis", user="test").trained
    assert trained.version == 2
    ids = [model_id for model_id, _ in model_choices(MACHINE)]
    assert len(ids) == 2
    expected = compare_models(MACHINE, ids[:2])

    app = open_page("compare")
    assert not infos(app)
    assert [s.value for s in app.selectbox if s.label.startswith("Model ")] == ids[:2]
    caption = next(c.value for c in app.caption if c.value.startswith("Test set:"))
    assert caption.startswith(f"Test set: {md_literal(f'test split of {MACHINE}: ')}")
    assert f"{md_literal(expected.test_set)} ({expected.n_test} clips scored by both)" in caption
    charts = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    assert [chart["layout"]["title"]["text"] for chart in charts] == [
        f"{r.name} at {r.at_threshold.threshold:.4g}" for r in expected.results
    ]
    assert [chart["data"][0]["type"] for chart in charts] == ["heatmap", "heatmap"]
    (table,) = app.dataframe
    names = [r.name for r in expected.results]
    assert list(table.value.columns) == names and len(set(names)) == 2  # newest first: v2, then v1
    assert "v2" in names[0] and "v1" in names[1]
    assert list(table.value.index) == ["precision", "recall", "F1", "accuracy", "AUC", "pAUC"]
    for r in expected.results:
        assert table.value.loc["recall", r.name] == round(r.at_threshold.recall, 3)


def test_make_a_compared_model_active(seeded, open_page):
    (trained,) = train(MACHINE, "mahalanobis", user="test").trained  # v2 becomes active (same detector)
    app = open_page("compare")
    no_exception(app)
    v1 = next(b for b in app.button if b.label.startswith("Make mahalanobis v1"))
    v1.click().run()
    no_exception(app)
    assert active_model_id(MACHINE) != trained.model_id
    assert any("is the active model" in c.value for c in app.caption)


def test_automatic_choice_section_shows_the_choice_its_evidence_and_uncertainty(seeded, open_page):
    app = open_page("compare")
    assert not [s for s in app.subheader if s.value.startswith("Automatic choice")]  # one model: nothing to compare
    (chosen,) = train(MACHINE, "auto", user="test").trained
    app = open_page("compare")
    no_exception(app)
    assert [s.value for s in app.subheader] == ["Automatic choice (training data only)"]
    from core.workflows.evaluation import automatic_choice

    choice = automatic_choice(MACHINE)
    assert choice["model_id"] == chosen.model_id
    verdicts = [m.value for m in [*app.success, *app.warning] if m.value.startswith("Chosen: ")]
    assert len(verdicts) == 1 and md_literal(choice["note"]) in verdicts[0]
    evidence = app.dataframe[-1].value
    assert list(evidence["candidate"]) == sorted(choice["evidence"], key=lambda k: -choice["evidence"][k]["auc"])
    assert {"pseudo-AUC", "± (s.e.)", "tone", "impulses", "band_noise", "gain"} <= set(evidence.columns)
    assert any("the test split is never used" in c.value for c in app.caption)
