"""core.supervised.local: the spectrogram CNN trained on a real export of a demo plant, registered as a model
version, evaluated on the export's test images, then used like any other model (scoring, comparison,
activation); and the refusals around supervised training in core.workflows.training.

The plant, its export and one trained job are made once for the module (training takes ~10 s on a CPU);
every test gets its own copy of that database, so nothing one test writes reaches another.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from core.datasets.demo import write_plant
from core.detection.base import META_FILE
from core.detection.metrics import metrics_at, roc_auc
from core.detection.registry import Detector
from core.detection.spectrogram_cnn import MODEL_FILE, SpectrogramCNN
from core.errors import BadInputError, NoModelError, Reason
from core.signal.batch import file_features
from core.signal.spectrogram_image import IMAGE_FEATURES
from core.supervised.base import DECISION_THRESHOLD, ExportRef, register_model, resolve_export
from core.supervised.jobs import job_status, recent_jobs
from core.supervised.local import DETECTOR, LocalTrainer
from core.workflows.comparison import compare_models
from core.workflows.export import SUMMARY_FILE, ExportOptions, export_dataset, read_images
from core.workflows.ingest import ingest
from core.workflows.model_store import load_detector
from core.workflows.scoring import score_with_model
from core.workflows.training import activate, active_model_id, train
from db.models import Clip, DetectorModel, Score, Threshold, TrainingJob
from db.queries import clip_scores, machine_by_key, score_details
from db.queries import test_clips as machine_test_clips  # not collected as a test
from db.session import DB_FILENAME, dispose_engines, session_scope

# 40 normal + 20 abnormal 3 s clips per fan: the export keeps 20 of each class per machine (30 train + 10 test
# images per class), and fan/id_00's test split keeps normal clips the CNN never saw, for compare_models.
NORMAL, ABNORMAL = 40, 20
MIN_TEST_AUC = 0.75  # chance is 0.5; measured 0.98 with the default parameters
MACHINE = "fan/id_00"


@dataclass(frozen=True)
class Trained:
    data: Path  # the template DATA_DIR (its models folder holds the CNN's files)
    export_dir: Path
    summary: dict
    job_id: int
    progress: list[tuple[int, int]]


@pytest.fixture(scope="module")
def cnn_plant(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cnn_plant")
    write_plant(out, machines=2, normal=NORMAL, abnormal=ABNORMAL, duration_s=3.0, seed=0, n_jobs=1)
    return out


@pytest.fixture(scope="module")
def _trained_template(tmp_path_factory, cnn_plant) -> Trained:
    """The plant ingested, exported and trained on once, in a DATA_DIR of this module's own."""
    root = tmp_path_factory.mktemp("trained")
    folder = root / "data"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATA_DIR", str(folder))
        patch.delenv("DATABASE_URL", raising=False)
        patch.setenv("DEMO_PLANT", "0")
        report = ingest([str(cnn_plant)], n_jobs=1)
        assert (report.ingested, report.rejected) == (2 * (NORMAL + ABNORMAL), [])
        summary = export_dataset(root / "export", n_jobs=1)
        calls: list[tuple[int, int]] = []
        job_id = LocalTrainer().train(root / "export", user="ana", progress=lambda d, t: calls.append((d, t)))
        dispose_engines()
    return Trained(folder, root / "export", summary, job_id, calls)


@pytest.fixture
def trained(data_dir, _trained_template) -> Trained:
    """This test's DATA_DIR holding its own copy of the trained database (the plant, the export and the
    CNN's files stay in the module's folders)."""
    dispose_engines()
    data_dir.mkdir(parents=True, exist_ok=True)
    for file in _trained_template.data.glob(f"{DB_FILENAME}*"):
        shutil.copy2(file, data_dir / file.name)
    return _trained_template


def _records(trained: Trained, subset: str) -> list[dict]:
    return [r for r in trained.summary["images"] if r["subset"] == subset]


