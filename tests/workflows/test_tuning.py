"""core.workflows.tuning: threshold suggestions (label-free and labelled, never on the test split unless asked) and
thresholds recorded with who, when and why."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import delete, func, select, update

from core.detection.metrics import metrics_at
from core.detection.thresholds import (
    gamma_threshold,
    max_f1_threshold,
    min_cost_threshold,
    target_precision_threshold,
    target_recall_threshold,
)
from core.errors import BadInputError, NoModelError, Reason
from core.workflows.ingest import ingest
from core.workflows.model_store import load_detector
from core.workflows.scoring import score
from core.workflows.training import train
from core.workflows.triage import record_verdict, undo_last
from core.workflows.tuning import SuggestOptions, saved_thresholds, set_threshold, suggest, tuning_data
from db.models import Annotation, Clip, DetectorModel, Machine, Score, Threshold, utcnow
from db.queries import active_threshold, threshold_history
from db.session import session_scope

LABELLED_METHODS = ("max_f1", "target_recall", "target_precision", "min_cost")


@pytest.fixture
def trained(plant_dir) -> dict[str, int]:
    """The plant ingested, a mahalanobis model per machine, every clip scored: ``{machine: model_id}``."""
    assert ingest([str(plant_dir)]).ingested == 52
    models = {t.scope: t.model_id for t in train(detector="mahalanobis").trained}
    assert score().scored == 52
    return models


def _clips(machine: str, model_id: int) -> list[tuple[int, str, str, float]]:
    """``(clip id, label, split, score)`` of every clip of the machine, by id."""
    machine_type, machine_id = machine.split("/")
    with session_scope() as session:
        rows = session.execute(
            select(Clip.id, Clip.label, Clip.split, Score.score)
            .join(Clip.machine)
            .join(Score, (Score.clip_id == Clip.id) & (Score.model_id == model_id))
            .where(Machine.machine_type == machine_type, Machine.machine_id == machine_id)
            .order_by(Clip.id)
        ).all()
    return [tuple(r) for r in rows]


def _n_thresholds() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count(Threshold.id)))


def test_gamma_suggestion_fits_the_models_training_scores(trained):
    model_id = trained["fan/id_00"]
    with session_scope() as session:
        training = load_detector(session.get(DetectorModel, model_id).artifact_path).decision_scores_
        system = active_threshold(session, model_id).value

    s = suggest("fan/id_00")
    assert (s.machine, s.model_id, s.method) == ("fan/id_00", model_id, "gamma")
    assert s.value == pytest.approx(gamma_threshold(training, 0.9), rel=1e-9)
    assert s.value == pytest.approx(system, rel=1e-9)
    assert f"{len(training)} normal training scores" in s.reason

    median = suggest("fan/id_00", SuggestOptions(quantile=0.5))
    assert median.value == pytest.approx(gamma_threshold(training, 0.5), rel=1e-9)
    assert median.value < s.value
    assert _n_thresholds() == 2  # suggesting records nothing


def test_labelled_methods_refuse_without_labelled_abnormals_outside_the_test_split(trained):
    for method in LABELLED_METHODS:
        with pytest.raises(BadInputError, match="no labelled abnormal clip") as info:
            suggest("fan/id_00", SuggestOptions(method=method))
        assert info.value.reason is Reason.INVALID_PARAMETER


def test_labelled_methods_with_use_test_fit_the_test_split_never_the_training_clips(trained):
    model_id = trained["fan/id_00"]
    clips = [c for c in _clips("fan/id_00", model_id) if c[2] == "test"]  # the model trained on the others
    y = np.array([label == "abnormal" for _, label, _, _ in clips])
    s = np.array([value for *_, value in clips])
    assert y.sum() == 6 and not y.all()

    best = suggest("fan/id_00", SuggestOptions(method="max_f1", use_test=True))
    assert (best.method, best.model_id) == ("max_f1", model_id)
    assert best.value == max_f1_threshold(y, s)
    assert "outside the training split" in best.reason and f"{y.size} labelled clips" in best.reason

    options = {"use_test": True, "target": 0.8}
    recall = suggest("fan/id_00", SuggestOptions(method="target_recall", **options))
    assert recall.value == target_recall_threshold(y, s, 0.8)
    precision = suggest("fan/id_00", SuggestOptions(method="target_precision", **options))
    assert precision.value == target_precision_threshold(y, s, 0.8)
    cost = suggest("fan/id_00", SuggestOptions(method="min_cost", use_test=True, cost_miss=5, cost_false_alarm=2))
    assert cost.value == min_cost_threshold(y, s, 5, 2)

    with pytest.raises(BadInputError, match="unknown threshold method"):
        suggest("fan/id_00", SuggestOptions(method="median", use_test=True))


def test_pilot_verdicts_make_labelled_suggestions_possible_without_the_test_split(trained):
    model_id = trained["fan/id_00"]
    field = [c for c in _clips("fan/id_00", model_id) if c[2] == "test"]
    _relabel_unknown([c[0] for c in field])  # field clips, as `watch` brings them in: no label, no split
    by_score = sorted(field, key=lambda c: c[3])
    flagged = [c[0] for c in by_score[-3:]]  # the pilot calls the 3 highest-scoring field clips abnormal
    unsure = by_score[-4][0]
    undone = by_score[0][0]
    normal = [c[0] for c in by_score[1:-4]]  # and the rest normal
    with session_scope(write=True) as session:
        for clip_id in flagged:
            session.add(Annotation(clip_id=clip_id, annotator="pilot", verdict="abnormal", anomaly_type="rubbing"))
        session.add(Annotation(clip_id=unsure, annotator="pilot", verdict="unsure"))
        wrong = Annotation(clip_id=undone, annotator="pilot", verdict="abnormal")
        session.add(wrong)
        session.flush()
        session.add(Annotation(clip_id=undone, annotator="pilot", verdict="abnormal", undoes_id=wrong.id))
        session.add_all(Annotation(clip_id=clip_id, annotator="pilot", verdict="normal") for clip_id in normal)
        # a verdict on a training clip is never tuned on: the model learned it
        train_clip = next(c[0] for c in _clips("fan/id_00", model_id) if c[2] == "train")
        session.add(Annotation(clip_id=train_clip, annotator="pilot", verdict="abnormal"))

    kept = [c for c in field if c[0] in {*flagged, *normal}]
    y = np.array([c[0] in flagged for c in kept])
    s = np.array([c[3] for c in kept])

    best = suggest("fan/id_00", SuggestOptions(method="max_f1"))
    assert best.value == max_f1_threshold(y, s)
    assert f"{len(kept)} labelled clips: ground truth for 0, pilot verdicts for {len(kept)}" in best.reason
    assert "outside the training and test splits" in best.reason
    recall = suggest("fan/id_00", SuggestOptions(method="target_recall", target=1.0))
    assert recall.value == target_recall_threshold(y, s, 1.0)
    assert recall.value < min(c[3] for c in kept if c[0] in flagged)

    # the other machine has no verdicts: still refused
    with pytest.raises(BadInputError):
        suggest("fan/id_02", SuggestOptions(method="max_f1"))


def test_set_threshold_appends_a_record_and_the_latest_is_active(trained):
    model_id = trained["fan/id_00"]
    first = set_threshold("fan/id_00", 1.5, set_by="ana", reason="too many false alarms")
    with session_scope() as session:
        row = session.get(Threshold, first)
        assert (row.model_id, row.value, row.method, row.set_by, row.reason) == (
            model_id, 1.5, "manual", "ana", "too many false alarms",
        )  # fmt: skip
        assert row.set_at is not None
        assert active_threshold(session, model_id).id == first

    second = set_threshold("fan/id_00", 2.25, set_by="bo", reason="max F1 on pilots", method="max_f1")
    assert second > first
    with session_scope() as session:
        active = active_threshold(session, model_id)
        assert (active.id, active.value, active.method, active.set_by) == (second, 2.25, "max_f1", "bo")
        history = threshold_history(session, model_id)
        assert [h.set_by for h in history] == ["bo", "ana", "system"]  # nothing is overwritten
        other = active_threshold(session, trained["fan/id_02"])
        assert (other.method, other.set_by) == ("gamma", "system")  # the other machine is untouched


def test_the_audit_log_says_a_threshold_in_words(trained):
    """The Audit page's detail: the method and the model as the pages name them, not 'by max_f1 on model 3'."""
    from core.access import Actor, Role
    from core.workflows.audit import audit_events

    set_threshold("fan/id_00", 2.25, set_by="bo", reason="max F1 on pilots", method="max_f1")
    set_threshold("fan/id_00", 12345, set_by="bo", reason="quiet week")
    details = [e["detail"] for e in audit_events(actor=Actor("ana", Role.ADMIN)) if e["action"] == "set threshold"]
    model_id = trained["fan/id_00"]
    assert details == [f"12345 (set by hand) for Mahalanobis v1 (model {model_id}): quiet week",
                       f"2.25 (max F1) for Mahalanobis v1 (model {model_id}): max F1 on pilots"]  # fmt: skip


