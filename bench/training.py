"""Benchmark: training the seed's autoencoder on 1,000 clips for 30 epochs on this machine.

Features come from a demo plant's normal 10 s clips; early stopping is disabled so all
epochs run.  Prints the wall time against the 2-minute target, and the throughput.

    python bench/training.py                       # 1,000 clips x 30 epochs
    python bench/training.py --clips 10 --epochs 2 # smoke run (CI)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.datasets.demo import write_plant  # noqa: E402
from core.signal.batch import extract_features  # noqa: E402

TARGET_S = 120.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=1000, help="normal 10 s clips to train on (default 1000)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs (default 30)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        plan = write_plant(tmp, machines=1, normal=args.clips, abnormal=0)
        start = time.perf_counter()
        batch = extract_features([clip.path for clip in plan])
        features_s = time.perf_counter() - start
    clips = list(batch.features.values())
    n_vectors = sum(len(c) for c in clips)

    from core.detection.registry import detector_class

    detector = detector_class("autoencoder")(epochs=args.epochs, patience=args.epochs)
    start = time.perf_counter()
    detector.fit(clips)
    fit_s = time.perf_counter() - start
    epochs_run = len(detector.history_["loss"])
    print(f"autoencoder on {len(clips)} clips ({n_vectors} vectors), {epochs_run} epochs")
    print(f"  features : {features_s:6.1f} s")
    print(f"  training : {fit_s:6.1f} s   ({n_vectors * epochs_run / fit_s:,.0f} vectors/s; "
          f"{fit_s / TARGET_S:.2f} of the {TARGET_S:.0f} s budget)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