def _model(model_id: int) -> DetectorModel:
    with session_scope() as session:
        model = session.get(DetectorModel, model_id)
        session.expunge(model)
        return model


# --- one training run, end to end ----------------------------------------------------------------------------------


def test_the_job_completes_with_a_model_and_an_evaluation(trained):
    status = job_status(trained.job_id)
    assert status.backend == "local"
    assert status.status == "completed"
    assert status.done
    assert status.message == ""
    assert status.finished_at is not None
    assert status.model_id is not None
    assert status.export_id == trained.summary["export_id"]
    assert status.external["export_dir"] == str(trained.export_dir)
    assert status.external["trained_by"] == "ana"
    assert status.progress == 1.0
    assert [j.job_id for j in recent_jobs(backend="local")] == [trained.job_id]


def test_progress_is_reported_after_every_epoch(trained):
    n_images = len(_records(trained, "train"))
    assert SpectrogramCNN().epochs_for(n_images) > SpectrogramCNN.default_params()["epochs"]  # raised to min_steps
    epochs, repeats = SpectrogramCNN().schedule_for(n_images)  # run as fewer epochs of the images repeated
    assert repeats > 1 and trained.progress == [(epoch, epochs) for epoch in range(1, epochs + 1)]


def test_the_model_is_registered_with_its_files_and_the_default_threshold(trained):
    model = _model(job_status(trained.job_id).model_id)
    train_records = _records(trained, "train")
    assert (model.detector, model.scope, model.version) == (DETECTOR, "fan", 1) == ("spectrogram_cnn", "fan", 1)
    assert model.status == "ready"
    folder = Path(model.artifact_path)
    assert folder.is_dir() and folder.is_relative_to(trained.data.resolve())
    assert (folder / MODEL_FILE).is_file() and (folder / META_FILE).is_file()
    assert model.params["detector"] == SpectrogramCNN.default_params()
    assert model.params["features"] == IMAGE_FEATURES.as_dict()
    assert model.provenance["export_id"] == trained.summary["export_id"]
    assert model.provenance["export_dir"] == str(trained.export_dir)
    assert model.provenance["job_id"] == trained.job_id
    assert model.provenance["trained_by"] == "ana"
    assert model.provenance["n_train"] == len(train_records)
    assert model.provenance["clip_ids"] == [r["clip_id"] for r in train_records]
    with session_scope() as session:
        thresholds = session.scalars(select(Threshold).where(Threshold.model_id == model.id)).all()
        assert [(t.value, t.method, t.set_by) for t in thresholds] == [(DECISION_THRESHOLD, "default", "system")]
    assert DECISION_THRESHOLD == 0.5


def test_the_evaluation_covers_every_test_image_and_is_stored_as_scores(trained):
    status = job_status(trained.job_id)
    test_records = _records(trained, "test")
    n_test = sum(trained.summary["counts"]["test"].values())
    assert len(test_records) == n_test == 20

    evaluation = status.external["evaluation"]
    assert evaluation["n"] == n_test
    assert evaluation["threshold"] == 0.5
    assert sum(evaluation["confusion"].values()) == n_test
    assert LocalTrainer().evaluate(trained.job_id) == evaluation  # local jobs: the stored evaluation

    predictions = status.external["predictions"]
    assert [p["clip_id"] for p in predictions] == [r["clip_id"] for r in test_records]
    assert [p["file"] for p in predictions] == [r["file"] for r in test_records]
    assert [p["label"] for p in predictions] == [r["label"] for r in test_records]
    p_abnormal = np.array([p["p_abnormal"] for p in predictions])
    assert ((p_abnormal >= 0) & (p_abnormal <= 1)).all()

    y = np.array([p["label"] == "abnormal" for p in predictions])
    at = metrics_at(y, p_abnormal, 0.5)
    assert evaluation["confusion"] == at.confusion.as_dict()
    assert evaluation["accuracy"] == pytest.approx(at.accuracy, abs=1e-6)
    assert evaluation["auc"] == pytest.approx(roc_auc(y, p_abnormal), abs=1e-5)

    with session_scope() as session:
        stored = clip_scores(session, status.model_id, [p["clip_id"] for p in predictions])
        n_scores = session.scalar(select(func.count()).select_from(Score).where(Score.model_id == status.model_id))
    assert n_scores == n_test  # the test images only, until the model scores other clips
    np.testing.assert_allclose([stored[p["clip_id"]] for p in predictions], p_abnormal, atol=1e-6)


