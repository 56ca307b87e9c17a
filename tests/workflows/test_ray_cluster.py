"""``--address``: train and score on an existing Ray cluster (a head node started here with ``ray start``), whose
workers run elsewhere than the repository and get the product's code from the driver (``py_modules``)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from core.workflows.ingest import ingest
from tests.conftest import SMALL_PLANT_CLIPS, free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def ray_head(tmp_path):
    """A one-node Ray cluster on 2 CPUs, started in ``tmp_path`` (not the repository), stopped afterwards;
    yields its GCS address.  Token authentication off, for a cluster that lives only as long as the test."""
    env = os.environ | {"RAY_AUTH_MODE": "disabled"}
    env.pop("PYTHONPATH", None)
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    options = {"--port": port, "--ray-client-server-port": free_port(), "--dashboard-agent-listen-port": free_port(),
               "--dashboard-agent-grpc-port": free_port(), "--runtime-env-agent-port": free_port(),
               "--num-cpus": 2}  # fmt: skip
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--include-dashboard=false",
               f"--temp-dir={temp}", *(f"{k}={v}" for k, v in options.items())]  # fmt: skip
    log = (tmp_path / "head.log").open("wb")
    head = subprocess.Popen(command, cwd=tmp_path, env=env, start_new_session=True,
                            stdout=log, stderr=log)  # fmt: skip
    address = f"127.0.0.1:{port}"
    status = [sys.executable, "-m", "ray.scripts.scripts", "status", f"--address={address}"]
    deadline = time.monotonic() + 120
    try:
        while subprocess.run(status, env=env, capture_output=True, timeout=120).returncode != 0:
            assert head.poll() is None and time.monotonic() < deadline, (tmp_path / "head.log").read_text()[-2000:]
            time.sleep(1)
        yield address
    finally:
        head.send_signal(signal.SIGTERM)  # ray start --block stops the processes it started
        try:
            head.wait(timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(head.pid, signal.SIGKILL)  # anything of that session still there
            log.close()
            shutil.rmtree(temp, ignore_errors=True)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(REPO), "RAY_AUTH_MODE": "disabled"}
    env.pop("DATABASE_URL", None)
    result = subprocess.run([sys.executable, "-m", "core", *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.slow
def test_train_and_score_on_an_existing_cluster(plant_dir, ray_head, tmp_path):
    assert ingest([str(plant_dir)]).ingested == SMALL_PLANT_CLIPS
    trained = json.loads(_cli("train", "--detector", "mahalanobis", "--engine", "ray", "--address", ray_head,
                              "--json", cwd=tmp_path).stdout)["trained"]  # fmt: skip
    assert len(trained) == 2
    report = json.loads(_cli("score", "--engine", "ray", "--address", ray_head, "--json", cwd=tmp_path).stdout)
    assert (report["scored"], report["models"], report["failed"]) == (SMALL_PLANT_CLIPS, 2, [])
