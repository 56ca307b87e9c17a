"""Uploading an export to S3 for Rekognition, with manifests pointing at the uploaded images."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError

from core.errors import BadInputError, Reason
from core.supervised.cloud import describe_client_error
from core.workflows.manifest import parse_line

UPLOAD_EXTRA = {"ContentType": "image/png"}
AWS_ERRORS = (ClientError, BotoCoreError, S3UploadFailedError)


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def rewritten_manifest(manifest: Path, base_uri: str) -> str:
    """The manifest's lines with each relative ``source-ref`` prefixed by ``base_uri``
    (``s3://bucket/prefix/``), each line checked again before it is sent."""
    lines = []
    for number, text in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        entry, problems = parse_line(text, number)  # not JSON, no source-ref...: refused before rewriting
        line = text
        if not problems:
            record = json.loads(text)
            if not record["source-ref"].startswith("s3://"):
                record["source-ref"] = base_uri + record["source-ref"]
            line = json.dumps(record, ensure_ascii=False)
            entry, problems = parse_line(line, number)
        if problems:
            raise BadInputError(Reason.INVALID_PARAMETER, "; ".join(problems), manifest)
        lines.append(line)
    return "".join(f"{line}\n" for line in lines)


def upload_export(
    s3, root: Path, files: list[str], bucket: str, key_base: str,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, str]:  # fmt: skip
    """Upload ``files`` (paths relative to ``root``) under ``key_base`` and both manifests, rewritten
    to point at them.  Returns ``{"train": key, "test": key}`` of the uploaded manifests.

    Raises :class:`core.supervised.cloud.CloudError` naming the file when S3 refuses an upload.
    """
    total = len(files) + 2
    for done, relative in enumerate(files, start=1):
        try:
            s3.upload_file(str(root / relative), bucket, key_base + relative, ExtraArgs=UPLOAD_EXTRA)
        except AWS_ERRORS as exc:
            where = s3_uri(bucket, key_base + relative)
            raise describe_client_error(exc, f"uploading {root / relative} to {where}") from exc
        if progress:
            progress(done, total)
    keys = {}
    for offset, subset in enumerate(("train", "test"), start=1):
        key = f"{key_base}{subset}.manifest"
        body = rewritten_manifest(root / f"{subset}.manifest", s3_uri(bucket, key_base))
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=body.encode("utf-8"), ContentType="application/x-ndjson")
        except AWS_ERRORS as exc:
            raise describe_client_error(exc, f"uploading {subset}.manifest to {s3_uri(bucket, key)}") from exc
        keys[subset] = key
        if progress:
            progress(len(files) + offset, total)
    return keys
