"""core.workflows.comparison: two models of a machine side by side on the same test clips, each at its own active
threshold, with a warning when only one of them was trained on labelled anomalies."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update

from core.detection.metrics import metrics_at, partial_auc, roc_auc
from core.errors import BadInputError, Reason
from core.workflows.comparison import compare_models, model_choices
from core.workflows.training import train
from core.workflows.tuning import SuggestOptions, set_threshold, suggest
from db.models import Clip, DetectorModel, Machine, Score, Threshold
from db.queries import add_threshold
from db.session import session_scope

MACHINE = "fan/id_02"


def _machine_pk(session, key: str) -> int:
    machine_type, machine_id = key.split("/")
    return session.scalar(
        select(Machine.id).where(Machine.machine_type == machine_type, Machine.machine_id == machine_id)
    )


def _model_id(detector: str, scope: str, version: int) -> int:
    with session_scope() as session:
        return session.scalar(
            select(DetectorModel.id).where(
                DetectorModel.detector == detector, DetectorModel.scope == scope, DetectorModel.version == version
            )
        )


@pytest.fixture
def two_models(seeded) -> tuple[int, int]:
    """``(v1, v2)``: the seeded mahalanobis model of fan/id_02 and a second one trained on fewer clips,
    with a hand-set threshold on v1 so the two thresholds differ in kind."""
    v1 = _model_id("mahalanobis", MACHINE, 1)
    with session_scope(write=True) as session:
        pk = _machine_pk(session, MACHINE)
        train_ids = session.scalars(
            select(Clip.id).where(Clip.machine_pk == pk, Clip.split == "train").order_by(Clip.id)
        ).all()
        # three training clips leave both splits: v2 learns from fewer clips, the test split is unchanged
        session.execute(update(Clip).where(Clip.id.in_(train_ids[:3])).values(split="none"))
        scores = session.scalars(select(Score.score).where(Score.model_id == v1)).all()
        add_threshold(session, v1, float(np.median(scores)), method="manual", set_by="t", reason="r")
    (trained,) = train(MACHINE, "mahalanobis").trained
    assert trained.version == 2
    return v1, trained.model_id


def _expected(key: str, model_id: int) -> tuple[np.ndarray, np.ndarray, float]:
    """``(is_abnormal, scores, active threshold)`` of the machine's labelled test clips, from the tables."""
    with session_scope() as session:
        pk = _machine_pk(session, key)
        rows = session.execute(
            select(Clip.label, Score.score)
            .join(Score, (Score.clip_id == Clip.id) & (Score.model_id == model_id))
            .where(Clip.machine_pk == pk, Clip.split == "test", Clip.label.in_(("normal", "abnormal")))
            .order_by(Clip.id)
        ).all()
        threshold = session.scalar(
            select(Threshold.value).where(Threshold.model_id == model_id).order_by(Threshold.id.desc())
        )
    y = np.array([label == "abnormal" for label, _ in rows], dtype=bool)
    return y, np.array([s for _, s in rows]), threshold


def _set_training_clips(model_id: int, clip_ids: list[int]) -> None:
    with session_scope(write=True) as session:
        model = session.get(DetectorModel, model_id)
        model.provenance = {**model.provenance, "clip_ids": clip_ids}


def _clip_ids(key: str, label: str) -> list[int]:
    with session_scope() as session:
        pk = _machine_pk(session, key)
        return list(session.scalars(select(Clip.id).where(Clip.machine_pk == pk, Clip.label == label)))


# --- model_choices ---------------------------------------------------------------------------------------------


def test_model_choices_newest_first_with_labels(two_models):
    v1, v2 = two_models
    assert model_choices(MACHINE) == [(v2, f"Mahalanobis v2 ({MACHINE})"), (v1, f"Mahalanobis v1 ({MACHINE})")]
    other = _model_id("mahalanobis", "fan/id_00", 1)
    assert model_choices("fan/id_00") == [(other, "Mahalanobis v1 (fan/id_00)")]

    (per_type,) = train("fan", "mahalanobis", per_type=True).trained
    assert [label for _, label in model_choices(MACHINE)] == [
        "Mahalanobis v1 (fan)", f"Mahalanobis v2 ({MACHINE})", f"Mahalanobis v1 ({MACHINE})",
    ]  # fmt: skip
    assert model_choices("fan/id_00")[0] == (per_type.model_id, "Mahalanobis v1 (fan)")


