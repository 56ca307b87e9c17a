"""Smoke runs of the benchmarks on tiny inputs: they must run and print their figures."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_features_benchmark_smoke():
    out = subprocess.run(
        [sys.executable, "bench/features.py", "--clips", "4", "--repeats", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    rates = [float(x) for x in re.findall(r"([\d.]+) clips/s", out)]
    assert len(rates) == 3 and all(rate > 0 for rate in rates), out
    assert out.count(" x") >= 2


def _run(*args: str) -> str:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          check=True).stdout  # fmt: skip


@pytest.mark.slow
def test_scoring_benchmark_smoke():
    out = _run("bench/scoring.py", "--clips", "3")
    assert "end-to-end scoring of 3" in out and out.count("clips/s") == 2, out


@pytest.mark.slow
def test_training_benchmark_smoke():
    out = _run("bench/training.py", "--clips", "4", "--epochs", "2")
    assert "2 epochs" in out and "vectors/s" in out, out


@pytest.mark.slow
def test_quality_benchmark_smoke():
    out = _run("bench/quality.py", "--machines", "1", "--normal", "8", "--abnormal", "3", "--duration", "2",
               "--epochs", "1", "--snr", "6", "--no-real")  # fmt: skip
    rows = [line.split() for line in out.splitlines() if line.startswith("demo")]
    assert {row[4] for row in rows} == {"autoencoder", "mahalanobis"}, out  # "demo 6 dB machine detector ..."


@pytest.mark.slow
def test_dashboard_benchmark_smoke():
    out = _run("bench/dashboard.py", "--clips", "200", "--moves", "2")
    assert "200 scored clips" in out and "slider move" in out, out


@pytest.mark.slow
def test_watch_benchmark_smoke():
    out = _run("bench/watch.py", "--clips", "4", "--duration", "1", "--batch", "2", "--detector", "mahalanobis")
    assert "watcher ingest+score of 4" in out and out.count("clips/s") == 2 and "watcher / batch" in out, out


@pytest.mark.slow
def test_verdicts_benchmark_smoke():
    out = _run("bench/verdicts.py", "--verdicts", "5", "--writers", "2")
    assert "SQLite" in out and "all 15 stored once" in out, out
    assert ("PostgreSQL" in out and "skipped" not in out) == bool(os.environ.get("TEST_POSTGRES_URL")), out


def test_db_scale_benchmark_smoke():
    out = _run("bench/db_scale.py", "--clips", "2000", "--machines", "2", "--repeats", "1")
    assert "seeded 2000 scored clips" in out and "bytes per clip" in out, out
    assert len(re.findall(r"[\d.]+ ms", out)) == 9 and "Thresholds: labelled set" in out, out
