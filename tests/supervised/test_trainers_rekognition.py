"""core.supervised.rekognition: training, refresh, evaluation and stopping against a real boto3 Rekognition
client under botocore's Stubber (every request and response checked against the AWS service model) and
S3 through moto."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws
from sqlalchemy import select

from core.access import Actor, Role
from core.errors import BadInputError, NoModelError, PermissionDeniedError
from core.supervised import get_trainer
from core.supervised.base import claim_job, set_job
from core.supervised.cloud import CloudError
from core.supervised.cloud.config import CloudConfig, forget_credentials_check
from core.supervised.jobs import job_status, recent_jobs
from core.supervised.rekognition import RekognitionTrainer
from core.workflows.audit import audit_events
from core.workflows.export import export_dataset
from db.models import DetectorModel, Score, Threshold
from db.session import dispose_engines, session_scope

BUCKET = "sound-training"
REGION = "us-east-1"
PROJECT = "machine-sound-anomalies"
PROJECT_ARN = f"arn:aws:rekognition:{REGION}:123456789012:project/{PROJECT}/1700000000000"
VERSION_ARN = f"{PROJECT_ARN.rsplit('/', 1)[0]}/version/job-1/1700000000001"


@pytest.fixture
def s3(fake_aws):
    """A moto-backed S3 client holding the bucket; fake credentials, no AWS settings from this machine."""
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        yield client
    forget_credentials_check()


def stubbed_rekognition() -> tuple[object, Stubber]:
    """A real Rekognition client whose calls are answered, and checked, by a Stubber."""
    client = boto3.client("rekognition", region_name=REGION)
    stubber = Stubber(client)
    stubber.activate()
    return client, stubber


@pytest.fixture
def rekognition(s3):
    client, stubber = stubbed_rekognition()
    yield client, stubber
    stubber.deactivate()


@pytest.fixture
def stub(rekognition) -> Stubber:
    return rekognition[1]


@pytest.fixture
def export(plant, tmp_path) -> dict:
    """The plant's curated export (24 images: 16 train, 8 test), recorded in this test's database."""
    return export_dataset(tmp_path / "export")


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def trainer(s3, rekognition, sleeps) -> RekognitionTrainer:
    return RekognitionTrainer(CloudConfig(bucket=BUCKET, region=REGION), rekognition=rekognition[0], s3=s3,
                              sleep=sleeps.append)  # fmt: skip


def key_base(summary: dict) -> str:
    return f"machine-sound/exports/export-{summary['export_id']}/"


def asset(key: str) -> dict:
    return {"Assets": [{"GroundTruthManifest": {"S3Object": {"Bucket": BUCKET, "Name": key}}}]}


def expect_training(stub: Stubber, summary: dict, project_arn: str = PROJECT_ARN) -> None:
    """create_project_version, checked: the manifests uploaded for this export, output in the bucket."""
    base = key_base(summary)
    stub.add_response(
        "create_project_version",
        {"ProjectVersionArn": VERSION_ARN},
        {"ProjectArn": project_arn, "VersionName": ANY,
         "OutputConfig": {"S3Bucket": BUCKET, "S3KeyPrefix": "machine-sound/output"},
         "TrainingData": asset(f"{base}train.manifest"), "TestingData": asset(f"{base}test.manifest")},
    )  # fmt: skip


def start_training(trainer: RekognitionTrainer, stub: Stubber, summary: dict) -> int:
    stub.add_response("create_project", {"ProjectArn": PROJECT_ARN}, {"ProjectName": PROJECT})
    expect_training(stub, summary)
    job_id = trainer.train(confirm_cost=True)
    stub.assert_no_pending_responses()
    return job_id


def version(status: str, **fields) -> dict:
    return {"ProjectVersionDescriptions": [{"ProjectVersionArn": VERSION_ARN, "Status": status, **fields}]}


def expect_version(stub: Stubber, status: str, **fields) -> None:
    stub.add_response("describe_project_versions", version(status, **fields),
                      {"ProjectArn": PROJECT_ARN, "VersionNames": [ANY]})  # fmt: skip


def trained_job(trainer: RekognitionTrainer, stub: Stubber, summary: dict) -> int:
    job_id = start_training(trainer, stub, summary)
    expect_version(stub, "TRAINING_COMPLETED", StatusMessage="The model is ready to run.",
                   EvaluationResult={"F1Score": 0.875}, BillableTrainingTimeInSeconds=2700)  # fmt: skip
    assert trainer.refresh(job_id).status == "trained"
    stub.assert_no_pending_responses()
    return job_id


def client_error(stub: Stubber, method: str, code: str, message: str, status: int = 400) -> None:
    stub.add_client_error(method, service_error_code=code, service_message=message, http_status_code=status)


def test_it_is_one_of_the_trainers(s3):
    config = CloudConfig(bucket=BUCKET, region=REGION)
    trainer = get_trainer("rekognition", config=config)
    assert isinstance(trainer, RekognitionTrainer)
    available = trainer.availability()
    assert available.ok and f"s3://{BUCKET}/machine-sound/" in available.reason and PROJECT in available.reason
    assert not RekognitionTrainer(CloudConfig(region=REGION)).availability().ok


def test_train_uploads_creates_the_project_and_starts_a_version(trainer, stub, export, s3):
    stub.add_response("create_project", {"ProjectArn": PROJECT_ARN}, {"ProjectName": PROJECT})
    expect_training(stub, export)
    progress = []
    job_id = trainer.train(user="pilot", progress=lambda done, total: progress.append((done, total)),
                           confirm_cost=True)
    stub.assert_no_pending_responses()

    base = key_base(export)
    status = job_status(job_id)
    assert (status.backend, status.status, status.export_id) == ("rekognition", "training", export["export_id"])
    ext = status.external
    assert (ext["project_arn"], ext["version_arn"], ext["key_base"]) == (PROJECT_ARN, VERSION_ARN, base)
    assert ext["manifests"] == {"train": f"{base}train.manifest", "test": f"{base}test.manifest"}
    assert ext["version_name"].startswith(f"job-{job_id}-")
    assert (ext["bucket"], ext["region"], ext["project"], ext["trained_by"]) == (BUCKET, REGION, PROJECT, "pilot")
    assert Path(ext["export_dir"]) == Path(export["out_dir"])
    assert progress[-1] == (len(export["images"]) + 2,) * 2
    for record in export["images"]:
        s3.head_object(Bucket=BUCKET, Key=base + record["file"])
    train_manifest = s3.get_object(Bucket=BUCKET, Key=f"{base}train.manifest")["Body"].read().decode()
    assert f'"source-ref": "s3://{BUCKET}/{base}train/' in train_manifest
    (event,) = [e for e in audit_events(10) if e["action"] == "cloud train"]  # the paid action is on record
    assert (event["user"], event["target"]) == ("pilot", f"job {job_id}")


def test_an_existing_project_is_found_and_reused(trainer, stub, export):
    client_error(stub, "create_project", "ResourceInUseException", "The project already exists.")
    other = PROJECT_ARN.replace(f"project/{PROJECT}/", f"project/{PROJECT}-old/")
    stub.add_response(
        "describe_projects",
        {"ProjectDescriptions": [{"ProjectArn": other, "Status": "CREATED"},
                                 {"ProjectArn": PROJECT_ARN, "Status": "CREATED"}]},
        {"ProjectNames": [PROJECT]},
    )  # fmt: skip
    expect_training(stub, export, project_arn=PROJECT_ARN)
    job_id = trainer.train(confirm_cost=True)
    stub.assert_no_pending_responses()
    assert job_status(job_id).external["project_arn"] == PROJECT_ARN


def test_access_denied_fails_the_job_and_keeps_the_export(trainer, stub, export):
    client_error(stub, "create_project", "AccessDeniedException", "not authorized to CreateProject", 403)
    with pytest.raises(CloudError) as caught:
        trainer.train(confirm_cost=True)
    stub.assert_no_pending_responses()
    assert "create_project failed: AccessDeniedException: not authorized to CreateProject" in str(caught.value)
    assert "IAM" in str(caught.value)
    [job] = recent_jobs(backend="rekognition")
    assert job.status == "failed" and job.finished_at is not None
    assert job.message == str(caught.value)
    assert "version_arn" not in job.external
    root = Path(export["out_dir"])
    assert (root / "summary.json").is_file() and (root / "train.manifest").is_file()
    assert all((root / r["file"]).is_file() for r in export["images"])
    with pytest.raises(NoModelError, match="no model version"):
        trainer.stop(job.job_id)


def test_a_failed_upload_fails_the_job_before_any_rekognition_call(s3, rekognition, export):
    trainer = RekognitionTrainer(CloudConfig(bucket="no-such-bucket", region=REGION), rekognition=rekognition[0],
                                 s3=s3, sleep=lambda s: None)  # fmt: skip
    with pytest.raises(CloudError, match="NoSuchBucket"):
        trainer.train(confirm_cost=True)
    rekognition[1].assert_no_pending_responses()
    [job] = recent_jobs(backend="rekognition")
    assert job.status == "failed" and "no-such-bucket" in job.message


def test_cloud_training_needs_its_cost_confirmed_and_the_engineer_role(s3, rekognition, trainer, export):
    with pytest.raises(BadInputError, match="billed per hour of training") as refused:
        trainer.train()  # the notice names the price; nothing is recorded, uploaded or called
    assert "Confirm to go on" in refused.value.detail
    for role in (Role.ANNOTATOR,):
        with pytest.raises(PermissionDeniedError, match="cloud train needs the engineer role"):
            trainer.train(confirm_cost=True, actor=Actor("ana", role))
    with pytest.raises(PermissionDeniedError, match="cloud evaluate needs the engineer role"):
        trainer.evaluate(1, confirm_cost=True, actor=Actor("ana", Role.ANNOTATOR))
    with pytest.raises(PermissionDeniedError):
        trainer.stop(1, actor=Actor("ana", Role.ANNOTATOR))
    rekognition[1].assert_no_pending_responses()
    assert recent_jobs() == []
    assert s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0


def test_no_bucket_or_an_invalid_export_is_refused_before_anything_starts(s3, rekognition, trainer, export):
    with pytest.raises(BadInputError, match="REKOGNITION_BUCKET"):
        RekognitionTrainer(CloudConfig(region=REGION), rekognition=rekognition[0], s3=s3).train()
    root = Path(export["out_dir"])
    (root / export["images"][0]["file"]).unlink()
    with pytest.raises(BadInputError, match="export failed validation"):
        trainer.train(root)
    assert recent_jobs() == []
    assert s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0


def test_refresh_while_training_keeps_training(trainer, stub, export):
    job_id = start_training(trainer, stub, export)
    expect_version(stub, "TRAINING_IN_PROGRESS", StatusMessage="The model is being trained.")
    status = trainer.refresh(job_id)
    stub.assert_no_pending_responses()
    assert status.status == "training" and status.model_id is None
    assert status.external["rekognition_status"] == "TRAINING_IN_PROGRESS"


def test_completed_training_registers_an_external_model(trainer, stub, export):
    job_id = start_training(trainer, stub, export)
    stub.add_response(
        "describe_project_versions",
        version("TRAINING_COMPLETED", StatusMessage="The model is ready to run.",
                EvaluationResult={"F1Score": 0.875}, BillableTrainingTimeInSeconds=2700),
        {"ProjectArn": PROJECT_ARN, "VersionNames": [job_status(job_id).external["version_name"]]},
    )  # fmt: skip
    status = trainer.refresh(job_id)
    stub.assert_no_pending_responses()
    assert (status.status, status.message) == ("trained", "The model is ready to run.")
    assert status.external["rekognition_f1"] == 0.875 and status.external["billable_training_s"] == 2700
    with session_scope() as session:
        model = session.get(DetectorModel, status.model_id)
        assert (model.detector, model.artifact_path, model.status, model.scope) == ("rekognition", None, "external",
                                                                                    "fan")  # fmt: skip
        assert model.provenance["version_arn"] == VERSION_ARN and model.provenance["job_id"] == job_id
        assert model.provenance["rekognition_f1"] == 0.875
        assert sorted(model.provenance["clip_ids"]) == sorted(
            r["clip_id"] for r in export["images"] if r["subset"] == "train"
        )
        thresholds = session.scalars(select(Threshold.value).where(Threshold.model_id == model.id)).all()
        assert thresholds == [0.5]
    assert trainer.refresh(job_id) == status  # no longer training: no further AWS call


def test_failed_training_fails_the_job_with_rekognitions_message(trainer, stub, export):
    job_id = start_training(trainer, stub, export)
    expect_version(stub, "TRAINING_FAILED", StatusMessage="The manifest file contains too many invalid rows.")
    status = trainer.refresh(job_id)
    stub.assert_no_pending_responses()
    assert (status.status, status.model_id) == ("failed", None)
    assert status.message == "The manifest file contains too many invalid rows."
    assert status.done and status.finished_at is not None


def test_a_vanished_version_is_a_cloud_error(trainer, stub, export):
    job_id = start_training(trainer, stub, export)
    stub.add_response("describe_project_versions", {"ProjectVersionDescriptions": []})
    with pytest.raises(CloudError, match="no longer knows"):
        trainer.refresh(job_id)
    assert job_status(job_id).status == "training"


def test_wait_polls_until_training_ends(trainer, stub, export, sleeps):
    job_id = start_training(trainer, stub, export)
    expect_version(stub, "TRAINING_IN_PROGRESS")
    expect_version(stub, "TRAINING_IN_PROGRESS")
    expect_version(stub, "TRAINING_COMPLETED", EvaluationResult={"F1Score": 1.0})
    seen = []
    status = trainer.wait(job_id, on_poll=lambda s: seen.append(s.status))
    stub.assert_no_pending_responses()
    assert status.status == "trained"
    assert seen == ["training", "training", "trained"]
    assert sleeps == [trainer.poll_s, trainer.poll_s]


def test_a_restarted_app_picks_the_job_up(trainer, stub, export, s3):
    job_id = start_training(trainer, stub, export)
    dispose_engines()  # the app goes away; only the database remembers the job
    client, fresh_stub = stubbed_rekognition()
    restarted = RekognitionTrainer(CloudConfig(bucket=BUCKET, region=REGION), rekognition=client, s3=s3,
                                   sleep=lambda s: None)  # fmt: skip
    expect_version(fresh_stub, "TRAINING_IN_PROGRESS")
    assert restarted.refresh(job_id).status == "training"
    expect_version(fresh_stub, "TRAINING_COMPLETED", EvaluationResult={"F1Score": 0.9})
    status = restarted.refresh(job_id)
    fresh_stub.assert_no_pending_responses()
    assert status.status == "trained" and status.model_id is not None
    assert status.external["version_arn"] == VERSION_ARN
    fresh_stub.deactivate()


def test_evaluate_refuses_without_confirmed_cost_and_calls_nothing(trainer, stub, export):
    job_id = start_training(trainer, stub, export)
    with pytest.raises(BadInputError, match="evaluate a trained model"):
        trainer.evaluate(job_id, confirm_cost=True)  # still training
    expect_version(stub, "TRAINING_COMPLETED")
    trainer.refresh(job_id)
    stub.assert_no_pending_responses()
    with pytest.raises(BadInputError) as caught:
        trainer.evaluate(job_id)
    stub.assert_no_pending_responses()  # nothing was queued, and nothing was asked for (it would have raised)
    assert "per inference-unit hour" in str(caught.value) and "Confirm" in str(caught.value)
    status = job_status(job_id)
    assert status.status == "trained" and "model_stopped_at" not in status.external


def labels_for(record: dict, index: int) -> tuple[list[dict], float]:
    """Rekognition's answer for one test image, and the P(abnormal) it means: every form of answer appears,
    and the first abnormal image is missed."""
    if record["label"] == "abnormal":
        if index == 0:
            return [{"Name": "normal", "Confidence": 70.0}, {"Name": "abnormal", "Confidence": 30.0}], 0.3
        return [{"Name": "abnormal", "Confidence": 92.0}], 0.92
    if index == 0:
        return [], 0.0
    return [{"Name": "normal", "Confidence": 80.0}], 0.2


def test_evaluate_starts_scores_every_test_image_and_stops_the_model(trainer, stub, export, sleeps):
    job_id = trained_job(trainer, stub, export)
    model_id = job_status(job_id).model_id
    base = key_base(export)
    tests = [r for r in export["images"] if r["subset"] == "test"]
    assert len(tests) == 8

    stub.add_response("start_project_version", {"Status": "STARTING"},
                      {"ProjectVersionArn": VERSION_ARN, "MinInferenceUnits": 1})  # fmt: skip
    expect_version(stub, "STARTING")
    expect_version(stub, "RUNNING")
    client_error(stub, "detect_custom_labels", "ThrottlingException", "Rate exceeded")
    expected, seen = {}, {"normal": 0, "abnormal": 0}
    for record in tests:
        labels, p = labels_for(record, seen[record["label"]])
        seen[record["label"]] += 1
        expected[record["clip_id"]] = p
        stub.add_response(
            "detect_custom_labels",
            {"CustomLabels": labels},
            {"ProjectVersionArn": VERSION_ARN, "MinConfidence": 0,
             "Image": {"S3Object": {"Bucket": BUCKET, "Name": base + record["file"]}}},
        )  # fmt: skip
    stub.add_response("stop_project_version", {"Status": "STOPPING"}, {"ProjectVersionArn": VERSION_ARN})
    progress = []
    result = trainer.evaluate(job_id, confirm_cost=True, progress=lambda d, t: progress.append((d, t)))
    stub.assert_no_pending_responses()

    assert sleeps[0] == trainer.poll_s  # waited once while the model started
    assert len(sleeps) == 2 and 0.0 <= sleeps[1] <= 0.5  # one backoff after the throttling
    assert progress == [(n, 8) for n in range(1, 9)]
    assert result["n"] == 8
    assert result["confusion"] == {"tp": 3, "fp": 0, "tn": 4, "fn": 1}
    assert (result["precision"], result["recall"]) == (1.0, 0.75)
    status = job_status(job_id)
    assert status.status == "completed" and status.finished_at is not None
    assert status.external["evaluation"] == result
    assert "model_stopped_at" in status.external
    assert {p["clip_id"]: p["p_abnormal"] for p in status.external["predictions"]} == pytest.approx(expected)
    with session_scope() as session:
        scores = dict(session.execute(select(Score.clip_id, Score.score).where(Score.model_id == model_id)).all())
    assert scores == pytest.approx(expected)
    (event,) = [e for e in audit_events(10) if e["action"] == "cloud evaluate"]
    assert event["target"] == f"job {job_id}" and "cost was confirmed" in event["detail"]


@pytest.mark.parametrize(
    ("code", "message"),
    [("InvalidS3ObjectException", "Unable to get object metadata from S3."),
     ("AccessDeniedException", "not authorized to DetectCustomLabels")],
)  # fmt: skip
def test_evaluation_failing_half_way_still_stops_the_model(trainer, stub, export, code, message):
    job_id = trained_job(trainer, stub, export)
    model_id = job_status(job_id).model_id
    stub.add_response("start_project_version", {"Status": "STARTING"})
    expect_version(stub, "RUNNING")
    stub.add_response("detect_custom_labels", {"CustomLabels": [{"Name": "normal", "Confidence": 99.0}]})
    client_error(stub, "detect_custom_labels", code, message)
    stub.add_response("stop_project_version", {"Status": "STOPPING"}, {"ProjectVersionArn": VERSION_ARN})
    with pytest.raises(CloudError, match=code):
        trainer.evaluate(job_id, confirm_cost=True)
    stub.assert_no_pending_responses()  # stop_project_version was called
    status = job_status(job_id)
    assert status.status == "trained"
    assert status.message.startswith("evaluation failed:") and message in status.message
    assert "model_stopped_at" in status.external and "evaluation" not in status.external
    with session_scope() as session:
        assert session.scalars(select(Score).where(Score.model_id == model_id)).all() == []


def test_a_model_that_does_not_start_is_stopped_too(trainer, stub, export):
    job_id = trained_job(trainer, stub, export)
    stub.add_response("start_project_version", {"Status": "STARTING"})
    expect_version(stub, "FAILED", StatusMessage="Not enough capacity.")
    stub.add_response("stop_project_version", {"Status": "STOPPING"})
    with pytest.raises(CloudError, match="model did not start: FAILED Not enough capacity"):
        trainer.evaluate(job_id, confirm_cost=True)
    stub.assert_no_pending_responses()
    assert job_status(job_id).status == "trained"


def test_a_model_that_cannot_be_stopped_is_reported_loudly(trainer, stub, export):
    job_id = trained_job(trainer, stub, export)
    stub.add_response("start_project_version", {"Status": "STARTING"})
    expect_version(stub, "RUNNING")
    client_error(stub, "detect_custom_labels", "InvalidS3ObjectException", "gone")
    client_error(stub, "stop_project_version", "AccessDeniedException", "not authorized to StopProjectVersion", 403)
    with pytest.raises(CloudError, match="stop_project_version"):
        trainer.evaluate(job_id, confirm_cost=True)
    stub.assert_no_pending_responses()
    status = job_status(job_id)
    assert status.message.startswith("COULD NOT STOP THE MODEL") and "cost money" in status.message
    assert "model_stopped_at" not in status.external


def test_a_training_run_cannot_be_stopped_and_no_call_is_made(trainer, stub, export):
    job_id = start_training(trainer, stub, export)
    with pytest.raises(BadInputError, match="cannot stop a training run"):
        trainer.stop(job_id)  # StopProjectVersion stops a running model, not training
    stub.assert_no_pending_responses()
    assert job_status(job_id).status == "training"


def test_stopping_an_interrupted_evaluation_stops_the_model_and_allows_another(trainer, stub, export):
    job_id = trained_job(trainer, stub, export)
    set_job(job_id, status="evaluating")  # a run killed mid-evaluation (the model may still be billing)
    stub.add_response("stop_project_version", {"Status": "STOPPING"}, {"ProjectVersionArn": VERSION_ARN})
    status = trainer.stop(job_id)
    stub.assert_no_pending_responses()
    assert (status.status, status.message) == ("trained", "evaluation stopped by request; the model is stopped")
    assert "model_stopped_at" in status.external


def test_two_refreshes_register_the_completed_model_once(trainer, stub, export, monkeypatch):
    job_id = start_training(trainer, stub, export)
    asked = trainer._version

    def another_dashboard_claims_meanwhile(status):  # the race: both saw "training", the other claims first
        description = asked(status)
        assert claim_job(job_id, "training", "registering")
        return description

    monkeypatch.setattr(trainer, "_version", another_dashboard_claims_meanwhile)
    expect_version(stub, "TRAINING_COMPLETED")
    assert trainer.refresh(job_id).status == "registering"  # this one leaves it to the other: no second model
    with session_scope() as session:
        assert session.query(DetectorModel).filter_by(detector="rekognition").count() == 0


def test_refresh_registers_the_model_even_when_the_export_folder_was_deleted(trainer, stub, export):
    import shutil

    job_id = start_training(trainer, stub, export)
    shutil.rmtree(job_status(job_id).external["export_dir"])  # the summary recorded in the database stands in
    expect_version(stub, "TRAINING_COMPLETED", StatusMessage="done")
    status = trainer.refresh(job_id)
    assert status.status == "trained" and status.model_id is not None


def test_stop_a_trained_model_keeps_the_job_trained(trainer, stub, export):
    job_id = trained_job(trainer, stub, export)
    stub.add_response("stop_project_version", {"Status": "STOPPING"}, {"ProjectVersionArn": VERSION_ARN})
    assert trainer.stop(job_id).status == "trained"
    stub.assert_no_pending_responses()


def test_without_credentials_nothing_is_recorded_or_sent(no_aws, export):
    trainer = RekognitionTrainer(CloudConfig(bucket=BUCKET, region=REGION), sleep=lambda s: None)
    with pytest.raises(BadInputError, match="cannot train with Rekognition: no AWS credentials found"):
        trainer.train(confirm_cost=True)
    assert recent_jobs(backend="rekognition") == []