def test_model_choices_of_an_unknown_machine_are_empty(seeded):
    assert model_choices("fan/id_09") == []
    assert model_choices("fan") == []  # a type is not a machine


# --- compare_models --------------------------------------------------------------------------------------------


def test_compare_models_on_the_same_test_clips(two_models):
    v1, v2 = two_models
    result = compare_models(MACHINE, [v1, v2])  # scores v2's missing clips first

    assert result.machine == MACHINE
    assert [r.model_id for r in result.results] == [v1, v2]
    assert [r.name for r in result.results] == ["Mahalanobis v1 (fan/id_02)", "Mahalanobis v2 (fan/id_02)"]
    expected = {m: _expected(MACHINE, m) for m in (v1, v2)}
    y1, s1, t1 = expected[v1]
    y2, s2, t2 = expected[v2]
    assert np.array_equal(y1, y2) and y1.size == result.n_test  # every labelled test clip, scored by both
    assert 0 < y1.sum() < y1.size
    assert not np.array_equal(s1, s2) and t1 != t2  # two genuinely different models
    assert result.test_set == f"test split of {MACHINE}: {int(y1.sum())} abnormal and {int((~y1).sum())} normal clips"

    for r in result.results:
        y, s, threshold = expected[r.model_id]
        assert r.at_threshold == metrics_at(y, s, threshold)
        assert r.at_threshold.threshold == threshold
        c = r.at_threshold.confusion
        assert (c.tp, c.fp, c.tn, c.fn) == (
            int(np.sum((s > threshold) & y)), int(np.sum((s > threshold) & ~y)),
            int(np.sum((s <= threshold) & ~y)), int(np.sum((s <= threshold) & y)),
        )  # fmt: skip
        assert r.auc == roc_auc(y, s) and r.pauc == partial_auc(y, s)
        assert 0.0 <= r.auc <= 1.0
        assert r.saw_anomalies is False
    assert _about_training(result.warnings) == []


def test_compare_leaves_out_test_clips_one_model_has_not_scored(two_models, data_dir):
    v1, v2 = two_models
    y1, s1, t1 = _expected(MACHINE, v1)
    with session_scope(write=True) as session:
        ids = session.scalars(
            select(Clip.id)
            .where(Clip.machine_pk == _machine_pk(session, MACHINE), Clip.split == "test")
            .order_by(Clip.id)
        ).all()
        lost = session.scalar(select(Clip.id).where(Clip.id.in_(ids), Clip.label == "normal").limit(1))
        # v1 scored it already; its file has gone since, so v2 cannot
        session.execute(update(Clip).where(Clip.id == lost).values(path=str(data_dir / "gone.wav")))

    result = compare_models(MACHINE, [v1, v2])
    assert result.n_test == y1.size - 1
    assert result.test_set.endswith(f"{int(y1.sum())} abnormal and {int((~y1).sum()) - 1} normal clips")
    keep = np.array([clip_id != lost for clip_id in ids])
    assert result.results[0].at_threshold == metrics_at(y1[keep], s1[keep], t1)
    assert result.results[0].auc == roc_auc(y1[keep], s1[keep])


def _about_training(warnings: list[str]) -> list[str]:
    """The warnings about what the models learned from (this small plant always draws the small-test one)."""
    return [w for w in warnings if not w.startswith(("Only ", "No "))]


def test_warnings_when_the_graded_clips_are_few_or_of_one_class(two_models):
    v1, v2 = two_models
    result = compare_models(MACHINE, [v1, v2])
    assert result.n_test < 20
    assert f"Only {result.n_test} clips are graded: a single clip moves these numbers a lot." in result.warnings
    _set_training_clips(v2, _clip_ids(MACHINE, "normal"))  # v2 learned every normal clip: none left to grade on
    one_class = compare_models(MACHINE, [v1, v2])
    assert (one_class.n_normal, one_class.warnings[0].startswith("No normal clip is left to grade on")) == (0, True)


