"""Benchmark: verdict write throughput with concurrent annotators, per database backend.

Each writer is its own process calling ``core.workflows.triage.record_verdict`` (the path the
Triage page and ``python -m core annotate`` take) in a loop.  In the same run, per
backend: one writer alone (the baseline), then ``--writers`` at once; every verdict is
counted back from the database, so a lost or doubled write fails the run.

    python bench/verdicts.py --verdicts 200                                   # SQLite
    python bench/verdicts.py --postgres postgresql+psycopg://user@host/db     # and PostgreSQL
    python bench/verdicts.py --verdicts 5 --writers 2                         # smoke run (CI)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WRITER = """
import sys
from core.workflows.triage import record_verdict
url, writer, n, clip_ids = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), [int(c) for c in sys.argv[4].split(",")]
from db.session import get_engine
get_engine(url)  # connected and migrated before the clock starts
sys.stdout.write("ready\\n"); sys.stdout.flush(); sys.stdin.readline()  # start together
for i in range(n):
    record_verdict(clip_ids[(writer + i) % len(clip_ids)], f"pilot-{writer}", ("normal", "abnormal", "unsure")[i % 3],
                   anomaly_type="bearing", note=f"{writer}:{i}", url=url)
"""


def _clips(url: str, folder: Path) -> list[int]:
    import numpy as np
    import soundfile as sf
    from sqlalchemy import select

    from core.workflows.ingest import ingest
    from db.models import Clip
    from db.session import session_scope

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k in range(20):
        sf.write(folder / f"clip_{k}.wav", 0.1 * rng.standard_normal(16_000).astype(np.float32), 16_000)
    ingest([str(folder)], url=url, n_jobs=1)
    with session_scope(url) as session:
        return list(session.scalars(select(Clip.id)))


def _count(url: str) -> int:
    from sqlalchemy import func, select

    from db.models import Annotation
    from db.session import session_scope

    with session_scope(url) as session:
        return session.scalar(select(func.count()).select_from(Annotation))


def _run_writers(url: str, writers: int, n: int, clip_ids: list[int]) -> float:
    """Seconds for ``writers`` processes to store ``n`` verdicts each, from a common start."""
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    ids = ",".join(map(str, clip_ids))
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, str(w), str(n), ids], cwd=ROOT, env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for w in range(writers)
    ]  # fmt: skip
    for p in procs:
        p.stdout.readline()  # imported and connected
    started = time.perf_counter()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    if any(p.wait() != 0 for p in procs):
        raise SystemExit("a writer failed")
    return time.perf_counter() - started


def _backend(name: str, url: str, args, folder: Path) -> None:
    clip_ids = _clips(url, folder)
    before = _count(url)
    alone = _run_writers(url, 1, args.verdicts, clip_ids)
    together = _run_writers(url, args.writers, args.verdicts, clip_ids)
    stored = _count(url) - before
    expected = args.verdicts * (1 + args.writers)
    if stored != expected:
        raise SystemExit(f"{name}: {stored} verdicts stored, {expected} written")
    one, many = args.verdicts / alone, args.verdicts * args.writers / together
    print(f"{name:<11} 1 writer {one:8.1f} verdicts/s | {args.writers} writers {many:8.1f} verdicts/s "
          f"| {many / one:5.2f} x | all {stored} stored once")  # fmt: skip


def _fresh_postgres(server_url: str) -> tuple[str, callable]:
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        from db.session import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return make_url(server_url).set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verdicts", type=int, default=200, help="verdicts per writer (default 200)")
    parser.add_argument("--writers", type=int, default=8, help="concurrent writer processes (default 8)")
    parser.add_argument("--postgres", default=os.environ.get("TEST_POSTGRES_URL"),
                        help="PostgreSQL server URL to test too (default: TEST_POSTGRES_URL)")  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-verdicts-") as tmp:
        os.environ.update(DATA_DIR=tmp, DEMO_PLANT="0")
        print(f"verdict writes: {args.writers} concurrent annotator processes x {args.verdicts} verdicts")
        _backend("SQLite", f"sqlite:///{tmp}/bench.db", args, Path(tmp) / "clips")
        if args.postgres:
            url, drop = _fresh_postgres(args.postgres)
            try:
                _backend("PostgreSQL", url, args, Path(tmp) / "clips")
            finally:
                drop()
        else:
            print("PostgreSQL  skipped (give --postgres URL or set TEST_POSTGRES_URL)")


if __name__ == "__main__":
    main()
