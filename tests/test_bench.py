"""Smoke runs of the benchmarks on tiny inputs: they must run and print their figures."""

from __future__ import annotations

import importlib.util
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
    out = _run("bench/scoring.py", "--clips", "3")  # --engine ray adds 12 s of Ray starting; tests/workflows test Ray
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
    detectors = {"autoencoder", "mahalanobis", "band_deviation", "frame_knn", "frame_gmm"}  # one machine: no machine_id
    assert {row[4] for row in rows} == detectors, out  # "demo 6 dB machine detector ..."


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
    timings = re.findall(r"^.{50} +[\d.]+ ms(?:  \(over 300 ms\))?$", out, re.MULTILINE)  # a slow host may say "over"
    assert len(timings) == 9 and "Thresholds: labelled set" in out, out


@pytest.mark.slow
def test_quality_benchmark_real_mode_smoke(tmp_path, capsys):
    from core.datasets.demo import write_plant

    write_plant(tmp_path / "real", machines=1, normal=8, abnormal=3, duration_s=2.0, seed=0, n_jobs=1)
    _quality_module().main(["--real", str(tmp_path / "real"), "--train-sizes", "6", "--seeds", "1", "--epochs", "1",
                            "--detectors", "mahalanobis", "frame_knn:top10", "auto", "--faults", "1", "--mean-of",
                            "fan"])  # fmt: skip
    out, err = capsys.readouterr()
    # each machine's means as soon as it is done, before the table
    assert re.search(r"^6dB/fan/id_00 \(6 to train on, 1 split\): mahalanobis \d\.\d\d, frame_knn:top10 \d\.\d\d, "
                     r"auto \d\.\d\d, auto\+faults \d\.\d\d$", err, re.MULTILINE), err  # fmt: skip
    [row] = [line for line in out.splitlines() if line.startswith("6dB/fan/id_00")]
    [mean] = [line for line in out.splitlines() if line.startswith("mean of *fan* (1)")]
    assert len(re.findall(r"\d\.\d{3} ± -", mean)) == 4, out  # one seed: no spread to state
    assert len(re.findall(r"\d\.\d\d \(\d\.\d\d\)", row)) == 4, out  # AUC (pAUC) of the three and auto+faults
    assert "auto: first threshold flags" in out and "auto+faults: first threshold flags" in out and "took" in out, out
    # the flagged test normals as counts with an exact binomial interval, pooled and for the machine, of each auto
    assert len(re.findall(r"\d+/\d+ = \d+% \(95% CI \d+%-\d+%\)", out)) == 4, out


def _quality_module():
    spec = importlib.util.spec_from_file_location("bench_quality", ROOT / "bench" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quality_weight_check_smoke(tmp_path, capsys):
    from core.datasets.demo import write_plant

    write_plant(tmp_path / "real", machines=2, normal=6, abnormal=2, duration_s=1.0, seed=0, n_jobs=1)
    # in this process (no second TensorFlow start-up)
    _quality_module().main(["--real", str(tmp_path / "real"), "--train-sizes", "4", "--seeds", "1", "--weight-check"])
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith(("6dB/fan/", "mean (leave"))]
    assert [row[0] for row in rows] == ["6dB/fan/id_00", "6dB/fan/id_02", "mean"], out
    assert all(0.0 <= float(x) <= 1.0 for row in rows for x in row[-3:]), out  # nested, fixed, own best AUC


def test_weight_check_chooses_each_machines_weight_on_the_other_machines_only():
    """Candidate "a" is chosen with weights up to 0.75 (a tie there: the first), "b" above; machine x does better
    with "a" but the other two together with "b", so x gets "b"; z the reverse."""
    quality = _quality_module()
    by_kind = {"a": {"tone": 0.9, "other_machines": 0.7}, "b": {"tone": 0.6, "other_machines": 0.8}}
    runs = [{"machine": m, "by_kind": by_kind, "test_auc": {"a": a, "b": b}}
            for m, a, b in (("x", 0.9, 0.6), ("y", 0.8, 0.7), ("z", 0.5, 1.0))]  # fmt: skip
    assert [quality.chosen_auc(runs[0], w) for w in (0.7, 0.75, 0.8)] == [0.9, 0.9, 0.6]
    rows = {r["machine"]: r for r in quality.weight_check(runs, quality.WEIGHTS)}
    assert rows["x"]["weights"] == [w for w in quality.WEIGHTS if w > 0.75]
    assert (rows["x"]["nested"], rows["x"]["fixed"], rows["x"]["best"]) == (0.6, 0.9, 0.9)
    assert rows["z"]["weights"] == [w for w in quality.WEIGHTS if w <= 0.75]
    assert (rows["z"]["nested"], rows["z"]["best"]) == (0.5, 1.0)  # its own best weight is not what it gets