def test_warning_when_only_one_model_saw_labelled_anomalies(two_models):
    v1, v2 = two_models
    abnormal = _clip_ids(MACHINE, "abnormal")
    with session_scope() as session:
        trained_on = session.get(DetectorModel, v2).provenance["clip_ids"]
    _set_training_clips(v2, [*trained_on, abnormal[0]])

    result = compare_models(MACHINE, [v1, v2])
    assert [r.saw_anomalies for r in result.results] == [False, True]
    assert _about_training(result.warnings) == [
        "Mahalanobis v2 (fan/id_02) was trained on labelled anomalies the other model never saw."
    ]
    flipped = compare_models(MACHINE, [v2, v1])
    assert flipped.warnings == result.warnings

    _set_training_clips(v1, [abnormal[1]])  # both saw anomalies: nothing to warn about
    both = compare_models(MACHINE, [v1, v2])
    assert [r.saw_anomalies for r in both.results] == [True, True]
    assert _about_training(both.warnings) == []


def test_no_warning_for_normal_clips_or_an_empty_provenance(two_models):
    v1, v2 = two_models
    _set_training_clips(v2, _clip_ids(MACHINE, "normal"))
    assert _about_training(compare_models(MACHINE, [v1, v2]).warnings) == []
    _set_training_clips(v2, [])
    result = compare_models(MACHINE, [v1, v2])
    assert [r.saw_anomalies for r in result.results] == [False, False] and _about_training(result.warnings) == []
    # abnormal clips of another machine count too: the model did see labelled anomalies
    _set_training_clips(v2, _clip_ids("fan/id_00", "abnormal")[:1])
    assert compare_models(MACHINE, [v1, v2]).results[1].saw_anomalies is True


def test_a_model_without_a_threshold_flags_nothing(two_models):
    v1, v2 = two_models
    with session_scope(write=True) as session:
        for row in session.scalars(select(Threshold).where(Threshold.model_id == v2)):
            session.delete(row)
    r = compare_models(MACHINE, [v1, v2]).results[1]
    assert r.at_threshold.threshold == math.inf
    c = r.at_threshold.confusion
    assert (c.tp, c.fp) == (0, 0) and c.tn + c.fn == compare_models(MACHINE, [v1, v2]).n_test
    assert not math.isnan(r.auc)


def test_compare_refuses_unknown_machines_and_models(two_models):
    v1, v2 = two_models
    for machine in ("fan/id_09", "pump/id_00", "fan"):
        with pytest.raises(BadInputError, match="no such machine|is a machine type") as info:
            compare_models(machine, [v1, v2])
        assert info.value.reason is Reason.INVALID_PARAMETER
    with pytest.raises(BadInputError, match="has no model among") as info:
        compare_models(MACHINE, [v1, 99999])
    assert info.value.reason is Reason.INVALID_PARAMETER


def test_results_of_a_machine_model_and_a_type_model_have_distinct_names(seeded):
    (per_type,) = train("fan", "mahalanobis", per_type=True).trained
    machine_model = _model_id("mahalanobis", MACHINE, 1)
    assert per_type.version == 1
    result = compare_models(MACHINE, [machine_model, per_type.model_id])
    names = [r.name for r in result.results]
    assert len(set(names)) == 2, names