def test_the_local_cnn_beats_chance_on_the_exports_test_images(trained):
    auc = job_status(trained.job_id).external["evaluation"]["auc"]
    assert auc >= MIN_TEST_AUC, f"local CNN: test AUC {auc:.3f}"


def test_the_saved_model_is_the_evaluated_model(trained):
    status = job_status(trained.job_id)
    detector = Detector.load(_model(status.model_id).artifact_path)
    assert isinstance(detector, SpectrogramCNN)
    images, labels, records = read_images(trained.export_dir, "test")
    p = detector.predict_images(images)
    stored = [x["p_abnormal"] for x in status.external["predictions"]]
    np.testing.assert_allclose(p, stored, atol=1e-5)
    assert labels.sum() == len(records) // 2  # the export is balanced


def test_the_model_scores_other_clips_from_their_audio(trained):
    status = job_status(trained.job_id)
    model = _model(status.model_id)
    with session_scope() as session:
        pks = [machine_by_key(session, m).id for m in ("fan/id_00", "fan/id_02")]
        n_clips = session.scalar(select(func.count()).select_from(Clip))
    report = score_with_model(model, pks, n_jobs=1)
    n_test = len(status.external["predictions"])
    assert report.failed == []
    assert report.scored == n_clips - n_test  # the test images' clips were scored by the evaluation
    with session_scope() as session:
        scores = session.scalars(select(Score).where(Score.model_id == model.id)).all()
        assert len(scores) == n_clips
        assert all(0.0 <= s.score <= 1.0 for s in scores)
        labels = {c.id: c.label for c in session.scalars(select(Clip))}
        details = score_details(session, model.id, _records(trained, "train")[0]["clip_id"])
    assert len(details["band_errors"]) == IMAGE_FEATURES.n_mels
    assert len(details["frame_errors"]) > 0
    # scored from the audio, the training clips (about three quarters of the export) are ranked as learned
    train_ids = [r["clip_id"] for r in _records(trained, "train")]
    by_clip = {s.clip_id: s.score for s in scores}
    y = np.array([labels[c] == "abnormal" for c in train_ids])
    assert roc_auc(y, [by_clip[c] for c in train_ids]) >= 0.9
    assert score_with_model(model, pks).scored == 0  # nothing left to score


def test_a_clip_scored_from_its_audio_gets_the_p_abnormal_its_exported_image_got(trained):
    status = job_status(trained.job_id)
    detector = load_detector(_model(status.model_id).artifact_path)
    records = _records(trained, "test")[:4]
    features = [file_features(r["path"], detector.feature_params) for r in records]  # as scoring reads a clip
    stored = {p["clip_id"]: p["p_abnormal"] for p in status.external["predictions"]}
    np.testing.assert_allclose(detector.decision_function(features), [stored[r["clip_id"]] for r in records], atol=1e-4)


