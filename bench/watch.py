"""Benchmark: sustained ingest + score rate of the folder watcher, against a batch baseline.

A machine is trained first (the product's default detector unless ``--detector``).
Then, in the same run and on the same number of new 10 s clips:

* baseline: the batch path, ``ingest`` then ``score`` on a folder already complete;
* ours: ``Watcher`` polling a drop folder that the clips arrive in, ``--batch`` at a time,
  as recorders would deliver them; the rate counts from the first arrival to the last
  clip scored.

    python bench/watch.py --clips 200            # the measurement quoted in the README
    python bench/watch.py --clips 4 --duration 1 --detector mahalanobis   # smoke run (CI)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _fresh_clips(folder: Path, n: int, duration: float, seed: int) -> list[Path]:
    from core.datasets.demo import write_plant

    write_plant(folder, machines=1, normal=n, abnormal=0, duration_s=duration, seed=seed)
    return sorted(folder.rglob("*.wav"))


def _scored_count() -> int:
    from sqlalchemy import func, select

    from db.models import Score
    from db.session import session_scope

    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Score))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200, help="new clips per pipeline (default 200)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per clip (default 10)")
    parser.add_argument("--batch", type=int, default=10, help="clips arriving together (default 10)")
    parser.add_argument("--detector", default=None, help="detector to train (default: the product's default)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    os.environ.update(DATA_DIR=str(work / "data"), DEMO_PLANT="0")
    os.environ.pop("DATABASE_URL", None)
    from core.detection.registry import DEFAULT_DETECTOR
    from core.workflows.ingest import ingest
    from core.workflows.scoring import score
    from core.workflows.training import train
    from core.workflows.watch import Watcher

    try:
        detector = args.detector or DEFAULT_DETECTOR
        ingest([str(p) for p in _fresh_clips(work / "train", 20, args.duration, seed=0)], n_jobs=args.jobs)
        train("fan/id_00", detector, epochs=5)
        score(n_jobs=args.jobs)

        batch_clips = _fresh_clips(work / "batch", args.clips, args.duration, seed=1)
        before = _scored_count()
        started = time.perf_counter()
        ingest([str(work / "batch")], n_jobs=args.jobs)
        score(n_jobs=args.jobs)
        batch_s = time.perf_counter() - started
        assert _scored_count() - before == len(batch_clips)

        arriving = _fresh_clips(work / "incoming", args.clips, args.duration, seed=2)
        drop = work / "drop" / "fan" / "id_00"
        drop.mkdir(parents=True)
        watcher = Watcher(work / "drop", settle_s=0.0, n_jobs=args.jobs)
        before = _scored_count()
        started = time.perf_counter()
        for start in range(0, len(arriving), args.batch):
            for clip in arriving[start : start + args.batch]:
                shutil.copy(clip, drop / f"{start:05d}_{clip.name}")
            watcher.poll()
        while _scored_count() - before < len(arriving):
            watcher.poll()
        watch_s = time.perf_counter() - started

        n = len(arriving)
        print(f"watcher ingest+score of {n} new {args.duration:g} s clips ({detector}, {args.batch} at a time)")
        print(f"  baseline, batch ingest then score : {n / batch_s:8.1f} clips/s ({batch_s:.1f} s)")
        print(f"  watcher, clips arriving            : {n / watch_s:8.1f} clips/s ({watch_s:.1f} s)")
        print(f"  watcher / batch                    : {batch_s / watch_s:8.2f} x")
    finally:
        from core.parallel import shutdown_pools

        shutdown_pools()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
