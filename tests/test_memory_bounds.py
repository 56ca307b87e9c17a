"""Memory is bounded by the work, not by what a file claims: a tiny FLAC that claims minutes at 192 kHz is
refused from its header, and the views of a long clip cost a bounded amount, measured as peak RSS in a
subprocess against a baseline run in the same test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.errors import BadInputError, Reason
from core.signal.audio import load_clip
from core.signal.display import PLAYER_SECONDS, VIEW_COLUMNS, clip_views

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
MB = 1 << 20


def _write_long(path: Path, seconds: float, sr: int, *, constant: bool = False) -> Path:
    """A long clip written a block at a time (the test never holds it whole): a quiet tone, or a constant
    level that FLAC compresses to almost nothing."""
    block = sr * 10
    t = np.arange(block) / sr
    tone = np.full(block, 0.01, np.float32) if constant else (0.01 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as out:
        for _ in range(int(seconds // 10)):
            out.write(tone)
    return path


def _peak_rss_mb(code: str) -> tuple[float, dict]:
    """Run ``code`` in a fresh interpreter; ``(its peak RSS in MB, the JSON it printed last)``."""
    wrapper = (
        code
        + "\nimport resource, json\n"
        + "print(json.dumps({'peak_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, **RESULT}))"
    )
    run = subprocess.run([sys.executable, "-c", wrapper], cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
    result = json.loads(run.stdout.strip().splitlines()[-1])
    return result.pop("peak_kb") / 1024, result


def test_a_tiny_flac_claiming_minutes_at_192_khz_is_refused_before_decoding(tmp_path):
    hostile = _write_long(tmp_path / "bomb.flac", 590, 192_000, constant=True)
    assert hostile.stat().st_size < 2 * MB  # next to nothing on disk, 450 MB once decoded
    with pytest.raises(BadInputError) as refused:
        load_clip(hostile, max_duration_s=600)
    assert refused.value.reason is Reason.SAMPLE_RATE_OUT_OF_RANGE and "192000 Hz" in refused.value.detail
    sf.write(tmp_path / "small.flac", np.sin(np.arange(16_000 * 5) / 7).astype(np.float32) * 0.3, 16_000)
    code = textwrap.dedent("""
        from core.workflows.ingest import inspect_file
        from core.errors import BadInputError
        try:
            inspect_file({path!r})
            RESULT = {{"reason": None}}
        except BadInputError as exc:
            RESULT = {{"reason": exc.reason.value}}
    """)
    baseline, ok = _peak_rss_mb(code.format(path=str(tmp_path / "small.flac")))
    peak, refusal = _peak_rss_mb(code.format(path=str(hostile)))
    assert ok == {"reason": None} and refusal == {"reason": "sample_rate_out_of_range"}
    assert peak < baseline + 20  # the refusal costs nothing beyond reading the header


@pytest.mark.parametrize(("seconds", "sr"), [(10, 16_000), (300, 48_000)])
def test_views_are_bounded_whatever_the_length_and_rate(tmp_path, seconds, sr):
    clip = load_clip(_write_long(tmp_path / "c.wav", seconds, sr))
    views = clip_views(clip.signal, clip.sr)
    assert views.stft_db.shape[1] <= VIEW_COLUMNS + 1 and views.mel_db.shape[1] <= VIEW_COLUMNS + 1
    assert views.player.size <= PLAYER_SECONDS * sr and views.duration_s == pytest.approx(seconds)
    assert views.nbytes < 8 * MB + PLAYER_SECONDS * sr * 4


def test_drawing_a_long_clip_costs_a_bounded_amount_of_memory(tmp_path):
    short = _write_long(tmp_path / "short.wav", 10, 48_000)
    long = _write_long(tmp_path / "long.wav", 300, 48_000)  # 30x as long: 55 MB of samples
    code = textwrap.dedent("""
        from core.signal.audio import load_clip
        from core.signal.display import clip_views
        from dashboard.components import plots
        clip = load_clip({path!r})
        views = clip_views(clip.signal, clip.sr)
        hop = views.hop_length
        figures = [plots.waveform(views.envelope),
                   plots.spectrogram(views.stft_db, clip.sr, hop, mel=False, title="t"),
                   plots.spectrogram(views.mel_db, clip.sr, hop, mel=True, title="m")]
        RESULT = {{"json_bytes": sum(len(f.to_json()) for f in figures), "signal_mb": clip.signal.nbytes / 2**20}}
    """)
    base_peak, base = _peak_rss_mb(code.format(path=str(short)))
    peak, drawn = _peak_rss_mb(code.format(path=str(long)))
    assert drawn["json_bytes"] < 2 * base["json_bytes"] + 1 * MB  # the drawing does not grow with the clip
    assert peak - base_peak < 4 * drawn["signal_mb"] + 50  # the signal and a few transient copies, no more


def test_streamlit_refuses_uploads_over_max_upload_mb_before_holding_them(monkeypatch):
    from streamlit import config

    from dashboard.components.limits import apply_upload_limit

    monkeypatch.setenv("MAX_UPLOAD_MB", "7")
    assert apply_upload_limit() == 7 and config.get_option("server.maxUploadSize") == 7
    monkeypatch.setenv("MAX_UPLOAD_MB", "0.05")
    assert apply_upload_limit() == 1  # Streamlit counts whole MB; core applies the exact 50 kB limit
    monkeypatch.delenv("MAX_UPLOAD_MB")
    assert apply_upload_limit() == 200


def test_an_upload_that_fails_half_way_leaves_no_file(tmp_path):
    code = textwrap.dedent(f"""
        import os, resource, signal
        os.environ["DATA_DIR"] = {str(tmp_path / "data")!r}
        from core.workflows.uploads import store_uploads
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))  # as a disk that fills up after 10 kB
        stored = store_uploads([("big.wav", b"R" * 50_000), ("small.wav", b"R" * 5_000)], "fan/id_00")
        RESULT = {{"paths": stored.paths, "refused": [r["path"] for r in stored.refused]}}
    """)
    _, result = _peak_rss_mb(code)
    assert result["refused"] == ["big.wav"] and len(result["paths"]) == 1
    left = sorted(p.name for p in (tmp_path / "data" / "uploads").rglob("*") if p.is_file())
    assert left == ["small.wav"]  # nothing half-written stays behind
