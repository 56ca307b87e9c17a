"""core.workflows.sqs_watch and ``python -m core watch --sqs-queue URL``: S3 ObjectCreated events delivered through
SQS are ingested, scored and flagged as ``watch DIR`` does, at least once and idempotent; poison messages are
counted and set aside, never retried forever.

Real components: a ``moto_server`` (S3 sending its event notifications to SQS, as configured on a bucket), boto3,
a Mahalanobis model trained on the small demo plant, real WAV files, a real SQLite database, the CLI as a
subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import select

from core.errors import BadInputError
from core.workflows.ingest import ingest
from core.workflows.notify import channels_from
from core.workflows.scoring import score
from core.workflows.sqs_watch import QueueWatcher, s3_event_uris
from core.workflows.training import train
from db.models import Clip, Notification, RejectedFile
from db.session import session_scope
from tests.conftest import SMALL_PLANT_CLIPS, tone, write_wav
from tests.workflows.conftest import upload_tree

REPO = Path(__file__).resolve().parents[2]
BUCKET = "field-snippets"
NOWHERE = "http://127.0.0.1:9/never-called"  # a webhook channel poll() only enqueues for


@pytest.fixture
def s3(aws):
    client = boto3.client("s3", endpoint_url=aws, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def sqs(aws):
    return boto3.client("sqs", endpoint_url=aws, region_name="us-east-1")


def _queue(sqs, name: str, **attributes) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "30", **attributes})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _notify(s3, arn: str) -> None:
    """The bucket sends its ObjectCreated events to the queue, as configured in AWS."""
    config = {"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]}
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration=config)


def _event(bucket: str, key: str) -> str:
    record = {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
              "s3": {"bucket": {"name": bucket}, "object": {"key": key.replace(" ", "+")}}}  # fmt: skip
    return json.dumps({"Records": [record]})


def _waiting(sqs, url: str) -> int:
    attributes = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=attributes)["Attributes"]
    return sum(int(found[name]) for name in attributes)


def _trained_plant(s3, plant_dir) -> tuple[Path, Path]:
    """The small plant ingested from S3, a model trained and every clip scored; on disk, fan/id_00's clip its
    model scores highest and the one it scores lowest."""
    from db.queries import machine_by_key, scored_clips

    upload_tree(s3, BUCKET, plant_dir, "plant")
    assert ingest([f"s3://{BUCKET}/plant"], n_jobs=1).ingested == SMALL_PLANT_CLIPS
    train(None, "mahalanobis")
    assert score(n_jobs=1).scored == SMALL_PLANT_CLIPS
    with session_scope() as session:
        machine = machine_by_key(session, "fan/id_00")
        ranked = sorted(scored_clips(session, machine.active_model_id, [machine.id]), key=lambda item: item[1])
        paths = [clip.path.removeprefix(f"s3://{BUCKET}/plant/") for clip, _ in ranked]
    return plant_dir / paths[-1], plant_dir / paths[0]


def _variant(source: Path, target: Path) -> Path:
    """A new recording (new content) that sounds as ``source`` does: scaled by 0.999."""
    data, sr = sf.read(source, dtype="float32", always_2d=True)
    return write_wav(target, data * np.float32(0.999), sr=sr)


def test_s3_events_are_ingested_scored_flagged_and_deleted_once(s3, sqs, plant_dir, tmp_path):
    highest, lowest = _trained_plant(s3, plant_dir)
    url, arn = _queue(sqs, "snippets")
    _notify(s3, arn)
    s3.upload_file(str(_variant(highest, tmp_path / "new take.wav")), BUCKET, "fan/id_00/new take.wav")
    normal = lowest
    s3.upload_file(str(_variant(normal, tmp_path / "usual.wav")), BUCKET, "fan/id_00/usual.wav")
    sqs.send_message(QueueUrl=url, MessageBody=_event(BUCKET, "fan/id_00/new take.wav"))  # delivered twice
    watcher = QueueWatcher(url, wait_s=0, lookback_s=0, channels=channels_from(NOWHERE, None))  # not the plant's flags
    first = watcher.poll()
    assert (first.ingested, first.rejected, first.poison, first.retrying) == (2, [], 0, 0)
    assert first.deleted == first.messages >= 3  # both events and the duplicate (and S3's test event, if sent)
    assert first.scored == 2 and len(first.flagged) == 1
    assert _waiting(sqs, url) == 0
    with session_scope() as session:
        flagged = session.get(Clip, first.flagged[0])
        assert flagged.path == f"s3://{BUCKET}/fan/id_00/new take.wav" and flagged.machine.key == "fan/id_00"
        assert session.scalar(select(Notification.clip_id)) == flagged.id
    sqs.send_message(QueueUrl=url, MessageBody=_event(BUCKET, "fan/id_00/new take.wav"))  # redelivered later
    again = watcher.poll()
    assert (again.messages, again.deleted, again.ingested, again.already_known, again.flagged) == (1, 1, 0, 1, [])
    restarted = QueueWatcher(url, wait_s=0, lookback_s=60, channels=channels_from(NOWHERE, None))  # a new process
    restarted_pass = restarted.poll()
    assert (restarted_pass.messages, restarted_pass.scored, restarted_pass.flagged) == (0, 0, [])
    with session_scope() as session:
        announced = session.scalars(select(Notification.clip_id)).all()
    assert flagged.id in announced and announced.count(flagged.id) == 1  # announced once


def test_poison_messages_are_recorded_and_deleted_without_a_dead_letter_queue(s3, sqs, tmp_path):
    url, _ = _queue(sqs, "incoming")
    s3.put_object(Bucket=BUCKET, Key="pump/id_01/notes.wav", Body=b"text, not a recording " * 20)
    for body in ("hello", json.dumps({"Records": []}), _event(BUCKET, "pump/id_01/gone.wav"),
                 _event(BUCKET, "pump/id_01/notes.wav")):  # fmt: skip
        sqs.send_message(QueueUrl=url, MessageBody=body)
    watcher = QueueWatcher(url, wait_s=0, max_receive=2, retry_s=0)
    first = watcher.poll()
    assert (first.messages, first.poison, first.retrying, first.deleted) == (4, 2, 1, 1)  # not S3 events: at once
    assert {r["reason"] for r in first.rejected} == {"invalid_parameter", "not_found", "not_audio"}
    second = watcher.poll()  # the missing object fails again on its 2nd receipt: poison
    assert (second.messages, second.poison, second.retrying, second.deleted) == (1, 1, 0, 0)
    assert watcher.poison_total == 3 and _waiting(sqs, url) == 0
    assert watcher.poll().messages == 0  # never retried again
    with session_scope() as session:
        refused = [(r.path, r.reason) for r in session.scalars(select(RejectedFile).order_by(RejectedFile.id))]
    poison = [(path, reason) for path, reason in refused if path.startswith("sqs://incoming/")]
    assert sorted(reason for _, reason in poison) == ["invalid_parameter", "invalid_parameter", "not_found"]
    assert (f"s3://{BUCKET}/pump/id_01/notes.wav", "not_audio") in refused  # refused for good, never poison


def test_poison_goes_to_the_dead_letter_queue_given(s3, sqs):
    url, _ = _queue(sqs, "incoming")
    dead, _ = _queue(sqs, "incoming-dead")
    sqs.send_message(QueueUrl=url, MessageBody="{not json")
    sqs.send_message(QueueUrl=url, MessageBody=_event(BUCKET, "fan/id_00/never-uploaded.wav"))
    watcher = QueueWatcher(url, dead_letter_queue=dead, wait_s=0, max_receive=1)
    report = watcher.poll()
    assert (report.poison, report.retrying, report.rejected[-1]["reason"]) == (2, 0, "not_found")
    moved = sqs.receive_message(QueueUrl=dead, MaxNumberOfMessages=10, MessageAttributeNames=["All"])["Messages"]
    assert sorted(m["Body"] for m in moved) == sorted(["{not json", _event(BUCKET, "fan/id_00/never-uploaded.wav")])
    assert all("set aside after 1 receipt(s)" in m["MessageAttributes"]["reason"]["StringValue"] for m in moved)
    assert _waiting(sqs, url) == 0


def test_a_queue_with_a_redrive_policy_leaves_poison_to_sqs(s3, sqs):
    dead, dead_arn = _queue(sqs, "redriven-dead")
    policy = json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": "2"})
    url, _ = _queue(sqs, "redriven", RedrivePolicy=policy)
    sqs.send_message(QueueUrl=url, MessageBody="not an event")
    watcher = QueueWatcher(url, wait_s=0, retry_s=0, max_receive=1)
    assert "redrive policy" in watcher.describe()
    reports = [watcher.poll() for _ in range(3)]
    assert [(r.messages, r.retrying, r.poison) for r in reports] == [(1, 1, 0), (1, 1, 0), (0, 0, 0)]
    moved = sqs.receive_message(QueueUrl=dead, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in moved] == ["not an event"]  # moved by SQS after 2 receipts


@pytest.mark.parametrize(
    "body",
    ["", "[]", json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}),
     json.dumps({"Records": [{"eventSource": "aws:sqs", "eventName": "ObjectCreated:Put"}]})],
)  # fmt: skip
def test_what_is_not_an_s3_event_is_refused(body):
    with pytest.raises(BadInputError, match="S3 event|JSON"):
        s3_event_uris(body)


def test_s3_events_read_directly_or_through_sns():
    event = _event("b", "fan/id 00/a%2Bb.wav")
    removed = json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete",
                                       "s3": {"bucket": {"name": "b"}, "object": {"key": "x.wav"}}}]})  # fmt: skip
    assert s3_event_uris(event) == ["s3://b/fan/id 00/a+b.wav"]  # keys arrive URL-encoded
    assert s3_event_uris(json.dumps({"Type": "Notification", "Message": event})) == ["s3://b/fan/id 00/a+b.wav"]
    assert s3_event_uris(json.dumps({"Event": "s3:TestEvent", "Bucket": "b"})) == []
    assert s3_event_uris(removed) == []


def test_the_cli_watches_a_queue_once(s3, sqs, aws, tmp_path):
    url, arn = _queue(sqs, "cli")
    _notify(s3, arn)
    s3.upload_file(str(write_wav(tmp_path / "a.wav", tone(2.0))), BUCKET, "valve/id_04/a.wav")
    command = [sys.executable, "-m", "core", "watch", "--sqs-queue", url, "--once"]
    done = subprocess.run(command, cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"watching the SQS queue {url}" in done.stderr and "ingested 1, already known 0" in done.stderr
    assert "poison 0" in done.stderr and "testing" not in done.stderr
    with session_scope() as session:
        assert [c.path for c in session.scalars(select(Clip))] == [f"s3://{BUCKET}/valve/id_04/a.wav"]
    both = subprocess.run([*command, str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert both.returncode == 2 and "not both" in both.stderr


def test_an_object_s3_refuses_is_retried_then_set_aside_never_stalling_the_queue(s3, sqs, tmp_path, monkeypatch):
    """Access denied (S3 answers 403 for a deleted key without s3:ListBucket) is a CloudError: the message of that
    object is retried and then set aside; its neighbours are ingested and deleted; a folder marker is no clip."""
    import core.workflows.ingest as ingest_module
    from core.errors import CloudError

    listed = ingest_module.list_objects

    def refusing(uri: str):
        if uri.endswith("denied.wav"):
            raise CloudError(f"reading {uri} failed: AccessDenied")
        return listed(uri)

    monkeypatch.setattr(ingest_module, "list_objects", refusing)
    url, _ = _queue(sqs, "incoming")
    s3.put_object(Bucket=BUCKET, Key="fan/id_00/ok.wav", Body=write_wav(tmp_path / "ok.wav", tone(1.0)).read_bytes())
    for key in ("fan/id_00/ok.wav", "fan/id_00/denied.wav", "fan/id_00/"):
        sqs.send_message(QueueUrl=url, MessageBody=_event(BUCKET, key))
    watcher = QueueWatcher(url, wait_s=0, max_receive=2, retry_s=0)
    first = watcher.poll()
    assert (first.messages, first.ingested, first.deleted, first.retrying, first.poison) == (3, 1, 2, 1, 0)
    assert [r["reason"] for r in first.rejected] == ["unexpected_error"]
    second = watcher.poll()
    assert (second.messages, second.poison, _waiting(sqs, url)) == (1, 1, 0)
    with session_scope() as session:
        assert [c.path for c in session.scalars(select(Clip))] == [f"s3://{BUCKET}/fan/id_00/ok.wav"]
