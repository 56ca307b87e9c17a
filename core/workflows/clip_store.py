"""Clips stored by URI: ``s3://BUCKET/KEY`` objects read through boto3, everywhere a local path works.

A clip's ``path`` in the database is a local file's absolute path or an ``s3://`` URI.  Reading one
(:func:`open_clip`, the opener :func:`core.signal.batch.extract_features` takes; :func:`read_clip` for
views) asks S3 for the object's size first and refuses one larger than ``MAX_UPLOAD_MB`` (``too_large``)
before fetching a byte; ``MAX_CLIP_SECONDS`` and ``MAX_SAMPLE_RATE`` then apply to its header before its
samples are decoded, as for a file.  The object is streamed, 1 MiB at a time, into a bounded local cache
(``S3_CACHE_DIR``, at most ``S3_CACHE_MB``; the least recently read clips leave first; an object larger than
the whole cache goes through a temporary file deleted once closed), keyed by URI and ETag, so a replaced
object is fetched again.

boto3's standard credential chain is used (environment, ``~/.aws``, an instance or container role);
``AWS_ENDPOINT_URL`` (a local ``moto_server`` or MinIO) is honoured.  Nothing here stores or logs a
credential.  A missing bucket or object is a :class:`BadInputError` (``not_found``) naming the URI; any
other refusal by AWS is a :class:`CloudError` naming the operation and AWS's code.

This module imports nothing from ``db``: the feature-extraction workers import it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from core.errors import BadInputError, CloudError, Reason
from core.settings import settings
from core.signal.audio import AUDIO_SUFFIXES, Clip, load_clip

S3_SCHEME = "s3://"
STREAM_CHUNK = 1 << 20  # bytes fetched at a time
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})
log = logging.getLogger(__name__)


def is_uri(path: str) -> bool:
    """Whether a stored clip path is an ``s3://`` URI (else a local file)."""
    return str(path).startswith(S3_SCHEME)


@dataclass(frozen=True)
class S3Object:
    """One object: bucket, key, size (bytes; ``ContentLength``) and ETag (as S3 gives it, quotes included)."""

    bucket: str
    key: str
    size: int = 0
    etag: str = ""

    @property
    def uri(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.key}"


def parse_uri(uri: str) -> tuple[str, str]:
    """``(bucket, key prefix)`` of ``s3://BUCKET[/PREFIX]``; BadInputError (``invalid_parameter``) otherwise."""
    if not is_uri(uri):
        raise BadInputError(Reason.INVALID_PARAMETER, "not an s3://BUCKET/KEY URI", uri)
    bucket, _, key = uri[len(S3_SCHEME) :].partition("/")
    if not bucket or any(c.isspace() for c in bucket):
        raise BadInputError(Reason.INVALID_PARAMETER, "the URI names no bucket (s3://BUCKET/PREFIX)", uri)
    return bucket, key


def client(service: str = "s3"):
    """A boto3 client of ``service`` (``s3``, ``sqs``) for the current settings' endpoint and region."""
    current = settings()
    return _client(service, current.aws_endpoint_url, current.aws_region)


@lru_cache(maxsize=8)
def _client(service: str, endpoint_url: str | None, region: str | None):
    import boto3

    return boto3.session.Session().client(service, endpoint_url=endpoint_url, region_name=region)


def _failure(exc: Exception, operation: str, uri: str) -> Exception:
    """BadInputError (``not_found``) naming ``uri`` for a missing bucket or object, else a CloudError."""
    error = (getattr(exc, "response", None) or {}).get("Error", {})
    code = str(error.get("Code") or "")
    if code in NOT_FOUND_CODES:
        what = "no such bucket" if code == "NoSuchBucket" else "no such object in S3"
        return BadInputError(Reason.NOT_FOUND, what, uri)
    if code:
        return CloudError(f"{operation} {uri} failed: {code}: {error.get('Message') or 'no message'}")
    return CloudError(f"{operation} {uri} failed: {type(exc).__name__}: {exc}")


def _aws_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError)


def head(uri: str) -> S3Object:
    """The object ``uri`` names, with its size and ETag (no byte of it read)."""
    bucket, key = parse_uri(uri)
    try:
        found = client().head_object(Bucket=bucket, Key=key)
    except _aws_errors() as exc:
        raise _failure(exc, "reading", uri) from None
    return S3Object(bucket, key, int(found["ContentLength"]), str(found.get("ETag", "")))


def list_objects(uri: str) -> list[S3Object]:
    """The objects ``uri`` names: the object itself when its key is one, else every object under it as a
    prefix (a folder: ``s3://b/plant`` lists ``plant/...``, never ``plant2/...``) whose name is audio
    (``.wav``, ``.flac``) and not hidden, sorted by key.  BadInputError (``not_found``) when none is there."""
    bucket, key = parse_uri(uri)
    if key and not key.endswith("/"):
        try:
            return [head(uri)]
        except BadInputError as exc:
            if exc.reason is not Reason.NOT_FOUND or "bucket" in exc.detail:
                raise
        key += "/"
    found = []
    try:
        for page in client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            found += [S3Object(bucket, item["Key"], int(item["Size"]), str(item.get("ETag", "")))
                      for item in page.get("Contents", ()) if _listed(item["Key"][len(key):])]  # fmt: skip
    except _aws_errors() as exc:
        raise _failure(exc, "listing", uri) from None
    if not found:
        raise BadInputError(Reason.NOT_FOUND, "no such object, and no audio object under it as a prefix", uri)
    return sorted(found, key=lambda o: o.key)


