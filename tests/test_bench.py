"""Smoke runs of the benchmarks on tiny inputs: they must run and print their figures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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
