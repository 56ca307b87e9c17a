"""core.workflows.evaluation: the active models' metrics on the test split (abnormal positive), and detector
comparison."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from core.detection.metrics import metrics_at, partial_auc, roc_auc
from core.detection.thresholds import DEFAULT_QUANTILE, prediction_threshold
from core.errors import BadInputError
from core.workflows.evaluation import automatic_choice, compare_detectors, evaluate, suggested_detector
from core.workflows.scoring import score
from core.workflows.training import train
from core.workflows.tuning import set_threshold
from db.models import Clip, DetectorModel, Machine, Score
from db.queries import active_threshold
from db.session import session_scope

MACHINES = ["fan/id_00", "fan/id_02"]
CONTRACT = {
    "model_id", "detector", "machine", "n_train", "n_test", "auc", "pauc", "threshold",
    "precision", "recall", "f1", "accuracy", "confusion",
}  # fmt: skip


def _test_set(machine: str, model_id: int) -> tuple[np.ndarray, np.ndarray, int]:
    """From the database alone: (y_true abnormal, scores) of the machine's scored labelled test clips,
    and how many labelled test clips it has."""
    machine_type, machine_id = machine.split("/")
    with session_scope() as session:
        where = (
            Machine.machine_type == machine_type,
            Machine.machine_id == machine_id,
            Clip.split == "test",
            Clip.label.in_(("normal", "abnormal")),
        )
        n = session.scalar(select(func.count(Clip.id)).join(Clip.machine).where(*where))
        rows = session.execute(
            select(Clip.label, Score.score)
            .join(Clip.machine)
            .join(Score, (Score.clip_id == Clip.id) & (Score.model_id == model_id))
            .where(*where)
        ).all()
    return np.array([label == "abnormal" for label, _ in rows]), np.array([s for _, s in rows]), n


def _threshold(model_id: int) -> float:
    with session_scope() as session:
        return active_threshold(session, model_id).value


def test_one_record_per_machine_with_the_whole_contract(plant):
    trained = {t.scope: t for t in train(detector="mahalanobis").trained}
    with session_scope() as session:
        assert session.scalar(select(func.count(Score.id))) == 0

    records = evaluate()  # scores the test clips itself

    assert [r["machine"] for r in records] == MACHINES
    for r in records:
        assert r.keys() >= CONTRACT
        assert r["confusion"].keys() == {"tp", "fp", "tn", "fn"}
        t = trained[r["machine"]]
        assert (r["model_id"], r["detector"], r["n_train"]) == (t.model_id, "mahalanobis", t.n_train)

        y, s, n_labelled = _test_set(r["machine"], t.model_id)
        assert r["n_test"] == n_labelled == y.size  # every labelled test clip was scored
        assert r["n_test_abnormal"] == int(y.sum()) == 6
        assert sum(r["confusion"].values()) == r["n_test"]

        value = _threshold(t.model_id)
        assert r["threshold"] == pytest.approx(value, abs=1e-6)
        at = metrics_at(y, s, value)
        assert r["confusion"] == at.confusion.as_dict()
        for key in ("precision", "recall", "f1", "accuracy"):
            assert r[key] == pytest.approx(getattr(at, key), abs=1e-6)
        assert r["auc"] == pytest.approx(roc_auc(y, s), abs=1e-6)
        assert r["pauc"] == pytest.approx(partial_auc(y, s), abs=1e-6)
        assert 0.5 < r["auc"] <= 1.0  # the demo faults are detectable


def test_evaluation_follows_the_latest_threshold(plant):
    train(detector="mahalanobis")
    score()
    (before,) = evaluate("fan/id_00")
    y, s, _ = _test_set("fan/id_00", before["model_id"])
    middle = float(np.median(s))
    set_threshold("fan/id_00", middle, set_by="ana", reason="test")

    (after,) = evaluate("fan/id_00")
    assert after["threshold"] == pytest.approx(middle, abs=1e-6)
    expected = metrics_at(y, s, middle).confusion.as_dict()
    assert after["confusion"] == expected
    assert expected["tp"] + expected["fp"] == int(np.sum(s > middle)) < y.size
    assert (after["auc"], after["n_test"]) == (before["auc"], before["n_test"])


def test_only_machines_with_an_active_model_are_evaluated(plant):
    assert evaluate() == []
    (t,) = train("fan/id_02", detector="mahalanobis").trained
    records = evaluate()
    assert [(r["machine"], r["model_id"]) for r in records] == [("fan/id_02", t.model_id)]
    assert evaluate("fan/id_00") == []
    with session_scope() as session:  # evaluating scored only the machine with a model
        scored_machines = session.scalars(
            select(Machine.machine_id).join(Clip, Clip.machine_pk == Machine.id).join(Score, Score.clip_id == Clip.id)
        ).all()
    assert sorted(scored_machines) == ["id_02"] * 26


def test_evaluating_an_empty_database_gives_nothing_and_names_no_machine():
    assert evaluate() == []
    for call in (lambda: evaluate("fan/id_00"), lambda: compare_detectors("fan/id_00")):
        with pytest.raises(BadInputError, match=r"no such machine 'fan/id_00' \(no machines yet: ingest clips first\)"):
            call()


def test_compare_detectors_grades_a_pcen_model_beside_its_log_mel_namesake(plant):
    """Two Mahalanobis models, on log-mel levels and on PCEN, are two kinds: each is graded, not only the newest."""
    (log_mel,) = train("fan/id_00", detector="mahalanobis").trained
    (pcen,) = train("fan/id_00", detector="mahalanobis", front_end="pcen").trained
    rows = {r["model_id"]: r for r in compare_detectors("fan/id_00")}
    assert set(rows) == {log_mel.model_id, pcen.model_id}
    assert (rows[log_mel.model_id]["front_end"], rows[pcen.model_id]["front_end"]) == ("log_mel", "pcen")
    assert rows[log_mel.model_id]["active"] and not rows[pcen.model_id]["active"]

@pytest.mark.slow
def test_compare_detectors_newest_of_each_best_auc_first(plant):
    train("fan/id_00", detector="mahalanobis")
    (newest_maha,) = train("fan/id_00", detector="mahalanobis").trained
    (auto,) = train("fan/id_00", detector="autoencoder", epochs=5).trained
    assert newest_maha.version == 2

    rows = compare_detectors("fan/id_00")

    assert {r["detector"]: (r["model_id"], r["version"]) for r in rows} == {
        "mahalanobis": (newest_maha.model_id, 2),
        "autoencoder": (auto.model_id, 1),
    }
    aucs = [r["auc"] for r in rows]
    assert aucs == sorted(aucs, reverse=True)
    assert [r["detector"] for r in rows if r["active"]] == ["mahalanobis"]  # retraining moved it to v2
    for r in rows:
        y, s, n_labelled = _test_set("fan/id_00", r["model_id"])  # compare scored the test clips itself
        assert r["n_test"] == n_labelled == y.size
        assert r["auc"] == pytest.approx(roc_auc(y, s), abs=1e-6)
        assert r["pauc"] == pytest.approx(partial_auc(y, s), abs=1e-6)
    assert {r["front_end"] for r in rows} == {"log_mel", None}  # the autoencoder has no front end
    assert compare_detectors("fan/id_02") == []  # a machine without models
    with pytest.raises(BadInputError, match="no such machine 'fan/id_09'"):
        compare_detectors("fan/id_09")
    with pytest.raises(BadInputError, match="'fan' is a machine type"):
        compare_detectors("fan")


def test_suggested_detector_is_the_automatic_choice_made_without_the_test_split(plant):
    train("fan/id_00", detector="mahalanobis")
    assert compare_detectors("fan/id_00")[0]["auc"] is not None  # the test split grades ...
    with pytest.raises(BadInputError, match="no automatic choice yet"):
        suggested_detector("fan/id_00")  # ... but never chooses
    (first,) = train("fan/id_00", detector="auto").trained
    choice = automatic_choice("fan/id_00")
    assert choice["model_id"] == first.model_id and suggested_detector("fan/id_00") == choice["detector"]
    assert choice["note"] == first.choice and choice["n_other_clips"] > 0  # fan/id_02's clips are pseudo-anomalies
    assert {"mahalanobis", "band_deviation_max", "frame_knn_top10", "frame_gmm_top10", "machine_id"} <= set(
        choice["evidence"]
    )
    with session_scope() as session:
        model = session.get(DetectorModel, first.model_id)
        used = set(model.provenance["clip_ids"])
        assert used and all(session.get(Clip, i).split != "test" for i in used)
        first_threshold = active_threshold(session, model.id)
        assert "held-out (cross-validated) normal scores" in first_threshold.reason
        # the first threshold: the prediction bound of the chosen detector's held-out normal scores
        held_out = model.provenance["choice"]["held_out_normal"]
        assert first_threshold.method == "prediction_bound" and len(held_out) >= 2
        assert first_threshold.value == pytest.approx(prediction_threshold(held_out, DEFAULT_QUANTILE), rel=1e-9)

    with session_scope(write=True) as session:  # turn the test split upside down: the choice must not move
        for clip in session.scalars(select(Clip).where(Clip.split == "test")):
            clip.label = "normal" if clip.label == "abnormal" else "abnormal"
    (second,) = train("fan/id_00", detector="auto").trained
    again = automatic_choice("fan/id_00")
    assert again["model_id"] == second.model_id
    assert (again["chosen"], again["evidence"]) == (choice["chosen"], choice["evidence"])
    assert automatic_choice("fan/id_02") is None
    with pytest.raises(BadInputError, match="no such machine 'fan/id_09'"):
        suggested_detector("fan/id_09")
    assert again["n_fault_clips"] == 0  # abnormal clips of the test split are never evidence


@pytest.mark.slow
def test_faults_the_team_confirms_outside_the_test_split_inform_the_choice(plant, tmp_path):
    """Field snippets the team confirms abnormal (trusted: two pilots agree) are pseudo-anomalies of the next
    automatic choice; one pilot's word is not, by default, nor a verdict on a test-split clip (the test split stays
    unseen)."""
    import soundfile as sf

    from core.detection.selection import FAULTS
    from core.workflows.ingest import ingest
    from core.workflows.triage import record_verdict
    from tests.conftest import write_wav

    with session_scope() as session:
        test_faults = session.scalars(
            select(Clip).join(Clip.machine)
            .where(Machine.machine_id == "id_00", Clip.split == "test", Clip.label == "abnormal").limit(3)
        ).all()  # fmt: skip
        sources, test_fault = [c.path for c in test_faults[:2]], test_faults[2].id
    field = []
    for k, source in enumerate(sources):  # the same faults recorded again in the field (other bytes: not duplicates)
        audio, rate = sf.read(source)
        field.append(str(write_wav(tmp_path / "field" / "fan" / "id_00" / f"snippet_{k}.wav", 0.9 * audio,
                                   sr=rate).resolve()))  # fmt: skip
    assert ingest([str(tmp_path / "field")]).ingested == 2
    with session_scope() as session:
        field_ids = session.scalars(select(Clip.id).where(Clip.path.in_(field))).all()
    for clip_id in [*field_ids, test_fault]:
        record_verdict(clip_id, "alice", "abnormal", anomaly_type="bearing")
    for clip_id in (field_ids[0], test_fault):  # a second pilot agrees on one field clip, and on the test clip
        record_verdict(clip_id, "bob", "abnormal", anomaly_type="bearing")

    (trained,) = train("fan/id_00", detector="auto").trained
    choice = automatic_choice("fan/id_00")
    assert choice["model_id"] == trained.model_id and choice["n_fault_clips"] == 1
    assert all(FAULTS in e["by_kind"] for e in choice["evidence"].values())
    assert "confirmed faults of this machine" in choice["note"]
    with session_scope() as session:
        assert not set(field_ids) & set(session.get(DetectorModel, trained.model_id).provenance["clip_ids"])
