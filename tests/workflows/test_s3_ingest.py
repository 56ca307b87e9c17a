"""Clips in S3: ``ingest s3://BUCKET/PREFIX`` registers objects in any known layout as ingest does files (same JSON,
same reasons, idempotent by content), and scoring, views and exports read them by URI through a bounded cache.

Real components: a ``moto_server`` on a loopback port reached through ``AWS_ENDPOINT_URL`` (tests/workflows/
conftest.py), boto3, real WAV files of the demo plant, a real SQLite database, the CLI as a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import pytest
from sqlalchemy import select

from core.errors import BadInputError, Reason
from core.signal.audio import load_clip
from core.workflows import clip_store
from core.workflows.clip_store import ClipCache, list_objects, open_clip, read_clip
from core.workflows.export import export_dataset
from core.workflows.ingest import ingest
from core.workflows.scoring import score
from core.workflows.training import train
from db.models import Clip, RejectedFile, Score
from db.session import session_scope
from tests.conftest import SMALL_PLANT_CLIPS, tone, write_wav
from tests.workflows.conftest import upload_tree

REPO = Path(__file__).resolve().parents[2]
BUCKET = "plant-recordings"


@pytest.fixture
def s3(aws):
    """A boto3 S3 client on the test's moto server, with the bucket made."""
    client = boto3.client("s3", endpoint_url=aws, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def plant_in_s3(s3, plant_dir) -> list[str]:
    """The small demo plant (MIMII layout, and its CSV manifest) uploaded under ``s3://BUCKET/site-a/``; the
    URIs of its clips."""
    return [uri for uri in upload_tree(s3, BUCKET, plant_dir, "site-a") if uri.endswith(".wav")]


def _clips(url: str | None = None) -> dict[str, dict]:
    """Each clip's stored facts (and its machine's key) by content hash."""
    facts = ("path", "label", "split", "split_source", "layout", "sample_rate", "n_channels", "duration_s", "n_bytes")
    with session_scope(url) as session:
        return {c.content_hash: {"machine": c.machine.key, **{f: getattr(c, f) for f in facts}}
                for c in session.scalars(select(Clip))}  # fmt: skip


def _scores(url: str | None = None) -> dict[str, float]:
    with session_scope(url) as session:
        return {clip.content_hash: value for clip, value in session.execute(select(Clip, Score.score).join(Score))}


def test_a_prefix_is_ingested_in_its_layout_and_again_is_already_known(plant_in_s3, plant_dir, db_url):
    report = ingest([f"s3://{BUCKET}/site-a"], n_jobs=1)
    assert report.as_json() == {"ingested": SMALL_PLANT_CLIPS, "already_known": 0, "rejected": []}
    from_s3 = _clips()
    assert {c["path"] for c in from_s3.values()} == set(plant_in_s3)  # stored by URI, as written
    local = ingest([str(plant_dir)], url=db_url, n_jobs=1)  # the same files from disk, another database
    assert local.ingested == SMALL_PLANT_CLIPS
    from_disk = _clips(db_url)
    assert from_s3.keys() == from_disk.keys()  # the same content hashes
    for digest, clip in from_s3.items():  # the machine, what the layout says, the split, the audio facts: as on disk
        assert {**clip, "path": None} == {**from_disk[digest], "path": None}
    assert {c["machine"] for c in from_s3.values()} == {"fan/id_00", "fan/id_02"}
    again = ingest([f"s3://{BUCKET}/site-a/", plant_in_s3[0]], n_jobs=1)
    assert again.as_json() == {"ingested": 0, "already_known": SMALL_PLANT_CLIPS + 1, "rejected": []}
    assert ingest([str(plant_dir)], n_jobs=1).as_json()["already_known"] == SMALL_PLANT_CLIPS  # same content


def test_missing_objects_buckets_and_non_audio_objects_are_refused_naming_them(s3, tmp_path):
    good = write_wav(tmp_path / "good.wav", tone(1.0))
    s3.upload_file(str(good), BUCKET, "field/pump/id_03/good.wav")
    s3.put_object(Bucket=BUCKET, Key="field/pump/id_03/notes.wav", Body=b"not a recording, just some text " * 20)
    s3.put_object(Bucket=BUCKET, Key="field/pump/id_03/readme.txt", Body=b"skipped: not an audio name")
    s3.put_object(Bucket=BUCKET, Key="field/pump/id_03/.hidden.wav", Body=b"skipped: hidden")
    report = ingest([f"s3://{BUCKET}/field", f"s3://{BUCKET}/field/pump/id_03/gone.wav", "s3://no-such-bucket/x",
                     f"s3://{BUCKET}/nothing-here/"], n_jobs=1)  # fmt: skip
    assert report.ingested == 1
    assert sorted((r["path"], r["reason"]) for r in report.rejected) == sorted([
        (f"s3://{BUCKET}/field/pump/id_03/gone.wav", "not_found"),
        (f"s3://{BUCKET}/field/pump/id_03/notes.wav", "not_audio"),
        (f"s3://{BUCKET}/nothing-here/", "not_found"),
        ("s3://no-such-bucket/x", "not_found"),
    ])  # fmt: skip
    with session_scope() as session:
        refused = {r.path: r.reason for r in session.scalars(select(RejectedFile))}
        (clip,) = session.scalars(select(Clip))
        assert (clip.machine.key, clip.path) == ("pump/id_03", f"s3://{BUCKET}/field/pump/id_03/good.wav")
    assert refused[f"s3://{BUCKET}/field/pump/id_03/notes.wav"] == "not_audio"


def test_sizes_are_bounded_before_an_object_is_read_whole(s3, tmp_path, monkeypatch, data_dir):
    long = write_wav(tmp_path / "long.wav", tone(3.0))
    s3.upload_file(str(long), BUCKET, "fan/id_00/long.wav")
    monkeypatch.setenv("MAX_UPLOAD_MB", str(long.stat().st_size / 2e6))  # half the object
    report = ingest([f"s3://{BUCKET}/fan/id_00/long.wav"], n_jobs=1)
    assert [(r["reason"], r["detail"].endswith("(MAX_UPLOAD_MB); not read")) for r in report.rejected] == [
        ("too_large", True)
    ]
    assert not list((data_dir / "s3-cache").glob("*"))  # refused from its size: nothing fetched
    monkeypatch.delenv("MAX_UPLOAD_MB")
    monkeypatch.setenv("MAX_CLIP_SECONDS", "2")
    assert [r["reason"] for r in ingest([f"s3://{BUCKET}/fan/id_00/long.wav"], n_jobs=1).rejected] == ["too_long"]


def test_scores_views_and_exports_read_clips_by_uri_as_from_disk(plant_in_s3, plant_dir, db_url, tmp_path):
    for url, source in ((None, f"s3://{BUCKET}/site-a"), (db_url, str(plant_dir))):
        assert ingest([source], url=url, n_jobs=1).ingested == SMALL_PLANT_CLIPS
        train(None, "mahalanobis", url=url)
        assert score(url=url, n_jobs=1).scored == SMALL_PLANT_CLIPS
    from_s3, from_disk = _scores(), _scores(db_url)
    assert from_s3.keys() == from_disk.keys() and len(from_s3) == SMALL_PLANT_CLIPS
    for digest, value in from_s3.items():  # the same model learned from the same bytes
        assert value == pytest.approx(from_disk[digest], rel=1e-6)
    uri = plant_in_s3[0]
    local = plant_dir / Path(uri.split("/site-a/", 1)[1])
    np.testing.assert_array_equal(read_clip(uri).signal, load_clip(local).signal)  # what the views draw
    s3_export = export_dataset(tmp_path / "from-s3")
    disk_export = export_dataset(tmp_path / "from-disk", url=db_url)
    assert s3_export["unreadable"] == disk_export["unreadable"] == []
    assert len(s3_export["images"]) == len(disk_export["images"]) > 0
    assert _png_digests(tmp_path / "from-s3") == _png_digests(tmp_path / "from-disk")


def _png_digests(folder: Path) -> list[str]:
    return sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*.png"))


def test_a_clip_removed_from_s3_is_reported_by_scoring_naming_its_uri(plant_in_s3, s3):
    ingest([f"s3://{BUCKET}/site-a"], n_jobs=1)
    train(None, "mahalanobis")
    with session_scope() as session:
        session.query(Score).delete()
        session.commit()
    s3.delete_object(Bucket=BUCKET, Key=plant_in_s3[0].removeprefix(f"s3://{BUCKET}/"))
    report = score(n_jobs=1)
    assert report.scored == SMALL_PLANT_CLIPS - 1
    assert [(f["path"], f["reason"]) for f in report.failed] == [(plant_in_s3[0], "not_found")]


def test_the_cache_is_bounded_and_an_object_larger_than_it_leaves_no_file(s3, tmp_path, monkeypatch):
    uris = []
    for index in range(6):
        path = write_wav(tmp_path / f"c{index}.wav", tone(1.0, seed=index))  # 32 kB each
        s3.upload_file(str(path), BUCKET, f"fan/id_00/c{index}.wav")
        uris.append(f"s3://{BUCKET}/fan/id_00/c{index}.wav")
    cache = tmp_path / "cache"
    monkeypatch.setenv("S3_CACHE_DIR", str(cache))
    monkeypatch.setenv("S3_CACHE_MB", "0.1")  # three clips
    for uri in uris:
        with open_clip(uri) as fh:
            assert fh.read(4) == b"RIFF"
    kept = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert 1 <= len(kept) <= 3 and sum(p.stat().st_size for p in kept) <= 100_000
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    newest = hashlib.sha256(f"{uris[-1]}\n{s3.head_object(Bucket=BUCKET, Key='fan/id_00/c5.wav')['ETag']}".encode())
    assert (cache / f"{newest.hexdigest()}.wav").exists()  # the most recently read stays
    monkeypatch.setenv("S3_CACHE_MB", "0.01")  # smaller than one clip
    before = set(cache.iterdir())
    with open_clip(uris[0]) as fh:
        assert hashlib.sha256(fh.read()).digest() == hashlib.sha256((tmp_path / "c0.wav").read_bytes()).digest()
    assert set(cache.iterdir()) == before  # read through a temporary file, gone once closed
    assert ClipCache(cache, 0).evict() == len(before)


def test_a_local_path_is_read_from_disk_and_a_bad_uri_is_refused(tmp_path):
    assert open_clip(str(tmp_path / "x.wav")) is None
    with pytest.raises(BadInputError) as caught:
        list_objects("s3:///key")
    assert caught.value.reason is Reason.INVALID_PARAMETER and caught.value.path == "s3:///key"


def test_the_cli_ingests_s3_uris_as_json(plant_in_s3, aws, data_dir):
    env = {**os.environ, "COLUMNS": "120"}
    command = [sys.executable, "-m", "core", "ingest", f"s3://{BUCKET}/site-a/6dB/fan/id_00", "s3://no-such-bucket/a",
               "--json"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["ingested"] == SMALL_PLANT_CLIPS // 2 and printed["already_known"] == 0
    assert printed["rejected"] == [{"path": "s3://no-such-bucket/a", "reason": "not_found", "detail": "no such bucket"}]
    assert "testing" not in done.stderr  # no credential in the output


def test_no_credentials_is_a_cloud_error_not_a_bad_file(s3, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    clip_store._client.cache_clear()
    from core.errors import CloudError

    with pytest.raises(CloudError, match=f"listing s3://{BUCKET}/x/ failed: NoCredentialsError"):
        list_objects(f"s3://{BUCKET}/x/")
