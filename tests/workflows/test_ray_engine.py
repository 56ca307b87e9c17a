"""core.workflows.ray_engine: scoring and feature extraction on a local Ray instance (two CPUs) give what the
process pool gives, each worker loads a model once, and a worker killed mid-run loses nothing."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, select

from core.errors import BadInputError, Reason
from core.signal.batch import extract_features
from core.signal.features import FeatureParams
from core.workflows import ray_engine
from core.workflows.model_store import load_detector
from core.workflows.scoring import score
from core.workflows.training import train
from db.models import Clip, DetectorModel, Score
from db.queries import score_details
from db.session import session_scope
from tests.conftest import SMALL_PLANT_CLIPS

pytestmark = pytest.mark.usefixtures("ray_local")


def _stored() -> dict[tuple[int, int], float]:
    """``{(clip_id, model_id): score}`` of every stored score (fails if a clip is scored twice by a model)."""
    with session_scope() as session:
        rows = [(row.clip_id, row.model_id, row.score) for row in session.scalars(select(Score))]
    assert max(Counter((c, m) for c, m, _ in rows).values(), default=1) == 1, "a clip scored twice by one model"
    return {(clip_id, model_id): value for clip_id, model_id, value in rows}


def _forget_scores() -> None:
    with session_scope(write=True) as session:
        session.execute(delete(Score))


def _details() -> dict[tuple[int, int], dict]:
    with session_scope() as session:
        keys = [(row.clip_id, row.model_id) for row in session.scalars(select(Score))]
        return {(c, m): score_details(session, m, c) for c, m in keys}


def test_ray_gives_the_process_pools_scores_and_details(plant):
    train(detector="mahalanobis")
    assert score().scored == SMALL_PLANT_CLIPS
    expected, expected_details = _stored(), _details()
    _forget_scores()

    calls = []
    report = score(engine="ray", progress=lambda done, total: calls.append((done, total)))

    assert (report.scored, report.models, report.failed) == (SMALL_PLANT_CLIPS, 2, [])
    assert _stored() == expected  # the same scores, bit for bit, for the same clips and models
    assert _details() == expected_details  # and the same errors per frame and per band
    assert calls[-1] == (SMALL_PLANT_CLIPS, SMALL_PLANT_CLIPS)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert score(engine="ray").scored == 0  # nothing is scored twice


def test_each_worker_loads_a_model_once_and_results_arrive_in_batches(plant):
    train(detector="mahalanobis", machine="fan/id_00")
    with session_scope() as session:
        model = session.scalar(select(DetectorModel))
        clips = [(c.id, c.path) for c in session.scalars(select(Clip).order_by(Clip.id))]
    tasks = len(ray_engine.task_chunks(clips, 2))
    assert tasks >= 8  # enough tasks that workers run several each

    batches = list(ray_engine.scored_batches(model.artifact_path, clips))

    loads = Counter()
    for batch in batches:
        loads.update(batch.loads)
    assert set(loads.values()) == {1} and len(loads) < tasks  # every worker that ran a task loaded it once
    assert os.getpid() not in loads  # the driver never loaded it: workers read and score
    assert sum(len(b.scores) for b in batches) == len(clips) and not any(b.failed for b in batches)
    assert [len(b.scores) for b in batches] == [len(clips)]  # under SCORE_CHUNK clips: one batch to commit


def _ray_workers_running(task: str) -> list[int]:
    """Processes of this session's Ray instance running ``task`` now (Ray names them ``ray::<task>``)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(f"ray::{task}".encode()):
                found.append(int(proc.name))
        except OSError:  # ended meanwhile
            continue
    return [pid for pid in found if _descends_from(pid, os.getpid())]


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state: the parent's pid
        if pid == ancestor:
            return True
    return False


def test_a_worker_killed_mid_run_loses_nothing(plant):
    train(detector="mahalanobis")
    score()
    expected = _stored()
    _forget_scores()
    killed: list[int] = []
    stop = threading.Event()

    def kill_the_first_busy_worker() -> None:
        """Watches from the start of the run (a progress callback would hold the driver, and the tasks in flight
        could all end first) and kills the first worker seen running a scoring task."""
        while not stop.is_set() and not killed:
            busy = _ray_workers_running("score_task")
            if busy:
                os.kill(busy[0], signal.SIGKILL)  # mid-task: Ray runs that task again on another worker
                killed.append(busy[0])
            time.sleep(0.002)

    killer = threading.Thread(target=kill_the_first_busy_worker, daemon=True)
    killer.start()
    try:
        report = score(engine="ray")
    finally:
        stop.set()
        killer.join()

    assert killed, "no worker was busy to kill"
    assert (report.scored, report.failed) == (SMALL_PLANT_CLIPS, [])
    assert _stored() == expected  # every clip scored, exactly once, with the same score


def test_ray_features_equal_the_process_pools_and_bad_files_are_recorded(plant_dir, tmp_path):
    paths = sorted(str(p) for p in plant_dir.rglob("*.wav"))[:12]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    params = FeatureParams()

    on_ray = ray_engine.extract_features([*paths, str(bad)], params)
    here = extract_features(paths, params)

    assert set(on_ray.features) == set(paths) and list(on_ray.failures) == [str(bad)]
    assert isinstance(on_ray.failures[str(bad)], BadInputError)
    assert on_ray.failures[str(bad)].reason in (Reason.NOT_AUDIO, Reason.CORRUPT)
    for path in paths:
        np.testing.assert_array_equal(on_ray.features[path], here.features[path])
        assert on_ray.features[path].dtype == np.float32 and on_ray.features[path].flags.writeable


def test_training_with_features_from_ray_learns_the_same_model(plant):
    (on_ray,) = train(detector="mahalanobis", machine="fan/id_00", engine="ray").trained
    (here,) = train(detector="mahalanobis", machine="fan/id_00").trained
    assert (on_ray.version, here.version, on_ray.n_train) == (1, 2, here.n_train)
    with session_scope() as session:
        folders = [session.get(DetectorModel, t.model_id).artifact_path for t in (on_ray, here)]
    scores_ray, scores_here = (load_detector(folder).decision_scores_ for folder in folders)
    np.testing.assert_array_equal(scores_ray, scores_here)


def test_an_address_needs_the_ray_engine(plant):
    with pytest.raises(BadInputError, match="--address needs --engine ray"):
        score(address="ray://head:10001")
    with pytest.raises(BadInputError, match="--address needs --engine ray"):
        train(detector="mahalanobis", address="ray://head:10001")


@pytest.mark.slow
def test_ray_scores_with_a_keras_autoencoder_as_the_process_pool_does(plant):
    train(detector="autoencoder", machine="fan/id_00", epochs=1)
    assert score().scored == SMALL_PLANT_CLIPS // 2
    expected = _stored()
    _forget_scores()

    report = score(engine="ray")

    assert (report.scored, report.failed) == (SMALL_PLANT_CLIPS // 2, [])
    stored = _stored()
    assert stored.keys() == expected.keys()
    # Keras's forward passes see other batches on the workers than here: equal to float32 rounding
    assert [stored[k] for k in expected] == pytest.approx([expected[k] for k in expected], rel=1e-5)