def test_set_threshold_refuses_bad_input_and_records_nothing(trained):
    before = _n_thresholds()
    refused = [
        dict(value=1.0, set_by=""),
        dict(value=1.0, set_by="   "),
        dict(value=math.nan, set_by="ana"),
        dict(value=math.inf, set_by="ana"),
        dict(value=-math.inf, set_by="ana"),
        dict(value=1.0, set_by="a" * 129),  # longer than a person's name may be
        dict(value=1.0, set_by="ana", method="by ear"),  # not a method the product knows
        dict(value=1.0, set_by="ana", method="m" * 40),
    ]
    for kwargs in refused:
        with pytest.raises(BadInputError) as info:
            set_threshold("fan/id_00", reason="r", **kwargs)
        assert info.value.reason is Reason.INVALID_PARAMETER
    with pytest.raises(BadInputError, match="no such machine 'fan/id_09'"):
        set_threshold("fan/id_09", 1.0, set_by="ana", reason="r")
    with pytest.raises(BadInputError, match="'fan' is a machine type; give one machine as TYPE/ID"):
        set_threshold("fan", 1.0, set_by="ana", reason="r")
    assert _n_thresholds() == before


def test_a_machine_without_a_model_cannot_be_tuned(plant_dir):
    ingest([str(plant_dir)])
    with pytest.raises(NoModelError, match="no trained model yet"):
        suggest("fan/id_00")
    with pytest.raises(NoModelError, match="no trained model yet"):
        set_threshold("fan/id_00", 1.0, set_by="ana", reason="r")


