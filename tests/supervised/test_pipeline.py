"""core.supervised.pipeline.export_and_train: the curated export and supervised training on it in one step --
the local CNN for real (a short Keras run), Rekognition against a real boto3 client under botocore's Stubber
with S3 through moto; role and cost checked before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from core.access import Actor
from core.errors import BadInputError, PermissionDeniedError
from core.supervised.cloud.config import CloudConfig
from core.supervised.jobs import job_status
from core.supervised.local import LocalTrainer
from core.supervised.pipeline import export_and_train
from core.supervised.rekognition import RekognitionTrainer
from core.workflows.export import ExportOptions, read_summary
from db.models import DetectorModel, Export, TrainingJob
from db.session import session_scope
from tests.supervised.test_trainers_rekognition import (  # noqa: F401  (fixtures)
    BUCKET,
    PROJECT,
    PROJECT_ARN,
    REGION,
    expect_training,
    rekognition,
    s3,
)


def _count(model) -> int:
    with session_scope() as session:
        return len(list(session.scalars(select(model))))


def test_local_one_step_exports_then_trains_the_cnn_on_that_export(plant, tmp_path):
    epochs = []
    out = tmp_path / "one-step"
    result = export_and_train(ExportOptions(seed=3), out_dir=out, trainer=LocalTrainer(epochs=2), user="ana",
                              train_progress=lambda done, total: epochs.append((done, total)))  # fmt: skip
    assert result.backend == "local" and epochs == [(1, 2), (2, 2)]
    summary = read_summary(out)
    assert result.summary["export_id"] == summary["export_id"] and summary["options"]["seed"] == 3
    job = job_status(result.job_id)
    assert (job.backend, job.status, job.export_id) == ("local", "completed", summary["export_id"])
    assert job.external["export_dir"] == str(out.resolve())
    assert job.external["evaluation"]["n"] == sum(summary["counts"]["test"].values())
    with session_scope() as session:
        model = session.get(DetectorModel, job.model_id)
        assert model.detector == "spectrogram_cnn" and model.provenance["export_id"] == summary["export_id"]
        assert model.provenance["trained_by"] == "ana"


def test_the_default_trainer_is_local_without_aws(plant, no_aws, tmp_path):
    from core.supervised.pipeline import default_trainer

    assert default_trainer(epochs=1).name == "local"
    no_aws.setenv("REKOGNITION_BUCKET", "a-bucket")  # a bucket without credentials is not enough
    assert default_trainer().name == "local"


@pytest.fixture
def cloud(s3, rekognition) -> RekognitionTrainer:  # noqa: F811
    return RekognitionTrainer(CloudConfig(bucket=BUCKET, region=REGION), rekognition=rekognition[0], s3=s3,
                              sleep=lambda _s: None)  # fmt: skip


def test_rekognition_one_step_exports_uploads_and_starts_training(plant, cloud, rekognition, s3, tmp_path):  # noqa: F811
    stub = rekognition[1]
    stub.add_response("create_project", {"ProjectArn": PROJECT_ARN}, {"ProjectName": PROJECT})
    expect_training(stub, {"export_id": 1})  # the first export of this database
    result = export_and_train(out_dir=tmp_path / "cloud", trainer=cloud, confirm_cost=True)
    stub.assert_no_pending_responses()
    assert result.backend == "rekognition" and result.summary["export_id"] == 1
    job = job_status(result.job_id)
    assert (job.backend, job.status, job.export_id) == ("rekognition", "training", 1)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    base = "machine-sound/exports/export-1/"
    assert {base + "train.manifest", base + "test.manifest"} <= keys
    assert {base + r["file"] for r in result.summary["images"]} <= keys


def test_rekognition_without_the_cost_confirmed_exports_nothing(plant, cloud, rekognition, tmp_path):  # noqa: F811
    out = tmp_path / "never"
    with pytest.raises(BadInputError, match="nothing exported or started: Training with Rekognition"):
        export_and_train(out_dir=out, trainer=cloud)
    rekognition[1].assert_no_pending_responses()  # not a single AWS call
    assert not out.exists() and _count(Export) == 0 and _count(TrainingJob) == 0


@pytest.mark.parametrize(("role", "paid"), [("annotator", False), ("annotator", True)])
def test_the_roles_are_checked_before_anything_is_written(plant, cloud, tmp_path, role, paid):
    trainer = cloud if paid else LocalTrainer(epochs=1)
    with pytest.raises(PermissionDeniedError):
        export_and_train(out_dir=tmp_path / "x", trainer=trainer, confirm_cost=True, actor=Actor("ann", role))
    assert not (tmp_path / "x").exists() and _count(Export) == 0 and _count(TrainingJob) == 0


def test_nothing_to_export_starts_no_job(tmp_path):
    with pytest.raises(BadInputError, match="nothing to export"):
        export_and_train(out_dir=tmp_path / "x", trainer=LocalTrainer(epochs=1))
    assert _count(TrainingJob) == 0 and not Path(tmp_path / "x").exists()
