"""Benchmark: how fast the threshold page re-renders when the slider moves, with 10,000 scored clips.

A database is filled directly with N labelled clips of one machine, a model, its scores
and a threshold (no audio needed: nothing is left to score).  The real app runs through
Streamlit's AppTest: the first render (queries, labels, sweep) is the baseline, then
the slider moves to several values and each full re-render is timed.

    python bench/dashboard.py --clips 10000     # the README's figure
    python bench/dashboard.py --clips 200       # smoke run (CI)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def fill_database(n_clips: int) -> str:
    """N clips of fan/id_00 (20% abnormal), all in the test split, scored by one model; returns the machine."""
    import numpy as np

    from db.models import Clip, DetectorModel, Machine, Score
    from db.queries import add_threshold
    from db.session import session_scope

    rng = np.random.default_rng(0)
    abnormal = rng.random(n_clips) < 0.2
    scores = rng.gamma(4.0, 2.0, n_clips) + 6.0 * abnormal
    with session_scope(write=True) as session:
        machine = Machine(machine_type="fan", machine_id="id_00")
        model = DetectorModel(detector="mahalanobis", scope="fan/id_00", version=1, artifact_path=None,
                              params={}, provenance={"n_train": 0, "clip_ids": []})  # fmt: skip
        session.add_all([machine, model])
        session.flush()
        machine.active_model_id = model.id
        clips = [
            Clip(
                path=f"/bench/{i}.wav",
                content_hash=f"{i:064x}",
                machine_pk=machine.id,
                label="abnormal" if abnormal[i] else "normal",
                split="test",
                sample_rate=16000,
                n_channels=1,
                duration_s=10.0,
                n_bytes=320044,
            )  # fmt: skip
            for i in range(n_clips)
        ]
        session.add_all(clips)
        session.flush()
        session.add_all(
            Score(clip_id=c.id, model_id=model.id, score=float(s)) for c, s in zip(clips, scores, strict=True)
        )
        add_threshold(session, model.id, float(np.quantile(scores, 0.8)), method="gamma", set_by="bench", reason="")
    return "fan/id_00"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=10_000, help="scored clips (default 10000)")
    parser.add_argument("--moves", type=int, default=8, help="slider positions to time (default 8)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update({"DATA_DIR": tmp, "DEMO_PLANT": "0"})
        os.environ.pop("DATABASE_URL", None)
        from streamlit.testing.v1 import AppTest

        machine = fill_database(args.clips)
        app = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300).run()
        app.switch_page("dashboard/pages/thresholds.py")
        start = time.perf_counter()
        app.run()
        first = time.perf_counter() - start
        assert not app.exception, app.exception
        stops = app.select_slider(key="threshold_slider").options  # stops at score quantiles, as labelled
        times = []
        for k in range(args.moves):
            stop = stops[(len(stops) - 1) * (k + 1) // (args.moves + 1)]
            app.select_slider(key="threshold_slider").set_value(float(stop))
            start = time.perf_counter()
            app.run()
            times.append(time.perf_counter() - start)
            assert not app.exception, app.exception
    median = statistics.median(times)
    print(f"threshold page, {args.clips} scored clips of {machine} (full app re-run through AppTest)")
    print(f"  first render (queries, labels, sweep) : {first * 1000:7.0f} ms")
    print(f"  slider move, median of {args.moves}          : {median * 1000:7.0f} ms   "
          f"(worst {max(times) * 1000:.0f} ms; x{first / median:.1f} faster than the first render)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