# --- tuning_data ------------------------------------------------------------------------------------------------


def _relabel_unknown(clip_ids: list[int]) -> None:
    """Make clips unlabelled, as clips from a plain folder are: label ``unknown``, in neither split."""
    with session_scope(write=True) as session:
        session.execute(update(Clip).where(Clip.id.in_(clip_ids)).values(label="unknown", split="none"))


def test_tuning_data_uses_ground_truth_outside_the_training_split(trained):
    model_id = trained["fan/id_00"]
    outside = [c for c in _clips("fan/id_00", model_id) if c[2] != "train"]
    assert {label for _, label, _, _ in outside} == {"normal", "abnormal"}

    assert tuning_data("fan/id_00").scores.size == 0  # without the test split: no labelled clip here yet
    data = tuning_data("fan/id_00", use_test=True)
    assert (data.machine, data.model_id, data.detector) == ("fan/id_00", model_id, "mahalanobis")
    assert data.is_abnormal.dtype == bool and data.scores.shape == data.is_abnormal.shape == (len(outside),)
    assert sorted(zip(data.scores.tolist(), data.is_abnormal.tolist(), strict=True)) == sorted(
        (value, label == "abnormal") for _, label, _, value in outside
    )
    assert data.label_source.startswith(
        f"{len(outside)} labelled clips: ground truth for {len(outside)}, pilot verdicts for 0 (0 single-annotator, "
        "0 double-confirmed), adjudications for 0;"
    )
    with session_scope() as session:
        assert data.threshold == active_threshold(session, model_id).value
    assert data.clips_per_day == pytest.approx(26 / 7)
    assert data.unlabelled_scores.size == 0

    set_threshold("fan/id_00", 3.5, set_by="ana", reason="r")
    assert tuning_data("fan/id_00").threshold == 3.5
    assert tuning_data("fan/id_02").threshold != 3.5


