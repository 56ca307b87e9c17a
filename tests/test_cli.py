"""``python -m core`` as a user runs it: real subprocesses, a private DATA_DIR."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from core.cli import build_parser
from core.detectors import detector_names

REPO = Path(__file__).resolve().parents[1]


def _subcommands() -> list[str]:
    (action,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(action.choices)


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m core ARGS`` with the test's DATA_DIR (set by the autouse fixture)."""
    env = os.environ | {"PYTHONPATH": str(REPO)}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "core", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_there_are_subcommands():
    assert {"demo", "ingest", "info"} <= set(_subcommands())


@pytest.mark.parametrize("command", [None, *_subcommands()])
def test_help(command):
    result = run_cli(*([command] if command else []), "--help")
    assert result.stdout.startswith("usage: python -m core")
    for name in [command] if command else _subcommands():
        assert name in result.stdout


def test_bad_demo_arguments_exit_2(tmp_path):
    result = run_cli("demo", str(tmp_path / "out"), "--machines", "0", check=False)
    assert result.returncode == 2
    assert "error:" in result.stderr and "invalid_parameter" in result.stderr
    assert result.stdout == ""


@pytest.mark.slow
def test_demo_ingest_info_workflow(tmp_path, data_dir):
    out = tmp_path / "plant"
    result = run_cli(
        "demo", str(out), "--seed", "1", "--machines", "2", "--normal", "3", "--abnormal", "1", "--duration", "1"
    )
    wavs = sorted(out.rglob("*.wav"))
    assert len(wavs) == 8
    assert "8 clips" in result.stdout and "fan/id_00" in result.stdout

    bad = tmp_path / "bad.wav"
    bad.write_text("not audio at all\n" * 10)
    report = json.loads(run_cli("ingest", str(out), str(bad), "--json").stdout)
    assert report.keys() == {"ingested", "already_known", "rejected"}
    assert (report["ingested"], report["already_known"]) == (8, 0)
    (rejected,) = report["rejected"]
    assert {"path", "reason"} <= rejected.keys()
    assert (Path(rejected["path"]).name, rejected["reason"]) == ("bad.wav", "not_audio")

    again = json.loads(run_cli("ingest", str(out), "--json").stdout)
    assert again == {"ingested": 0, "already_known": 8, "rejected": []}

    info = json.loads(run_cli("info", "--json").stdout)
    assert str(data_dir) in info["database"]
    assert info["total"] == sum(c["n_clips"] for c in info["counts"]) == 8
    per = Counter()
    for c in info["counts"]:
        assert c["split"] == "test" if c["label"] == "abnormal" else c["split"] in ("train", "test")
        per[(c["machine_type"], c["machine_id"], c["label"])] += c["n_clips"]
    assert per == {
        ("fan", "id_00", "normal"): 3,
        ("fan", "id_00", "abnormal"): 1,
        ("fan", "id_02", "normal"): 3,
        ("fan", "id_02", "abnormal"): 1,
    }

    text = run_cli("info").stdout
    lines = [line.split() for line in text.splitlines()]
    assert ["fan", "id_02", "abnormal", "test", "1"] in lines
    assert sum(int(row[-1]) for row in lines if row[:3] == ["fan", "id_00", "normal"]) == 3
    assert ["total", "8"] in lines


def test_info_on_an_empty_database():
    assert "no clips yet" in run_cli("info").stdout
    assert json.loads(run_cli("info", "--json").stdout)["total"] == 0


CONTRACT = {
    "model_id", "detector", "machine", "n_train", "n_test", "auc", "pauc", "threshold",
    "precision", "recall", "f1", "accuracy", "confusion",
}  # fmt: skip


def test_detectors_lists_one_name_per_line():
    names = run_cli("detectors").stdout.splitlines()
    assert names == detector_names()
    assert names[0] == "autoencoder" and "mahalanobis" in names
    assert len(names) == len(set(names))


def test_train_with_an_unknown_detector_exits_2():
    result = run_cli("train", "--detector", "nope", check=False)
    assert result.returncode == 2
    assert "unknown detector 'nope'" in result.stderr and "invalid_parameter" in result.stderr
    assert result.stdout == ""


def test_activate_an_unknown_machine_exits_2():
    result = run_cli("activate", "--machine", "fan/id_00", "--detector", "mahalanobis", check=False)
    assert result.returncode == 2
    assert "no machine 'fan/id_00'" in result.stderr