def test_mean_of_averages_the_matching_machines_per_seed_with_the_standard_error_over_seeds(capsys):
    """Seed 0: mean of x and y = 0.7, seed 1: 0.9 (z does not match); s.e. = std(0.7, 0.9) / sqrt(2) = 0.1."""
    quality = _quality_module()
    rows = [{"machine": m, "n_train": 6, "seed": seed, "detector": "auto", "auc": auc}
            for m, seed, auc in (("a/neg/x", 0, 0.6), ("a/neg/y", 0, 0.8), ("a/neg/x", 1, 1.0), ("a/neg/y", 1, 0.8),
                                 ("b/clean/z", 0, 0.1), ("b/clean/z", 1, 0.1))]  # fmt: skip
    assert quality.seed_means(rows, "auto", 6, {"a/neg/x", "a/neg/y"}) == pytest.approx([0.7, 0.9])
    quality.print_mean_of(rows, "neg")
    assert capsys.readouterr().out.split()[-5:] == ["(2)", "6", "0.800", "±", "0.100"]


def test_other_machines_are_other_ids_of_the_type_in_any_folder_not_the_same_id_elsewhere():
    """The product keys machines by type and ID: DCASE 2020's fan id_06 is MIMII's fan id_06, not a sibling."""
    machines = {"mimii/fan/id_06": (["m6"], []), "dcase/fan/id_06": (["d6"], []), "dcase/fan/id_00": (["d0"], []),
                "mimii/fan/id_02": ([], ["a"]), "dcase/pump/id_00": (["p0"], [])}  # fmt: skip
    assert _quality_module()._siblings(machines, "mimii/fan/id_06") == [["d0"]]  # no normal clips: not a sibling


@pytest.mark.slow
def test_triage_benchmark_smoke():
    out = _run("bench/triage.py", "--clips", "30", "--verdicts", "2", "--files", "2")
    assert "30 flagged clips" in out and out.count("verdict -> next clip") == 2, out
    medians = [float(x) for x in re.findall(r"median of 2\s*:\s*([\d.]+) ms", out)]
    assert len(medians) == 2 and all(m > 0 for m in medians), out


def test_absolute_level_features_are_the_clip_level_added_back(tmp_path):
    """``--absolute-levels``: each clip's features on one scale for every clip, as ``librosa.power_to_db(ref=1.0)``."""
    import librosa
    import numpy as np

    from core.datasets.demo import write_plant
    from core.signal.audio import load_clip

    write_plant(tmp_path / "real", machines=1, normal=2, abnormal=1, duration_s=2.0, seed=0, n_jobs=1)
    quality = _quality_module()
    relative = quality.real_machines(tmp_path / "real")["6dB/fan/id_00"]
    absolute = quality.real_machines(tmp_path / "real", absolute_levels=True)["6dB/fan/id_00"]
    path = sorted((tmp_path / "real").rglob("normal/*.wav"))[0]
    clip = load_clip(str(path), 0)
    power = librosa.feature.melspectrogram(y=clip.signal, sr=clip.sr, n_fft=1024, hop_length=512, n_mels=64)
    expected = librosa.power_to_db(power, ref=1.0).T  # (n_columns, n_mels), dB on one scale for every clip
    np.testing.assert_allclose(absolute[0][0][:, :64], expected[: len(absolute[0][0])], atol=1e-2)
    shifts = [ab - rel for rel, ab in zip(relative[0] + relative[1], absolute[0] + absolute[1], strict=True)]
    assert all(np.ptp(shift) < 1e-3 for shift in shifts)  # one constant per clip: its level
    assert shifts[0].mean() == pytest.approx(quality.clip_level_db(str(path)), abs=1e-3)
    assert np.ptp([shift.mean() for shift in shifts]) > 0.5  # the demo's recordings differ in gain: levels differ