def test_tuning_data_labels_unknown_clips_by_pilot_verdict(trained):
    model_id = trained["fan/id_00"]
    clips = _clips("fan/id_00", model_id)
    score_of = {c[0]: c[3] for c in clips}
    tests = [c for c in clips if c[2] == "test"]
    test_normals = [c[0] for c in tests if c[1] == "normal"]
    test_abnormals = [c[0] for c in tests if c[1] == "abnormal"]
    assert len(test_normals) >= 3 and len(test_abnormals) >= 3
    says_abnormal, says_normal, unsure, undone, silent = test_abnormals[0], test_normals[0], test_normals[1], \
        test_abnormals[1], test_abnormals[2]  # fmt: skip
    _relabel_unknown([says_abnormal, says_normal, unsure, undone, silent])
    contradicted = test_normals[2]  # a labelled clip: the pilot's verdict wins over its ground truth
    train_clip = next(c[0] for c in clips if c[2] == "train")
    with session_scope(write=True) as session:
        session.execute(update(Clip).where(Clip.id == train_clip).values(label="unknown"))  # still trains
    record_verdict(says_abnormal, "ana", "abnormal", anomaly_type="bearing")
    record_verdict(says_normal, "ana", "normal")
    record_verdict(unsure, "ana", "unsure")
    record_verdict(undone, "ana", "abnormal")
    undo_last("ana")
    record_verdict(contradicted, "bo", "abnormal")
    record_verdict(train_clip, "bo", "abnormal")

    data = tuning_data("fan/id_00", use_test=True)
    unknown = {says_abnormal, says_normal, unsure, undone, silent, contradicted}
    truth = [(c[3], c[1] == "abnormal") for c in clips if c[2] == "test" and c[0] not in unknown]
    pilot = [(score_of[says_abnormal], True), (score_of[says_normal], False), (score_of[contradicted], True)]
    assert sorted(zip(data.scores.tolist(), data.is_abnormal.tolist(), strict=True)) == sorted(truth + pilot)
    assert score_of[train_clip] not in data.scores and score_of[train_clip] not in data.unlabelled_scores
    assert data.label_source.startswith(
        f"{len(truth) + 3} labelled clips: ground truth for {len(truth)}, pilot verdicts for 3 (3 single-annotator, "
        "0 double-confirmed), adjudications for 0 (1 unsure left out);"
    )
    assert sorted(data.unlabelled_scores.tolist()) == sorted(score_of[c] for c in (unsure, undone, silent))


def test_tuning_data_counts_clips_ingested_in_the_last_week(trained):
    model_id = trained["fan/id_00"]
    ids = [c[0] for c in _clips("fan/id_00", model_id)]
    with session_scope(write=True) as session:
        session.execute(update(Clip).where(Clip.id.in_(ids[:4])).values(ingested_at=utcnow() - timedelta(days=10)))
        session.execute(update(Clip).where(Clip.id.in_(ids[4:7])).values(ingested_at=utcnow() - timedelta(days=6)))
    assert tuning_data("fan/id_00").clips_per_day == pytest.approx((26 - 4) / 7)
    assert tuning_data("fan/id_02").clips_per_day == pytest.approx(26 / 7)
    with session_scope(write=True) as session:
        session.execute(update(Clip).values(ingested_at=utcnow() - timedelta(days=30)))
    assert tuning_data("fan/id_00").clips_per_day == 0.0


def test_tuning_data_scores_missing_clips_first(trained):
    model_id = trained["fan/id_00"]
    outside = [c[0] for c in _clips("fan/id_00", model_id) if c[2] != "train"]
    with session_scope(write=True) as session:
        session.execute(delete(Score).where(Score.model_id == model_id, Score.clip_id.in_(outside[:3])))
    assert len([c for c in _clips("fan/id_00", model_id) if c[2] != "train"]) == len(outside) - 3
    data = tuning_data("fan/id_00", use_test=True)
    assert data.scores.size == len(outside)
    assert len([c for c in _clips("fan/id_00", model_id) if c[2] != "train"]) == len(outside)


