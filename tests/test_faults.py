"""Faults leave a state that resumes: a first start killed half-way is finished once by the next, two first
starts at once train one set of models, worker pools die with their parent, and the CLI answers a refusing
database or file system with one line, never a traceback or SQL."""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.errors import environment_problem
from db.models import Clip, DetectorModel, Score
from db.session import DB_FILENAME, dispose_engines, session_scope
from tests.conftest import tone, wait_for, write_wav

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
PLANT = dict(machines=2, normal=8, abnormal=2, detector="mahalanobis")
FIRST_START = f"from core.workflows.bootstrap import run_first_start; run_first_start(**{PLANT!r})"


def _env(data_dir: Path) -> dict[str, str]:
    env = os.environ | {"PYTHONPATH": str(ROOT), "DATA_DIR": str(data_dir), "DEMO_PLANT": "1"}
    env.pop("DATABASE_URL", None)
    return env


def _counts() -> tuple[int, int, int]:
    dispose_engines()
    with session_scope() as session:
        return (session.scalar(select(func.count(Clip.id))), session.scalar(select(func.count(DetectorModel.id))),
                session.scalar(select(func.count(Score.id))))  # fmt: skip


def test_a_first_start_killed_half_way_is_finished_once_by_the_next(data_dir, monkeypatch):
    monkeypatch.setenv("DEMO_PLANT", "1")
    run = subprocess.Popen([sys.executable, "-c", FIRST_START], cwd=ROOT, env=_env(data_dir))
    database = data_dir / DB_FILENAME

    def clips_stored() -> bool:
        if not database.exists():
            return False
        try:
            with sqlite3.connect(database, timeout=1) as conn:
                return conn.execute("SELECT count(*) FROM clips").fetchone()[0] > 0
        except sqlite3.Error:
            return False

    assert wait_for(clips_stored, timeout_s=120), "the first start never stored a clip"
    run.send_signal(signal.SIGKILL)  # the tab closed, the server killed: mid-first-start
    run.wait(timeout=30)
    clips, models, _ = _counts()
    assert clips > 0 and models < 2  # not empty any more, and not finished

    from core.workflows.bootstrap import first_start_needed, run_first_start

    assert first_start_needed()  # the database is not empty, yet the start resumes
    report = run_first_start(**PLANT)
    assert report.ingested < report.clips == 20  # what the page says is ready: the whole plant, not what was left
    from core.workflows.audit import audit_events

    assert {e["user"] for e in audit_events() if e["action"] in ("ingest", "train")} == {"first start"}  # one name
    assert _counts() == (20, 2, 20)  # every clip once, one model per machine, every clip scored
    assert not first_start_needed()
    assert run_first_start(**PLANT) is None  # and never again


def test_two_first_starts_at_once_train_one_set_of_models(data_dir, monkeypatch):
    from core.workflows.bootstrap import run_first_start

    monkeypatch.setenv("DEMO_PLANT", "1")
    results, errors = [], []

    def start() -> None:
        try:
            results.append(run_first_start(**PLANT))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors
    assert sum(r is not None for r in results) == 1  # the second one waited, then found nothing to do
    assert _counts() == (20, 2, 20)


WORKERS = textwrap.dedent("""
    import sys, time
    from core.parallel import _pools, map_guarded
    def main():
        it = map_guarded(time.sleep, [5.0] * 16, n_jobs=2)
        next(it)
    if __name__ == "__main__":
        import threading
        threading.Thread(target=main, daemon=True).start()
        while not _pools or not next(iter(_pools.values()))._processes:
            time.sleep(0.05)
        time.sleep(0.5)
        print(" ".join(str(pid) for pid in next(iter(_pools.values()))._processes), flush=True)
        time.sleep(600)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its new parent) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_worker_processes_die_with_their_parent(tmp_path):
    script = tmp_path / "workers.py"
    script.write_text(WORKERS)
    parent = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)},
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    pids = [int(p) for p in parent.stdout.readline().split()]
    assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=30)
    assert wait_for(lambda: not any(_alive(pid) for pid in pids), timeout_s=30), "orphaned workers kept running"


def _cli(*args: str, data_dir: Path, database: str | None = None) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(ROOT), "DATA_DIR": str(data_dir), "DEMO_PLANT": "0"}
    env.pop("DATABASE_URL", None)
    if database:
        env["DATABASE_URL"] = database
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def _one_clean_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "SELECT" not in result.stderr and "INSERT" not in result.stderr
    return lines[0]


def test_a_read_only_database_is_one_clear_line(data_dir, tmp_path):
    write_wav(tmp_path / "in" / "a.wav", tone(1.0))
    assert _cli("info", data_dir=data_dir).returncode == 0  # the database exists, at the latest revision
    read_only = f"sqlite:///file:{data_dir / DB_FILENAME}?mode=ro&uri=true"  # as a read-only mount would (even root)
    line = _one_clean_line(_cli("ingest", str(tmp_path / "in"), data_dir=data_dir, database=read_only))
    assert line == "error: the database could not be used: attempt to write a readonly database"


def test_a_corrupt_database_is_one_clear_line(data_dir):
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / DB_FILENAME).write_bytes(b"this is no database at all" * 100)
    line = _one_clean_line(_cli("info", data_dir=data_dir))
    assert line.startswith("error: the database could not be used") and "not a database" in line


def test_an_over_long_path_is_refused_and_the_batch_keeps_its_good_items(data_dir, tmp_path):
    good = write_wav(tmp_path / "in" / "a.wav", tone(1.0))
    result = _cli("ingest", "/tmp/" + "x" * 5000, str(good), "--json", data_dir=data_dir)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    import json

    report = json.loads(result.stdout)
    assert report["ingested"] == 1
    (refused,) = report["rejected"]
    assert refused["reason"] == "invalid_parameter" and "too long" in refused["detail"]


def test_environment_problems_are_named_without_sql():
    from sqlalchemy.exc import OperationalError

    exc = OperationalError("INSERT INTO clips VALUES (1, 2, 3)", {}, sqlite3.OperationalError("disk I/O error"))
    assert environment_problem(exc) == "the database could not be used: disk I/O error"
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/models/x.keras")
    assert environment_problem(full) == "No space left on device: /data/models/x.keras"
    assert environment_problem(KeyError("a bug")) is None  # bugs stay bugs
