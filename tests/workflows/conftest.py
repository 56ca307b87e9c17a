"""A local AWS for the workflows' tests: one ``moto_server`` (S3 and SQS over real HTTP) per test session, on a
free loopback port, reached through ``AWS_ENDPOINT_URL`` as a real deployment reaches AWS."""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_for


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory) -> str:
    """``http://127.0.0.1:PORT`` of a ``moto_server`` started for this session (stopped at its end)."""
    port = free_port()
    command = [shutil.which("moto_server") or sys.executable]
    if command[0] == sys.executable:
        command += ["-m", "moto.server"]
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    server = subprocess.Popen([*command, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        if not wait_for(lambda: server.poll() is None and _answers(endpoint), timeout_s=60):
            pytest.fail(f"moto_server did not start: {Path(log.name).read_text()[-2000:]}")
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


@pytest.fixture
def aws(fake_aws, moto_endpoint, monkeypatch) -> str:
    """This test's AWS: the session's moto server, emptied, reached through ``AWS_ENDPOINT_URL`` with fake
    credentials and region ``us-east-1``; feature extraction in this process (a warm worker pool would hold the
    environment of an earlier test).  Yields the endpoint URL."""
    import core.parallel
    from core.workflows import clip_store

    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    fake_aws.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    fake_aws.setenv("AWS_REGION", "us-east-1")
    fake_aws.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr(core.parallel, "default_jobs", lambda: 1)
    clip_store._client.cache_clear()
    yield moto_endpoint
    clip_store._client.cache_clear()


def upload_tree(s3, bucket: str, folder: Path, prefix: str) -> list[str]:
    """Put every file under ``folder`` into ``bucket`` under ``prefix`` (keys as the relative paths); the URIs."""
    uris = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = f"{prefix}/{path.relative_to(folder).as_posix()}"
        s3.upload_file(str(path), bucket, key)
        uris.append(f"s3://{bucket}/{key}")
    return uris