def test_tuning_data_needs_a_machine_with_a_model(trained):
    for spec in ("fan/id_09", "fan"):
        with pytest.raises(BadInputError, match="no such machine|is a machine type") as info:
            tuning_data(spec)
        assert info.value.reason is Reason.INVALID_PARAMETER
    with session_scope(write=True) as session:
        session.execute(update(Machine).values(active_model_id=None))
    with pytest.raises(NoModelError, match="no trained model yet"):
        tuning_data("fan/id_00")


@pytest.mark.parametrize("use_test", [False, True])
def test_page_metrics_and_every_suggestion_share_one_labelled_set_and_max_f1_maximises_f1_on_it(trained, use_test):
    model_id = trained["fan/id_00"]
    test = [c for c in _clips("fan/id_00", model_id) if c[2] == "test"]
    _relabel_unknown([c[0] for c in test[::2]])  # half the test clips become field clips the pilots judge
    for clip_id, *_ in test[::2]:
        record_verdict(clip_id, "ana", "abnormal" if clip_id % 3 == 0 else "normal")
    data = tuning_data("fan/id_00", use_test=use_test)
    assert data.is_abnormal.any() and not data.is_abnormal.all()
    best = suggest("fan/id_00", SuggestOptions(method="max_f1", use_test=use_test))
    assert data.label_source in best.reason  # the same clips, described the same way

    def f1(threshold: float) -> float:
        return metrics_at(data.is_abnormal, data.scores, threshold).f1

    candidates = [*data.scores, data.scores.min() - 1]
    assert f1(best.value) == pytest.approx(max(f1(t) for t in candidates))
    recall = suggest("fan/id_00", SuggestOptions(method="target_recall", use_test=use_test))
    assert recall.value == target_recall_threshold(data.is_abnormal, data.scores, 0.9)  # the same set again


def test_without_labelled_anomalies_the_refusal_says_what_to_do_in_the_users_words(trained):
    with pytest.raises(BadInputError) as info:
        suggest("fan/id_00", SuggestOptions(method="max_f1"))
    detail = info.value.detail
    assert "no labelled abnormal clip to fit on" in detail
    assert "judge flagged clips on the Triage page" in detail
    assert '"Include the test split" box on the Thresholds page, --use-test on the command line' in detail
    assert "use_test" not in detail and "The gamma quantile needs no labels" in detail


def test_target_recall_reports_the_recall_it_reaches(trained):
    clips = [c for c in _clips("fan/id_00", trained["fan/id_00"]) if c[2] == "test"]
    y = np.array([label == "abnormal" for _, label, _, _ in clips])
    s = np.array([value for *_, value in clips])
    exact = suggest("fan/id_00", SuggestOptions(method="target_recall", target=0.5, use_test=True))
    assert metrics_at(y, s, exact.value).recall == 0.5  # 3 of the 6 anomalies: the target, met exactly
    assert "3 of 6 labelled anomalies flagged (recall 0.5)" in exact.reason
    over = suggest("fan/id_00", SuggestOptions(method="target_recall", target=0.6, use_test=True))
    assert metrics_at(y, s, over.value).recall == pytest.approx(4 / 6)  # the least the 6 anomalies allow
    assert "4 of 6 labelled anomalies flagged (recall 0.667, the lowest of at least 0.6" in over.reason


def test_a_suggestion_says_how_it_was_found_apart_from_the_clips_it_fitted_on(trained):
    """The page put the whole reason in its note: the label policy again under the caption that gives it, and
    'recall >= 0.9'. ``how`` is the reason's first part, in words."""
    recall = suggest("fan/id_00", SuggestOptions(method="target_recall", target=0.6, use_test=True))
    assert recall.how.startswith("recall at least 0.6: 4 of 6 labelled anomalies flagged")
    assert recall.reason == f"{recall.how} on {tuning_data('fan/id_00', use_test=True).label_source}"
    assert ">=" not in recall.reason
    precision = suggest("fan/id_00", SuggestOptions(method="target_precision", target=0.5, use_test=True))
    assert precision.how == "precision at least 0.5" and precision.reason.startswith(precision.how + " on ")
    gamma = suggest("fan/id_00", SuggestOptions(method="gamma"))
    assert gamma.how == gamma.reason  # no labelled clips to name


