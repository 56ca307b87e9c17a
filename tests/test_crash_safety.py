"""Crash safety across ingest, scoring and training: ``python -m core ...`` killed half-way (SIGKILL, as a
power cut or the OOM killer would) leaves a consistent database, and the same command run again finishes
the work.  Real subprocesses on a real demo plant and a real SQLite file."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.detection.registry import Detector
from core.signal.batch import file_features
from core.workflows.ingest import COMMIT_EVERY, ingest
from core.workflows.model_store import artifact_dir
from core.workflows.training import train
from db.session import DB_FILENAME

REPO = Path(__file__).resolve().parents[1]
MACHINES, NORMAL, ABNORMAL = 3, 100, 15
N_CLIPS = MACHINES * (NORMAL + ABNORMAL)  # 345: ingest commits 200, then 145
JOBS = "2"  # the same kill window on a 2-core laptop and a 16-core server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def big_plant(tmp_path_factory) -> Path:
    """3 fans x 115 one-second clips: ingest, scoring and training each take a few seconds."""
    from core.datasets.demo import write_plant

    out = tmp_path_factory.mktemp("crash_plant")
    write_plant(out, machines=MACHINES, normal=NORMAL, abnormal=ABNORMAL, duration_s=1.0, seed=3)
    return out


def _query(data_dir: Path, sql: str) -> list[tuple]:
    """Read the database as another process would (WAL: never blocks the writer)."""
    db = data_dir / DB_FILENAME
    if not db.exists():
        return []
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute(sql).fetchall()
    except sqlite3.OperationalError:  # the schema is not there yet
        return []
    finally:
        connection.close()


def _count(data_dir: Path, table: str) -> int:
    rows = _query(data_dir, f"SELECT count(*) FROM {table}")
    return rows[0][0] if rows else 0


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "core", *args]


def _env() -> dict[str, str]:
    env = os.environ | {"PYTHONPATH": str(REPO)}  # DATA_DIR: this test's (the autouse fixture)
    env.pop("DATABASE_URL", None)
    return env


def kill_when(args: list[str], ready: Callable[[], bool], *, timeout: float = 120) -> None:
    """Run ``args``; as soon as ``ready()`` holds, SIGKILL it and its worker processes (its own process group).
    Fails if it ends first: then nothing was tested."""
    proc = subprocess.Popen(
        args, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if ready():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                return
            time.sleep(0.01)
        pytest.fail(f"{args[3:]} ended (rc {proc.returncode}) before it could be killed: {proc.stderr.read()[-2000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        proc.stderr.close()


def run(args: list[str]) -> str:
    result = subprocess.run(args, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def assert_consistent(data_dir: Path) -> None:
    """SQLite's own checks, no row pointing at a missing clip or model, and every model row's files complete."""
    assert _query(data_dir, "PRAGMA integrity_check") == [("ok",)]
    assert _query(data_dir, "PRAGMA foreign_key_check") == []
    orphans = {
        "scores without clip": "SELECT count(*) FROM scores WHERE clip_id NOT IN (SELECT id FROM clips)",
        "scores without model": "SELECT count(*) FROM scores WHERE model_id NOT IN (SELECT id FROM detector_models)",
        "thresholds without model": "SELECT count(*) FROM thresholds "
        "WHERE model_id NOT IN (SELECT id FROM detector_models)",
        "active model missing": "SELECT count(*) FROM machines "
        "WHERE active_model_id IS NOT NULL AND active_model_id NOT IN (SELECT id FROM detector_models)",
        "clips without machine": "SELECT count(*) FROM clips WHERE machine_pk NOT IN (SELECT id FROM machines)",
        "duplicate content": "SELECT count(*) FROM (SELECT content_hash FROM clips GROUP BY 1 HAVING count(*) > 1)",
        "scored twice": "SELECT count(*) FROM (SELECT 1 FROM scores GROUP BY clip_id, model_id HAVING count(*) > 1)",
    }
    assert {name: _query(data_dir, sql)[0][0] for name, sql in orphans.items()} == dict.fromkeys(orphans, 0)
    models = _query(data_dir, "SELECT id, artifact_path FROM detector_models")
    assert _count(data_dir, "thresholds") >= len(models)  # each model got its first threshold with its row
    for model_id, folder in models:
        detector = Detector.load(folder)  # a half-written model would raise here
        assert detector.is_fitted, model_id


def test_killed_ingest_keeps_what_it_committed_and_the_next_run_finishes(big_plant, data_dir):
    kill_when(_cli("ingest", str(big_plant), "--jobs", JOBS), lambda: _count(data_dir, "clips") > 0)

    assert_consistent(data_dir)
    assert _count(data_dir, "clips") == COMMIT_EVERY  # killed half-way: the first chunk stayed, whole

    run(_cli("ingest", str(big_plant), "--jobs", JOBS))
    assert_consistent(data_dir)
    paths = [p for (p,) in _query(data_dir, "SELECT path FROM clips")]
    assert sorted(paths) == sorted(str(p) for p in big_plant.rglob("*.wav"))  # every clip, exactly once


def test_killed_scoring_keeps_committed_scores_and_the_next_run_scores_the_rest(big_plant, data_dir):
    ingest([str(big_plant)])
    assert len(train(detector="mahalanobis").trained) == MACHINES

    kill_when(_cli("score", "--jobs", JOBS), lambda: _count(data_dir, "scores") > 0)

    assert_consistent(data_dir)
    assert 0 < _count(data_dir, "scores") < N_CLIPS

    run(_cli("score", "--jobs", JOBS))
    assert_consistent(data_dir)
    per_clip = _query(
        data_dir,
        "SELECT c.id, count(s.id) FROM clips c JOIN machines m ON m.id = c.machine_pk "
        "LEFT JOIN scores s ON s.clip_id = c.id AND s.model_id = m.active_model_id GROUP BY c.id",
    )
    assert len(per_clip) == N_CLIPS and {n for _, n in per_clip} == {1}  # every clip scored exactly once


def test_killed_training_leaves_no_half_written_model_and_the_next_run_trains(big_plant, data_dir):
    ingest([str(big_plant)])
    # killed while a later machine's model is being made: what was committed is complete and usable
    kill_when(_cli("train", "--detector", "mahalanobis"), lambda: _count(data_dir, "detector_models") > 0)

    assert_consistent(data_dir)
    assert 0 < _count(data_dir, "detector_models") < MACHINES

    run(_cli("train", "--detector", "mahalanobis"))
    assert_consistent(data_dir)
    active = _query(data_dir, "SELECT m.machine_type || '/' || m.machine_id, d.detector, d.version, d.artifact_path "
                              "FROM machines m JOIN detector_models d ON d.id = m.active_model_id")  # fmt: skip
    assert len(active) == MACHINES
    some_clip = str(next(big_plant.rglob("*.wav")))
    for scope, detector, version, folder in active:
        assert (detector, Path(folder)) == ("mahalanobis", artifact_dir(detector, scope, version))
        model = Detector.load(folder)
        assert model.decision_function([file_features(some_clip, model.feature_params)]).shape == (1,)


def test_a_model_folder_left_by_a_killed_run_is_replaced_not_trusted(plant, data_dir):
    """Killed after its files were moved into place but before its row was committed, a run leaves a version
    folder no row refers to (and a staging folder when killed while writing): the next run replaces it."""
    scope = "fan/id_00"
    leftover = artifact_dir("mahalanobis", scope, 1)
    leftover.mkdir(parents=True)
    (leftover / "detector.json").write_text("{half written")
    (leftover / "stale.bin").write_bytes(b"\0" * 10)
    staging = leftover.parent / ".staging-killed"
    staging.mkdir()
    old = time.time() - 2 * 3600
    os.utime(staging, (old, old))

    (trained,) = train(scope, detector="mahalanobis").trained
    assert trained.version == 1
    assert sorted(p.name for p in leftover.iterdir()) == ["detector.json", "state.npz"]
    assert Detector.load(leftover).is_fitted
    assert not staging.exists()  # a dead run's staging folder is cleaned up
    assert [p.name for p in leftover.parent.iterdir()] == ["v1"]
    assert_consistent(data_dir)
