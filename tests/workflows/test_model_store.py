"""core.workflows.model_store: where trained detectors live on disk, and loading each one once per process."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from core.detection.base import META_FILE
from core.detection.registry import Detector
from core.errors import BadInputError, Reason
from core.signal.batch import extract_features
from core.workflows.ingest import ingest
from core.workflows.model_store import artifact_dir, load_detector
from core.workflows.scoring import score
from core.workflows.training import train
from db.models import Clip, DetectorModel, Score
from db.session import session_scope
from tests.conftest import tone, write_wav


def _model(model_id: int) -> DetectorModel:
    with session_scope() as session:
        return session.get(DetectorModel, model_id)


def _training_features(model: DetectorModel) -> list:
    with session_scope() as session:
        paths = [session.get(Clip, clip_id).path for clip_id in model.provenance["clip_ids"]]
    batch = extract_features(paths, n_jobs=1)
    assert batch.failures == {}
    return [batch.features[p] for p in paths]


def _h(scope: str) -> str:
    return hashlib.sha256(scope.encode()).hexdigest()[:8]


def test_artifact_dir_layout(data_dir):
    models = data_dir.resolve() / "models"
    assert (
        artifact_dir("mahalanobis", "fan/id_00", 3) == models / "mahalanobis" / f"fan__id_00-{_h('fan/id_00')}" / "v3"
    )
    assert artifact_dir("autoencoder", "fan", 1) == models / "autoencoder" / f"fan-{_h('fan')}" / "v1"
    assert artifact_dir("mahalanobis", "fan/section_00", 12).name == "v12"
    assert not artifact_dir("mahalanobis", "fan", 1).exists()  # naming a folder does not create it


@pytest.mark.parametrize(
    ("scope", "folder"),
    [
        ("my fan/id 00", "my_fan__id_00"),
        ("fan/id:00", "fan__id_00"),
        ("pompe-é/id_01", "pompe-___id_01"),
        ("a/b/c", "a__b__c"),
        ("v1.2/x", "v1.2__x"),
    ],
)
def test_artifact_dir_sanitises_the_scope_into_one_folder_name(data_dir, scope, folder):
    path = artifact_dir("mahalanobis", scope, 1)
    assert path.parent.name == f"{folder}-{_h(scope)}"
    assert path.parent.parent == data_dir.resolve() / "models" / "mahalanobis"


def test_artifact_dir_follows_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "elsewhere"))
    assert artifact_dir("mahalanobis", "fan/id_00", 1) == (tmp_path / "elsewhere").resolve() / (
        f"models/mahalanobis/fan__id_00-{_h('fan/id_00')}/v1"
    )


def test_load_detector_caches_and_reproduces_the_scores(plant):
    (trained, _) = train(detector="mahalanobis").trained
    model = _model(trained.model_id)

    first = load_detector(model.artifact_path)
    assert load_detector(model.artifact_path) is first
    fresh = Detector.load(model.artifact_path)
    assert fresh is not first
    assert (first.name, first.params, first.feature_params) == ("mahalanobis", fresh.params, fresh.feature_params)

    saved = json.loads(Path(model.artifact_path, META_FILE).read_text())["decision_scores"]
    assert list(first.decision_scores_) == saved
    features = _training_features(model)
    assert first.decision_function(features) == pytest.approx(saved, rel=1e-6)
    assert fresh.decision_function(features) == pytest.approx(saved, rel=1e-6)

    # what scoring stores is what the loaded detector gives
    score("fan/id_00")
    with session_scope() as session:
        rows = session.execute(
            select(Clip.path, Score.score).join(Score, Score.clip_id == Clip.id).where(Score.model_id == model.id)
        ).all()
    assert len(rows) == 26
    batch = extract_features([p for p, _ in rows], n_jobs=1)
    assert fresh.decision_function([batch.features[p] for p, _ in rows]) == pytest.approx(
        [s for _, s in rows], rel=1e-6
    )


@pytest.mark.slow
def test_a_saved_autoencoder_reproduces_its_training_scores(plant):
    (trained,) = train("fan/id_00", detector="autoencoder", epochs=5).trained
    model = _model(trained.model_id)
    assert Path(model.artifact_path, "model.keras").is_file()

    loaded = load_detector(model.artifact_path)
    assert loaded is load_detector(model.artifact_path)
    assert (loaded.name, loaded.params["epochs"]) == ("autoencoder", 5)
    assert loaded.decision_function(_training_features(model)) == pytest.approx(loaded.decision_scores_, rel=1e-4)


def test_loading_a_missing_or_broken_artifact_is_a_clear_error(tmp_path):
    with pytest.raises(BadInputError) as info:
        load_detector(str(tmp_path / "nowhere"))
    assert info.value.reason is Reason.CORRUPT
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / META_FILE).write_text("{not json")
    with pytest.raises(BadInputError) as info:
        load_detector(str(broken))
    assert info.value.reason is Reason.CORRUPT


def test_machines_whose_names_sanitise_alike_keep_their_own_models(tmp_path):
    for machine_id, freq in (("id 00", 300.0), ("id_00", 900.0)):
        for k in range(8):
            write_wav(tmp_path / "fan" / machine_id / "normal" / f"{k:02d}.wav", tone(1.0, freq=freq, seed=k))
    assert ingest([str(tmp_path / "fan")], n_jobs=1).ingested == 16

    report = train(detector="mahalanobis")
    assert sorted(t.scope for t in report.trained) == ["fan/id 00", "fan/id_00"]
    with session_scope() as session:
        models = list(session.scalars(select(DetectorModel)))
    for model in models:
        on_disk = json.loads(Path(model.artifact_path, META_FILE).read_text())["provenance"]
        assert on_disk["clip_ids"] == model.provenance["clip_ids"]
    assert len({m.artifact_path for m in models}) == 2