def test_saved_thresholds_lists_the_active_models_thresholds_newest_first(trained):
    set_threshold("fan/id_00", 3.5, set_by="ana", reason="quieter nights", method="max_f1")
    set_threshold("fan/id_02", 9.0, set_by="bo", reason="other machine")
    records = saved_thresholds("fan/id_00")
    assert [(r.set_by, r.value, r.method, r.reason) for r in records] == [
        ("ana", 3.5, "max_f1", "quieter nights"),
        ("system", records[1].value, "gamma", records[1].reason),
    ]
    assert records[0].set_at >= records[1].set_at
    with pytest.raises(NoModelError):
        with session_scope(write=True) as session:
            session.execute(update(Machine).values(active_model_id=None))
        saved_thresholds("fan/id_00")


# --- the labelled set at scale: four columns for the labelled and judged clips, a rank sketch of the rest ------------


def _seeded_plant(url: str) -> dict:
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "db_scale", Path(__file__).resolve().parents[2] / "bench" / "db_scale.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench.seed(url, 3000, n_machines=2, overlap=0.3)


def _every_clip_reference(url: str, machine: str, use_test: bool) -> tuple[list[tuple[float, bool]], list[float], str]:
    """The labelled set as it was read before it was bounded: every scored clip through the label policy."""
    from core.vocabulary import Label, Split
    from core.workflows.labels import RULE, describe, labels_for_machines
    from db.queries import machines_matching, scored_clips

    with session_scope(url) as session:
        (found,) = machines_matching(session, machine)
        excluded = {Split.TRAIN} if use_test else {Split.TRAIN, Split.TEST}
        rows = [(c, s) for c, s in scored_clips(session, found.active_model_id, [found.id]) if c.split not in excluded]
        labels = labels_for_machines(session, [c for c, _ in rows], [found.id])
        where = "outside the training split" if use_test else "outside the training and test splits"
        text = f"{describe(labels.values())}; scored clips {where} that the model did not train on; rule: {RULE}"
        labelled = sorted((s, labels[c.id].label == Label.ABNORMAL) for c, s in rows if labels[c.id].label)
        return labelled, sorted(s for c, s in rows if labels[c.id].label is None), text


@pytest.mark.parametrize("use_test", [False, True])
def test_the_labelled_set_reads_the_labels_and_a_bounded_sketch_of_the_rest(any_db_url, monkeypatch, use_test):
    import core.workflows.tuning as tuning

    monkeypatch.setattr(tuning, "SKETCH_POINTS", 40)
    seeded = _seeded_plant(any_db_url)
    machine = seeded["machines"][0]
    labelled, unlabelled, description = _every_clip_reference(any_db_url, machine, use_test)
    data = tuning_data(machine, use_test=use_test, url=any_db_url)
    assert sorted(zip(data.scores.tolist(), data.is_abnormal.tolist(), strict=True)) == labelled
    assert data.label_source == description and data.is_abnormal.any() and not data.is_abnormal.all()
    assert len(unlabelled) >= 400 and data.unlabelled_scores.size <= 41 + 60  # the sketch, and the judged unlabelled
    assert data.unlabelled_weights.sum() == pytest.approx(len(unlabelled))
    assert data.unlabelled_scores.min() == unlabelled[0] and data.unlabelled_scores.max() == unlabelled[-1]
    everything = np.array([s for s, _ in labelled] + unlabelled)
    for value in np.quantile(everything, [0.0, 0.1, 0.5, 0.9, 0.95, 0.99]):
        assert data.flagged_share(value) == pytest.approx(np.mean(everything > value), abs=1 / 40)
    monkeypatch.setattr(tuning, "SKETCH_POINTS", 10**6)  # few enough: every score, each standing for one clip
    exact = tuning_data(machine, use_test=use_test, url=any_db_url)
    assert sorted(exact.unlabelled_scores.tolist()) == unlabelled and set(exact.unlabelled_weights) == {1.0}
    assert exact.flagged_share(float(np.median(everything))) == pytest.approx(
        np.mean(everything > np.median(everything))
    )
