"""Benchmark: log-mel frame features from 8-channel 10 s WAV files on disk.

Times, in the same run and after a warm-up, the straightforward per-file pipeline
(``librosa.load(sr=None, mono=False)``, ``melspectrogram``, ``power_to_db``, a Python
loop stacking frames; channel 0 kept) against ours (``core.signal.batch.file_features`` on one
core, and ``core.signal.batch.extract_features`` on every core), and prints clips/s and ratios.

    python bench/features.py --clips 200          # a real measurement
    python bench/features.py --clips 4            # smoke run (CI)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.datasets.demo import write_plant  # noqa: E402
from core.parallel import default_jobs  # noqa: E402
from core.signal.batch import extract_features, file_features  # noqa: E402
from core.signal.features import FeatureParams  # noqa: E402

P = FeatureParams()


def baseline_features(path: str) -> np.ndarray:
    """The seed's recipe, file by file."""
    signal, sr = librosa.load(path, sr=None, mono=False)
    signal = signal[0]
    mel = librosa.feature.melspectrogram(y=signal, sr=sr, n_fft=P.n_fft, hop_length=P.hop_length, n_mels=P.n_mels)
    log_mel = librosa.power_to_db(mel, ref=np.max)
    n = log_mel.shape[1] - P.frames + 1
    features = np.zeros((n, P.dims), np.float32)
    for t in range(P.frames):
        features[:, P.n_mels * t : P.n_mels * (t + 1)] = log_mel[:, t : t + n].T
    return features


def clips_per_second(run, paths: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run(paths)
        best = min(best, time.perf_counter() - start)
    return len(paths) / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=200, help="number of 8-channel 10 s clips (default 200)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions; the best is kept (default 3)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        plan = write_plant(tmp, machines=1, normal=args.clips, abnormal=0, channels=8)
        paths = [clip.path for clip in plan]
        for path in paths[:2]:  # warm-up: imports, caches, numba
            baseline_features(path)
            file_features(path)
        deviation = max(np.abs(baseline_features(p) - file_features(p)).max() for p in paths[:10])
        assert deviation < 1e-3, f"features differ from the baseline by {deviation} dB"

        with threadpool_limits(limits=1):
            base = clips_per_second(lambda ps: [baseline_features(p) for p in ps], paths, args.repeats)
            ours = clips_per_second(lambda ps: [file_features(p) for p in ps], paths, args.repeats)
        jobs = default_jobs()
        ours_all = clips_per_second(lambda ps: extract_features(ps, n_jobs=jobs), paths, args.repeats)

    print(f"features from {args.clips} 8-channel 10 s clips (channel 0), best of {args.repeats}")
    print(f"  baseline (librosa per file), 1 core : {base:8.1f} clips/s")
    print(f"  ours, 1 core                        : {ours:8.1f} clips/s   x{ours / base:.2f}")
    print(f"  ours, {jobs} cores                       : {ours_all:8.1f} clips/s   x{ours_all / base:.2f}")
    print(f"  largest difference from the baseline  : {deviation:.1e} dB (first {min(10, len(paths))} clips)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
