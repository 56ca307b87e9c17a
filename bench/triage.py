"""Benchmark: the server time from a verdict to the next clip rendered on the Triage page, with 10,000 flagged clips
on one machine.

A database is filled directly with N clips of fan/id_00, a model, its scores (every clip above the threshold, with
per-frame and per-band errors as scoring stores them) and a threshold.  The clips are links to a few real 10 s WAV
files (each clip its own path, so nothing is shared between clips in the view cache).  The real app runs through
Streamlit's AppTest: the pilot gives a name, then clicks "Reject (normal)" and the whole app script re-runs (the
verdict stored by the button's callback, the queue read again, the next clip drawn: player, verdict form,
spectrograms, error charts).  Each verdict is timed:

* warm: the next clip's views were prepared in the background while the pilot listened (what the page does);
* cold: the view cache emptied before the verdict (the next clip is read and its spectrograms computed then).

    python bench/triage.py --clips 10000      # the README's figures
    python bench/triage.py --clips 50 --verdicts 2   # smoke run (CI)
    python bench/triage.py --clips 10000 --keras     # in a server that has loaded Keras (a page used a model)
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

MACHINE = "fan/id_00"
SR, SECONDS = 16_000, 10.0


def write_audio(folder: Path, n_files: int) -> list[Path]:
    """``n_files`` 10 s mono WAV files: noise with a knock somewhere."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    out = []
    for k in range(n_files):
        signal = 0.05 * rng.standard_normal(int(SR * SECONDS))
        start = int(rng.uniform(1, 8) * SR)
        signal[start : start + SR // 10] += 0.5 * np.sin(np.arange(SR // 10) * 0.3)
        path = folder / f"source_{k}.wav"
        sf.write(path, signal.astype(np.float32), SR, subtype="PCM_16")
        out.append(path)
    return out


def fill_database(n_clips: int, folder: Path, n_files: int) -> None:
    """N clips of fan/id_00 (links to ``n_files`` real files), every one scored above the threshold."""
    import numpy as np

    from db.models import Clip, DetectorModel, Machine, Score
    from db.queries import add_threshold
    from db.session import session_scope

    sources = write_audio(folder, n_files)
    rng = np.random.default_rng(1)
    scores = rng.gamma(4.0, 2.0, n_clips) + 10.0
    n_frames = int(SECONDS * SR / 512) + 1
    with session_scope(write=True) as session:
        machine = Machine(machine_type="fan", machine_id="id_00")
        model = DetectorModel(detector="mahalanobis", scope=MACHINE, version=1, artifact_path=None, params={},
                              provenance={"n_train": 0, "clip_ids": []})  # fmt: skip
        session.add_all([machine, model])
        session.flush()
        machine.active_model_id = model.id
        clips = []
        for i in range(n_clips):
            path = folder / f"clip_{i:06d}.wav"
            path.symlink_to(sources[i % n_files])
            clip = Clip(path=str(path), content_hash=f"{i:064x}", machine_pk=machine.id, label="unknown", split="none",
                        sample_rate=SR, n_channels=1, duration_s=SECONDS, n_bytes=320_044)  # fmt: skip
            clips.append(clip)
        session.add_all(clips)
        session.flush()
        for clip, value in zip(clips, scores, strict=True):
            frames = rng.gamma(2.0, 1.0, n_frames).round(3).tolist()
            details = {"frame_errors": frames, "band_errors": rng.gamma(2.0, 1.0, 64).round(3).tolist()}
            session.add(Score(clip_id=clip.id, model_id=model.id, score=float(value), details=details))
        add_threshold(session, model.id, 5.0, method="manual", set_by="bench", reason="every clip flagged")


def _verdicts(app, n: int, *, cold: bool) -> list[float]:
    """Time ``n`` verdicts (a click on "Reject (normal)" and the app's re-run), in seconds each."""
    import streamlit as st

    from dashboard.components.clip_view import clear_view_cache, prefetched

    times = []
    for _ in range(n):
        prefetched()  # the pilot listened for a few seconds: the background work is done
        if cold:
            clear_view_cache()
            st.cache_data.clear()
        button = next(b for b in app.button if b.label == "Reject (normal)")
        button.click()
        start = time.perf_counter()
        app.run()
        times.append(time.perf_counter() - start)
        assert not app.exception, app.exception
        assert not app.error, [e.value for e in app.error]
    return times


def _median_s(call, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=10_000, help="flagged clips on the machine (default 10000)")
    parser.add_argument("--verdicts", type=int, default=10, help="verdicts timed, warm and cold each (default 10)")
    parser.add_argument("--files", type=int, default=8, help="distinct WAV files behind the clips (default 8)")
    parser.add_argument("--keras", action="store_true",
                        help="load Keras first, as in a server where a page has used a Keras model")  # fmt: skip
    args = parser.parse_args(argv)
    keras = __import__("keras") if args.keras else None

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update({"DATA_DIR": tmp, "DEMO_PLANT": "0", "OVERLAP_FRACTION": "0", "AUTH": "none"})
        os.environ.pop("DATABASE_URL", None)
        from streamlit.testing.v1 import AppTest

        from core.workflows.triage import queue_size, review_list, triage_queue

        start = time.perf_counter()
        fill_database(args.clips, Path(tmp), args.files)
        filled = time.perf_counter() - start
        app = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300).run()
        app.switch_page("dashboard/pages/triage.py").run()
        app.text_input(key="annotator_input").input("bench")  # the sidebar's name
        start = time.perf_counter()
        app.run()  # the name taken: the first clip of the queue drawn
        first = time.perf_counter() - start
        assert not app.exception, app.exception
        warm = _verdicts(app, args.verdicts, cold=False)
        cold = _verdicts(app, args.verdicts, cold=True)
        left = queue_size(MACHINE, annotator="bench")
        queue_s = _median_s(lambda: triage_queue(MACHINE, annotator="bench"))
        review_s = _median_s(lambda: review_list(MACHINE))
        reset_s = _median_s(keras.backend.clear_session) if keras else None  # what Streamlit would do after each run
    assert left == args.clips - 2 * args.verdicts, left
    print(f"triage page, {args.clips} flagged clips of {MACHINE} (full app re-run through AppTest; database filled "
          f"in {filled:.1f} s)")  # fmt: skip
    print(f"  first clip after giving a name           : {first * 1000:7.0f} ms")
    print(f"  verdict -> next clip, warm, median of {args.verdicts:<3}: {statistics.median(warm) * 1000:7.0f} ms   "
          f"(worst {max(warm) * 1000:.0f} ms)")  # fmt: skip
    ratio = statistics.median(cold) / statistics.median(warm)
    print(f"  verdict -> next clip, cold, median of {args.verdicts:<3}: {statistics.median(cold) * 1000:7.0f} ms   "
          f"(worst {max(cold) * 1000:.0f} ms; x{ratio:.2f} the warm)")  # fmt: skip
    print(f"  the queue query alone (each re-run)      : {queue_s * 1000:7.0f} ms")
    print(f"  the review list alone (cached a minute)  : {review_s * 1000:7.0f} ms")
    if reset_s is not None:
        print(f"  Keras loaded; Streamlit's after-run Keras reset (the app skips it) would add {reset_s * 1000:.0f} ms "
              "to each re-run")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