def test_compare_models_leaves_out_the_clips_the_cnn_trained_on(trained):
    (unsupervised,) = train(MACHINE, "mahalanobis").trained
    cnn = job_status(trained.job_id).model_id
    comparison = compare_models(MACHINE, [unsupervised.model_id, cnn])

    cnn_clips = set(_model(cnn).provenance["clip_ids"])
    with session_scope() as session:
        pk = machine_by_key(session, MACHINE).id
        machine_test = machine_test_clips(session, [pk])
        kept = [c for c in machine_test if c.id not in cnn_clips]
        y = np.array([c.label == "abnormal" for c in kept])
        values = [clip_scores(session, m, [c.id for c in kept]) for m in (unsupervised.model_id, cnn)]
    left_out = len(machine_test) - len(kept)
    assert left_out > 0  # the export's random split put some of the machine's test clips in the CNN's training
    assert 0 < y.sum() < len(y)  # both classes remain to compare on
    assert comparison.n_test == len(kept)
    assert f"{left_out} test clips a model trained on are left out" in comparison.test_set
    assert f"{int(y.sum())} abnormal and {int((~y).sum())} normal clips" in comparison.test_set

    mahalanobis, spectrogram = comparison.results
    assert (mahalanobis.model_id, spectrogram.model_id) == (unsupervised.model_id, cnn)
    assert spectrogram.name == "spectrogram CNN v1 (fan)"  # named in words, as pages show it
    assert (mahalanobis.saw_anomalies, spectrogram.saw_anomalies) == (False, True)
    assert comparison.warnings[-1] == f"{spectrogram.name} was trained on labelled anomalies the other model never saw."
    for result, by_clip in zip(comparison.results, values, strict=True):
        scores = np.array([by_clip[c.id] for c in kept])
        assert sum(result.at_threshold.confusion.as_dict().values()) == len(kept)
        assert result.auc == pytest.approx(roc_auc(y, scores))
    assert spectrogram.at_threshold.threshold == 0.5
    assert spectrogram.at_threshold == metrics_at(y, np.array([values[1][c.id] for c in kept]), 0.5)
    assert spectrogram.auc >= MIN_TEST_AUC


def test_the_cnn_can_be_made_a_machines_active_model(trained):
    (unsupervised,) = train(MACHINE, "mahalanobis").trained
    assert active_model_id(MACHINE) == unsupervised.model_id
    cnn = job_status(trained.job_id).model_id
    assert activate(MACHINE, model_id=cnn) == cnn
    assert active_model_id(MACHINE) == cnn
    assert activate(MACHINE, detector="mahalanobis") == unsupervised.model_id


def test_a_model_without_local_files_cannot_be_activated(trained, tmp_path):
    external = register_model("rekognition", ExportRef(trained.export_dir, trained.summary, None), save=None,
                              params={}, provenance={})  # fmt: skip
    assert _model(external).artifact_path is None
    with pytest.raises(NoModelError, match="can score here"):
        activate(MACHINE, model_id=external)
    with pytest.raises(NoModelError):
        activate(MACHINE, detector="rekognition")
    assert active_model_id(MACHINE) is None
    assert score_with_model(_model(external), [1]).scored == 0  # and it scores nothing here


def test_training_again_on_the_newest_export_adds_a_version(trained):
    assert resolve_export(None).root == trained.export_dir.resolve()
    calls = []
    job_id = LocalTrainer(epochs=1).train(progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 1)]
    status = job_status(job_id)
    assert status.status == "completed"
    assert status.export_id == trained.summary["export_id"]
    model = _model(status.model_id)
    assert (model.scope, model.version) == ("fan", 2)
    assert model.params["detector"]["epochs"] == 1
    assert [j.job_id for j in recent_jobs()] == [job_id, trained.job_id]


def test_refresh_and_stop_report_the_job_as_it_is(trained):
    trainer = LocalTrainer()
    assert trainer.availability().ok
    assert trainer.refresh(trained.job_id) == job_status(trained.job_id)
    assert trainer.stop(trained.job_id).status == "completed"


# --- failures ------------------------------------------------------------------------------------------------------


def _copy_export(trained: Trained, target: Path, keep=lambda record: True) -> Path:
    """A copy of the module's export (not recorded in this test's database), its summary filtered by ``keep``."""
    shutil.copytree(trained.export_dir, target)
    summary = json.loads((target / SUMMARY_FILE).read_text())
    summary["images"] = [r for r in summary["images"] if keep(r)]
    (target / SUMMARY_FILE).write_text(json.dumps(summary))
    return target


