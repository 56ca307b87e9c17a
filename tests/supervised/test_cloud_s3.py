"""core.supervised.cloud.s3: an export uploaded to S3 (moto) with manifests rewritten to the uploaded images."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from core.errors import BadInputError
from core.supervised.cloud import CloudError
from core.supervised.cloud.s3 import rewritten_manifest, s3_uri, upload_export
from core.workflows.export import export_dataset
from core.workflows.manifest import parse_line

BUCKET = "sound-bucket"
KEY_BASE = "machine-sound/exports/export-1/"


@pytest.fixture
def s3(fake_aws):
    """A real boto3 S3 client talking to moto, with fake credentials and no AWS settings from this machine."""
    with mock_aws():
        yield boto3.client("s3", region_name="us-east-1")


@pytest.fixture
def export(plant, tmp_path) -> tuple[Path, dict]:
    out = tmp_path / "export"
    return out, export_dataset(out)


def test_s3_uri():
    assert s3_uri("b", "p/k.png") == "s3://b/p/k.png"


def test_every_image_and_both_manifests_are_uploaded(s3, export):
    root, summary = export
    s3.create_bucket(Bucket=BUCKET)
    files = [r["file"] for r in summary["images"]]
    progress = []
    keys = upload_export(s3, root, files, BUCKET, KEY_BASE, progress=lambda done, total: progress.append((done, total)))

    assert keys == {"train": f"{KEY_BASE}train.manifest", "test": f"{KEY_BASE}test.manifest"}
    listed = {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
              for o in page.get("Contents", [])}  # fmt: skip
    assert listed == {KEY_BASE + f for f in files} | set(keys.values())
    for relative in files[:3]:
        obj = s3.get_object(Bucket=BUCKET, Key=KEY_BASE + relative)
        assert obj["ContentType"] == "image/png"
        assert obj["Body"].read() == (root / relative).read_bytes()
    total = len(files) + 2
    assert progress == [(done, total) for done in range(1, total + 1)]


def test_uploaded_manifests_point_at_the_uploaded_images(s3, export):
    root, summary = export
    s3.create_bucket(Bucket=BUCKET)
    keys = upload_export(s3, root, [r["file"] for r in summary["images"]], BUCKET, KEY_BASE)
    base = f"s3://{BUCKET}/{KEY_BASE}"
    for subset, key in keys.items():
        local_lines = (root / f"{subset}.manifest").read_text(encoding="utf-8").splitlines()
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode("utf-8")
        assert body.endswith("\n")
        lines = body.splitlines()
        assert len(lines) == len(local_lines) == sum(r["subset"] == subset for r in summary["images"])
        for number, (line, local) in enumerate(zip(lines, local_lines, strict=True), start=1):
            entry, problems = parse_line(line, number)
            assert problems == []
            relative = json.loads(local)["source-ref"]
            assert entry.source_ref == base + relative
            assert entry.source_ref.startswith(f"s3://{BUCKET}/{KEY_BASE}{subset}/")
            s3.head_object(Bucket=BUCKET, Key=KEY_BASE + relative)  # the object it names exists
            uploaded, original = json.loads(line), json.loads(local)
            assert {k: v for k, v in uploaded.items() if k != "source-ref"} == {
                k: v for k, v in original.items() if k != "source-ref"
            }
    # the export on disk keeps its relative source-refs
    assert not (root / "train.manifest").read_text(encoding="utf-8").startswith('{"source-ref": "s3://')


def test_a_missing_bucket_is_a_cloud_error_naming_the_file(s3, export):
    root, summary = export
    first = summary["images"][0]["file"]
    with pytest.raises(CloudError) as caught:
        upload_export(s3, root, [first], "no-such-bucket", KEY_BASE)
    message = str(caught.value)
    assert str(root / first) in message
    assert f"s3://no-such-bucket/{KEY_BASE}{first}" in message
    assert "NoSuchBucket" in message


def test_a_refused_manifest_upload_is_a_cloud_error_naming_the_manifest(s3, export):
    root, _ = export
    with pytest.raises(CloudError) as caught:
        upload_export(s3, root, [], "no-such-bucket", KEY_BASE)  # no images: the first manifest fails
    message = str(caught.value)
    assert f"train.manifest to s3://no-such-bucket/{KEY_BASE}train.manifest" in message
    assert "NoSuchBucket" in message


def test_rewritten_manifest_keeps_absolute_s3_refs(tmp_path):
    manifest = tmp_path / "train.manifest"
    metadata = {"class-name": "normal", "confidence": 1.0, "human-annotated": "no", "job-name": "labeling-job/x",
                "creation-date": "2026-01-01T00:00:00", "type": "groundtruth/image-classification"}  # fmt: skip
    good = {"source-ref": "train/normal/a.png", "machine-sound": 0, "machine-sound-metadata": metadata}
    already = good | {"source-ref": "s3://other/train/normal/b.png"}
    manifest.write_text(json.dumps(good) + "\n" + json.dumps(already) + "\n", encoding="utf-8")
    lines = rewritten_manifest(manifest, "s3://bucket/base/").splitlines()
    assert [json.loads(line)["source-ref"] for line in lines] == [
        "s3://bucket/base/train/normal/a.png",
        "s3://other/train/normal/b.png",
    ]


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ('{"source-ref": "train/normal/b.png", "machine-sound": 0}', "machine-sound-metadata"),
        ("{not json", "not JSON"),
        ('{"machine-sound": 0}', "source-ref"),
        ("[1, 2]", "not a JSON object"),
    ],
)
def test_rewritten_manifest_rejects_a_broken_line_naming_the_manifest(plant, tmp_path, broken, expected):
    root = tmp_path / "export"
    export_dataset(root)
    manifest = root / "test.manifest"
    lines = manifest.read_text(encoding="utf-8").splitlines()
    manifest.write_text("\n".join([lines[0], broken, *lines[1:]]) + "\n", encoding="utf-8")
    with pytest.raises(BadInputError) as caught:
        rewritten_manifest(manifest, f"s3://{BUCKET}/{KEY_BASE}")
    assert caught.value.path == str(manifest)
    assert "line 2" in caught.value.detail and expected in caught.value.detail