def test_field_clips_the_pilots_labelled_count_in_the_comparison(tmp_path):
    """Snippets from the field have no layout label: the pilots' agreeing verdicts label them."""
    from core.datasets.demo import write_plant
    from core.workflows.ingest import ingest
    from core.workflows.training import train
    from core.workflows.triage import record_verdict
    from db.queries import clip_by_path, test_clips

    write_plant(tmp_path / "plant", machines=1, normal=20, abnormal=4, duration_s=2.0, n_jobs=1)
    ingest([str(tmp_path / "plant")], n_jobs=1)
    ids = [m.model_id for m in (train("fan/id_00", "mahalanobis").trained + train("fan/id_00", "mahalanobis").trained)]
    write_plant(tmp_path / "more", machines=1, normal=3, abnormal=3, duration_s=2.0, seed=7, n_jobs=1)
    field = tmp_path / "field" / "fan" / "id_00"
    field.mkdir(parents=True)
    for n, wav in enumerate(sorted((tmp_path / "more").rglob("*.wav"))):
        (field / f"snippet_{n}_{wav.parent.name}.wav").write_bytes(wav.read_bytes())
    ingest([str(tmp_path / "field")], n_jobs=1)
    with session_scope() as session:
        clips = {p.name: clip_by_path(session, str(p.resolve())).id for p in field.iterdir()}
    verdicts = {name: ("abnormal" if "abnormal" in name else "normal") for name in clips}
    for name, clip_id in clips.items():
        record_verdict(clip_id, "ana", verdicts[name])
    disputed = next(clip_id for name, clip_id in clips.items() if verdicts[name] == "normal")
    record_verdict(disputed, "bob", "abnormal")  # annotators disagree: not a label yet
    result = compare_models("fan/id_00", ids)
    assert "5 of them field clips labelled by the pilots' verdicts" in result.test_set
    with session_scope() as session:
        n_split = len(test_clips(session, [session.scalars(select(Machine.id)).one()]))
    assert result.n_test == n_split + 5  # the disputed snippet is left out
    assert sum(result.results[0].at_threshold.confusion.as_dict().values()) == n_split + 5


# --- disagreements and thresholds tuned on the graded clips ------------------------------------------------------


def test_disagreements_are_the_graded_clips_one_model_flags_and_the_other_passes(two_models):
    v1, v2 = two_models  # v1's threshold is the median of its scores, v2's a gamma fit: they disagree
    result = compare_models(MACHINE, [v1, v2])
    (_, s1, t1), (_, s2, t2) = _expected(MACHINE, v1), _expected(MACHINE, v2)
    split = ((s1 > t1) != (s2 > t2)).sum()
    assert len(result.disagreements) == split > 0
    with session_scope() as session:
        for d in result.disagreements:
            clip = session.get(Clip, d.clip_id)
            assert d.file == Path(clip.path).name and d.label == clip.label
            assert d.flagged == (d.scores[0] > t1, d.scores[1] > t2) and d.flagged[0] != d.flagged[1]
            assert d.scores == tuple(
                session.scalar(select(Score.score).where(Score.model_id == m, Score.clip_id == d.clip_id))
                for m in (v1, v2)
            )
    assert [d.scores[0] for d in result.disagreements] == sorted((d.scores[0] for d in result.disagreements),
                                                                 reverse=True)  # fmt: skip
    assert compare_models(MACHINE, [v1, v1]).disagreements == []  # a model agrees with itself


def test_a_threshold_fitted_on_labels_the_comparison_grades_is_named_in_the_warnings(two_models):
    v1, v2 = two_models
    assert compare_models(MACHINE, [v1, v2]).tuned_on_graded == {}  # by hand and by gamma: no labels
    fitted = suggest(MACHINE, SuggestOptions("max_f1", use_test=True))
    set_threshold(MACHINE, fitted.value, set_by="erin", reason=fitted.reason, method="max_f1")  # v2 is active
    result = compare_models(MACHINE, [v1, v2])
    assert list(result.tuned_on_graded) == [f"Mahalanobis v2 ({MACHINE})"]
    how = result.tuned_on_graded[f"Mahalanobis v2 ({MACHINE})"]
    assert how.startswith(f"max F1 on labelled clips including {result.n_test} of the {result.n_test} graded here")
    assert any(w.startswith(f"Mahalanobis v2 ({MACHINE})'s threshold was tuned on the clips") for w in result.warnings)
    # fitted without the test split, on no field clip: nothing of the graded clips was tuned on
    reason = "maximum F1 on 3 labelled clips; scored clips outside the training and test splits"
    set_threshold(MACHINE, fitted.value, set_by="erin", method="max_f1", reason=reason)
    assert compare_models(MACHINE, [v1, v2]).tuned_on_graded == {}