def _only_job() -> TrainingJob:
    with session_scope() as session:
        (job,) = session.scalars(select(TrainingJob)).all()
        session.expunge(job)
        return job


def _n_models() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(DetectorModel))


def test_a_deleted_image_fails_the_job_with_the_reason_and_raises(_trained_template, tmp_path):
    copy = _copy_export(_trained_template, tmp_path / "export")
    missing = copy / _records(_trained_template, "train")[3]["file"]
    missing.unlink()
    with pytest.raises(BadInputError) as err:
        LocalTrainer().train(copy)
    assert err.value.reason == Reason.CORRUPT
    assert err.value.path == str(missing)
    job = _only_job()
    assert job.status == "failed"
    assert "cannot read the exported image" in job.message
    assert missing.name in job.message
    assert job.finished_at is not None
    assert job.model_id is None and job.export_id is None
    assert _n_models() == 0


def test_an_interrupted_training_is_marked_failed_not_left_training(_trained_template, tmp_path):
    """Ctrl-C, or Streamlit stopping the page's script (a BaseException), must not leave the job "training"."""
    copy = _copy_export(_trained_template, tmp_path / "export")

    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        LocalTrainer(epochs=3).train(copy, progress=interrupt)
    job = _only_job()
    assert (job.status, job.message) == ("failed", "interrupted (KeyboardInterrupt)")
    assert job.finished_at is not None and _n_models() == 0


def test_an_export_without_training_images_fails_the_job(_trained_template, tmp_path):
    copy = _copy_export(_trained_template, tmp_path / "export", keep=lambda r: r["subset"] == "test")
    with pytest.raises(BadInputError, match="no training images"):
        LocalTrainer().train(copy)
    job = _only_job()
    assert job.status == "failed" and "no training images" in job.message
    assert _n_models() == 0


def test_training_images_of_one_class_fail_the_job(_trained_template, tmp_path):
    copy = _copy_export(_trained_template, tmp_path / "export", keep=lambda r: r["label"] == "normal")
    with pytest.raises(BadInputError, match="both classes"):
        LocalTrainer().train(copy)
    job = _only_job()
    assert job.status == "failed" and "both classes" in job.message
    assert _n_models() == 0


def test_no_export_at_all_is_refused_before_any_job():
    with pytest.raises(BadInputError) as err:
        resolve_export(None)
    assert err.value.reason == Reason.NOT_FOUND
    assert "no export yet" in err.value.detail
    with pytest.raises(BadInputError):
        LocalTrainer().train()
    assert recent_jobs() == []


def test_a_folder_that_is_no_export_is_refused_before_any_job(tmp_path):
    with pytest.raises(BadInputError) as err:
        LocalTrainer().train(tmp_path)
    assert err.value.reason == Reason.NOT_FOUND
    assert recent_jobs() == []


def test_the_newest_export_is_resolved(_trained_template, cnn_plant, tmp_path):
    ingest([str(cnn_plant)], n_jobs=1)
    first = export_dataset(tmp_path / "first", n_jobs=1)
    second = export_dataset(tmp_path / "second", ExportOptions(machine="fan/id_02"), n_jobs=1)
    ref = resolve_export(None)
    assert ref.export_id == second["export_id"] != first["export_id"]
    assert ref.root == (tmp_path / "second").resolve()
    assert resolve_export(tmp_path / "first").export_id == first["export_id"]


# --- supervised detectors stay out of core.workflows.training ---------------------------------------------------------


def test_train_refuses_the_supervised_detector_and_points_to_train_supervised():
    with pytest.raises(BadInputError) as err:
        train(MACHINE, "spectrogram_cnn")
    assert err.value.reason == Reason.INVALID_PARAMETER
    assert "train-supervised" in err.value.detail
    assert "export" in err.value.detail