def _listed(relative: str) -> bool:
    """An audio object below a prefix, as a folder's walk would take it (no hidden file or folder)."""
    name = PurePosixPath(relative)
    return name.suffix.lower() in AUDIO_SUFFIXES and not any(p.startswith(".") for p in name.parts)


def layout_path(uri: str) -> str:
    """The path a dataset layout reads an object's URI as: ``BUCKET/KEY`` (the bucket as the top folder)."""
    bucket, key = parse_uri(uri)
    return f"{bucket}/{key}"


# --- reading, through the cache --------------------------------------------------------------------------------


def open_clip(path: str) -> BinaryIO | None:
    """An open binary file of the clip ``path`` names when it is a URI (the caller closes it), or ``None``
    for a local file (read by its path).  The opener of :func:`core.signal.batch.extract_features`.

    Raises BadInputError naming the URI: ``not_found``, or ``too_large`` for an object over ``MAX_UPLOAD_MB``
    (from its size, before any byte is fetched); CloudError when AWS refuses otherwise."""
    if not is_uri(path):
        return None
    found = head(path)
    current = settings()
    if found.size > current.max_upload_bytes:
        raise BadInputError(Reason.TOO_LARGE, f"{found.size / 1e6:.1f} MB is over the {current.max_upload_mb:g} MB "
                            "limit (MAX_UPLOAD_MB); not read", path)  # fmt: skip
    return ClipCache(current.s3_cache_dir, current.s3_cache_bytes).open(found)


def read_clip(path: str, channel: int = 0) -> Clip:
    """One channel of the clip ``path`` names (a local file or an ``s3://`` URI), with the ``MAX_CLIP_SECONDS``
    and ``MAX_SAMPLE_RATE`` limits: what the dashboard's views read."""
    limits = settings()
    fileobj = open_clip(path)
    try:
        return load_clip(path, channel, max_duration_s=limits.max_clip_seconds,
                         max_sample_rate=limits.max_sample_rate, fileobj=fileobj)  # fmt: skip
    finally:
        if fileobj is not None:
            fileobj.close()


@dataclass(frozen=True)
class ClipCache:
    """Objects fetched from S3, kept in ``folder`` (``0700``; files ``0600``) up to ``limit`` bytes in all.

    Each object is one file named by the SHA-256 of its URI and ETag; a read touches its modification time, and
    adding one removes the least recently read until the rest fit.  Files are written under a temporary name
    and renamed into place, so many processes can share the folder; one being read when another process
    removes it stays readable to its reader (an open file outlives its name)."""

    folder: Path
    limit: int

    def open(self, found: S3Object) -> BinaryIO:
        """An open binary file of ``found``'s bytes, fetched unless cached."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if found.size > self.limit:  # never kept: read through a file that is gone once closed
            fh = tempfile.TemporaryFile(dir=self.folder)  # noqa: SIM115 (handed to the caller, who closes it)
            self._fetch(found, fh)
            fh.seek(0)
            return fh
        name = hashlib.sha256(f"{found.uri}\n{found.etag}".encode()).hexdigest() + PurePosixPath(found.key).suffix
        target = self.folder / name
        try:
            fh = target.open("rb")
            os.utime(target)  # read now: the last to be removed
            return fh
        except FileNotFoundError:
            pass
        fd, staging = tempfile.mkstemp(dir=self.folder, prefix=".fetch-")
        try:
            with os.fdopen(fd, "wb") as out:
                self._fetch(found, out)
            os.replace(staging, target)
        except BaseException:
            Path(staging).unlink(missing_ok=True)
            raise
        fh = target.open("rb")
        self.evict(keep=target)
        return fh

    @staticmethod
    def _fetch(found: S3Object, out: BinaryIO) -> None:
        """Stream ``found`` into ``out``; BadInputError (``corrupt``) when S3 sends another size than it said."""
        try:
            body = client().get_object(Bucket=found.bucket, Key=found.key)["Body"]
            written = sum(out.write(chunk) for chunk in body.iter_chunks(STREAM_CHUNK))
        except _aws_errors() as exc:
            raise _failure(exc, "reading", found.uri) from None
        if written != found.size:
            raise BadInputError(Reason.CORRUPT, f"S3 sent {written} bytes of the {found.size} it listed "
                                "(replaced while being read?)", found.uri)  # fmt: skip

    def files(self) -> Iterator[os.DirEntry]:
        """The cached objects (not the ones being fetched)."""
        with os.scandir(self.folder) as entries:
            yield from (e for e in entries if e.is_file() and not e.name.startswith("."))

    def evict(self, keep: Path | None = None) -> int:
        """Remove the least recently read objects until the rest fit in ``limit`` (``keep`` stays); the
        number removed."""
        entries = []
        for entry in self.files():
            try:
                stat = entry.stat()
            except FileNotFoundError:  # another process removed it meanwhile
                continue
            entries.append((stat.st_mtime_ns, stat.st_size, Path(entry.path)))
        total, removed = sum(size for _, size, _ in entries), 0
        for _, size, path in sorted(entries):
            if total <= self.limit:
                break
            if path == keep:
                continue
            path.unlink(missing_ok=True)
            total, removed = total - size, removed + 1
        return removed
