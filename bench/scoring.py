"""Benchmark: end-to-end scoring, 8-channel WAV files on disk to scores stored in the database.

Both pipelines run as whole processes on the same new (unscored) clips with the same
trained autoencoder, in the same run:

* baseline: the straightforward per-file loop (``librosa.load``, ``melspectrogram``,
  ``power_to_db``, a Python loop stacking frames, one ``model.predict`` call per file,
  one committed insert per file);
* ours: ``python -m core score`` (features on every core, batched forward passes,
  chunked inserts);
* with ``--engine ray``, also ``python -m core score --engine ray`` (Ray tasks on a local Ray
  instance of every core; start-up included), and a Ray instance started and stopped alone,
  so that the rate without start-up can be told.

    python bench/scoring.py --clips 600                 # the measurement quoted in the README
    python bench/scoring.py --clips 600 --engine ray    # and the local Ray figure beside it
    python bench/scoring.py --clips 4                   # smoke run (CI)
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


def baseline_worker(model_id: int) -> None:
    """The per-file pipeline, run in its own process (``--baseline-worker``)."""
    import keras
    import librosa
    import numpy as np

    from core.signal.features import FeatureParams
    from db.models import DetectorModel, Score
    from db.queries import unscored_clips
    from db.session import session_scope

    p = FeatureParams()
    with session_scope() as session:
        model_row = session.get(DetectorModel, model_id)
        clips = [(c.id, c.path) for c in unscored_clips(session, model_id, _machine_pks(session))]
        model = keras.models.load_model(Path(model_row.artifact_path) / "model.keras", compile=False)
    for clip_id, path in clips:
        signal, sr = librosa.load(path, sr=None, mono=False)
        mel = librosa.feature.melspectrogram(
            y=signal[0], sr=sr, n_fft=p.n_fft, hop_length=p.hop_length, n_mels=p.n_mels
        )
        log_mel = librosa.power_to_db(mel, ref=np.max)
        n = log_mel.shape[1] - p.frames + 1
        features = np.zeros((n, p.dims), np.float32)
        for t in range(p.frames):
            features[:, p.n_mels * t : p.n_mels * (t + 1)] = log_mel[:, t : t + n].T
        prediction = model.predict(features, verbose=0)
        mse = float(np.mean(np.mean(np.square(features - prediction), axis=1)))
        with session_scope(write=True) as session:
            session.add(Score(clip_id=clip_id, model_id=model_id, score=mse))


def _machine_pks(session) -> list[int]:
    from db.queries import machines_matching

    return [m.id for m in machines_matching(session)]


RAY_START_STOP = (
    "import ray; ray.init(address='local', include_dashboard=False); "
    "ray.get(ray.remote(lambda: 0).remote()); ray.shutdown()"
)


def _timed(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=600, help="new 8-channel 10 s clips to score (default 600)")
    parser.add_argument(
        "--engine",
        choices=["process", "ray"],
        default="process",
        help="ray: also score with --engine ray on a local Ray instance (default: process only)",
    )
    parser.add_argument("--baseline-worker", type=int, metavar="MODEL_ID", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline_worker is not None:
        baseline_worker(args.baseline_worker)
        return 0

    from sqlalchemy import delete, func, select

    with tempfile.TemporaryDirectory() as tmp:
        env = os.environ | {"DATA_DIR": str(Path(tmp) / "data"), "PYTHONPATH": str(ROOT)}
        env.pop("DATABASE_URL", None)
        os.environ.update({"DATA_DIR": env["DATA_DIR"]})
        os.environ.pop("DATABASE_URL", None)

        from core.datasets.demo import write_plant
        from core.workflows.ingest import ingest
        from core.workflows.scoring import score
        from core.workflows.training import train
        from db.models import Score
        from db.session import session_scope

        write_plant(Path(tmp) / "train", machines=1, normal=12, abnormal=0, channels=8, seed=1)
        ingest([str(Path(tmp) / "train")])
        (model,) = train("fan/id_00", "autoencoder", epochs=3).trained
        score()  # the training clips: only the new ones are left for the two pipelines
        write_plant(Path(tmp) / "new", machines=1, normal=args.clips, abnormal=0, channels=8, seed=2)
        ingest([str(Path(tmp) / "new")])

        def stored() -> int:
            with session_scope() as session:
                return session.scalar(select(func.count(Score.id)))

        def forget_new_scores() -> None:
            with session_scope(write=True) as session:
                session.execute(delete(Score).where(Score.id > before))

        before = stored()
        base_s = _timed([sys.executable, "bench/scoring.py", "--baseline-worker", str(model.model_id)], env)
        total = stored() - before
        forget_new_scores()
        ours_s = _timed([sys.executable, "-m", "core", "score"], env)
        assert stored() - before == total == args.clips, "both pipelines must store a score for every new clip"
        if args.engine == "ray":
            forget_new_scores()
            ray_s = _timed([sys.executable, "-m", "core", "score", "--engine", "ray"], env)
            assert stored() - before == total, "Ray must store a score for every new clip"
            start_s = _timed([sys.executable, "-c", RAY_START_STOP], env)

    print(f"end-to-end scoring of {total} 8-channel 10 s clips (whole processes, including start-up)")
    rate = "{:8.1f} clips/s  ({:.1f} s)"
    print(f"  baseline (librosa + predict per file) : {rate.format(total / base_s, base_s)}")
    print(f"  ours (python -m core score)           : {rate.format(total / ours_s, ours_s)}   x{base_s / ours_s:.2f}")
    if args.engine == "ray":
        print(
            f"  ours on local Ray (--engine ray)      : {rate.format(total / ray_s, ray_s)}   x{base_s / ray_s:.2f}"
            f"   (Ray / process pool x{ours_s / ray_s:.2f})"
        )
        print(f"  of which Ray's start and stop alone   : {start_s:8.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