@pytest.mark.slow
def test_demo_train_score_evaluate_threshold_activate_workflow(tmp_path):
    out = tmp_path / "plant"
    run_cli("demo", str(out), "--machines", "2", "--normal", "8", "--abnormal", "3", "--duration", "2")
    assert json.loads(run_cli("ingest", str(out), "--json").stdout)["ingested"] == 22

    trained = json.loads(run_cli("train", "--detector", "mahalanobis", "--json").stdout)
    assert trained["skipped"] == []
    models = {t["scope"]: t for t in trained["trained"]}
    assert sorted(models) == ["fan/id_00", "fan/id_02"]
    assert {(t["detector"], t["version"]) for t in models.values()} == {("mahalanobis", 1)}

    scored = run_cli("score")
    assert "scored 22 clips with 2 model(s)" in scored.stdout
    assert "scored 0 clips" in run_cli("score").stdout

    records = json.loads(run_cli("evaluate", "--json").stdout)
    assert records.keys() == {"models"}
    assert [r["machine"] for r in records["models"]] == ["fan/id_00", "fan/id_02"]
    for r in records["models"]:
        assert r.keys() >= CONTRACT
        assert r["model_id"] == models[r["machine"]]["model_id"]
        assert r["detector"] == "mahalanobis"
        assert r["threshold"] == pytest.approx(models[r["machine"]]["threshold"], abs=1e-6)
        assert sum(r["confusion"].values()) == r["n_test"] > 0

    suggestion = json.loads(run_cli("threshold", "suggest", "--machine", "fan/id_00", "--json").stdout)
    assert {"machine": "fan/id_00", "model_id": models["fan/id_00"]["model_id"], "method": "gamma"}.items() <= (
        suggestion.items()
    )
    assert suggestion["value"] == pytest.approx(models["fan/id_00"]["threshold"], rel=1e-9)

    refused = run_cli("threshold", "suggest", "--machine", "fan/id_00", "--method", "max_f1", check=False)
    assert refused.returncode == 2 and "no labelled abnormal clip" in refused.stderr

    set_out = run_cli("threshold", "set", "1.5", "--machine", "fan/id_00", "--by", "ana", "--reason", "r").stdout
    assert "fan/id_00: threshold 1.5 set by ana (r)" in set_out
    after = {r["machine"]: r for r in json.loads(run_cli("evaluate", "--json").stdout)["models"]}
    assert after["fan/id_00"]["threshold"] == 1.5
    assert after["fan/id_02"]["threshold"] == pytest.approx(models["fan/id_02"]["threshold"], abs=1e-6)

    activated = run_cli("activate", "--machine", "fan/id_00", "--detector", "mahalanobis")
    assert activated.stdout.strip() == f"fan/id_00: model {models['fan/id_00']['model_id']} is now active"
    missing = run_cli("activate", "--machine", "fan/id_00", "--detector", "autoencoder", check=False)
    assert missing.returncode == 2 and "train it first" in missing.stderr

    compared = run_cli("evaluate", "--compare", "--machine", "fan/id_00").stdout
    assert "suggested default for fan/id_00: mahalanobis" in compared
    best = run_cli("activate", "--machine", "fan/id_00", "--best", check=False)  # this tiny test split: one label
    assert best.returncode == 2 and "the test split needs both labels" in best.stderr


@pytest.mark.slow
def test_export_then_train_supervised_workflow(tmp_path, monkeypatch):
    monkeypatch.delenv("REKOGNITION_BUCKET", raising=False)
    plant, out = tmp_path / "plant", tmp_path / "export"
    run_cli("demo", str(plant), "--machines", "2", "--normal", "8", "--abnormal", "4", "--duration", "2")
    run_cli("ingest", str(plant))

    summary = json.loads(run_cli("export", str(out), "--json", "--jobs", "1").stdout)
    assert summary["counts"] == {s: {"normal": n, "abnormal": n} for s, n in (("train", 6), ("test", 2))}
    assert summary["problems"] == [] and summary["unreadable"] == []
    assert (out / "train.manifest").is_file() and (out / "test.manifest").is_file()
    assert json.loads((out / "summary.json").read_text())["export_id"] == summary["export_id"]
    again = run_cli("export", str(out), check=False)
    assert again.returncode == 2 and "not empty" in again.stderr

    job = json.loads(run_cli("train-supervised", "--epochs", "2", "--json").stdout)
    assert (job["backend"], job["status"], job["export_id"]) == ("local", "completed", summary["export_id"])
    assert sum(job["external"]["evaluation"]["confusion"].values()) == 4
    assert str(out) in job["external"]["export_dir"]

    no_bucket = run_cli("rekognition", "train", check=False)
    assert no_bucket.returncode == 2 and "REKOGNITION_BUCKET" in no_bucket.stderr
    unconfirmed = run_cli("rekognition", "evaluate", str(job["job_id"]), check=False)
    assert unconfirmed.returncode == 1 and "per inference-unit hour" in unconfirmed.stderr
    not_cloud = run_cli("rekognition", "evaluate", str(job["job_id"]), "--yes", check=False)
    assert not_cloud.returncode == 2 and "is a local job, not a Rekognition one" in not_cloud.stderr
    assert "no Rekognition jobs yet" in run_cli("rekognition", "status").stdout


def test_export_with_nothing_curated_exits_2(tmp_path):
    result = run_cli("export", str(tmp_path / "out"), check=False)
    assert result.returncode == 2 and "nothing to export" in result.stderr
