"""``python -m core`` as a user runs it: its ``main`` in this process (real subprocesses where the process
matters: the entry point, the help of each command, exit codes), a private DATA_DIR."""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import struct
import subprocess
import sys
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from core.cli import build_parser, main
from core.detection.registry import detector_names
from db.models import Clip
from db.session import session_scope
from tests.conftest import tone, write_wav

REPO = Path(__file__).resolve().parents[2]


def _subcommands() -> list[str]:
    (action,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(action.choices)


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m core ARGS`` in this process (``core.cli.main``, what ``python -m core`` calls), with the
    test's DATA_DIR (set by the autouse fixture): a new interpreter per command cost 2-4 s of imports, 150 s
    over this file.  :func:`run_cli_process` runs the real ``python -m core`` where the process itself matters."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: --help, a usage error
            code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    result = subprocess.CompletedProcess(["python", "-m", "core", *args], code, out.getvalue(), err.getvalue())
    if check:
        assert result.returncode == 0, result.stderr
    return result


def run_cli_process(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m core ARGS`` as a user does: a new process, the test's DATA_DIR."""
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
    result = (run_cli(command, "--help") if command else run_cli_process("--help"))  # the entry point, once
    assert result.stdout.startswith("usage: python -m core")
    for name in [command] if command else _subcommands():
        assert name in result.stdout


def test_bad_demo_arguments_exit_2(tmp_path):
    result = run_cli_process("demo", str(tmp_path / "out"), "--machines", "0", check=False)  # the process's code
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


def test_train_settings_are_checked_before_any_data_is_read():
    """``--pooling``/``--front-end`` are refused with auto (and by a detector without them) even on an empty
    database: the refusal says what is wrong, not that there are no machines."""
    from core.detection.base import FrontEnd

    result = run_cli("train", "--front-end", "pcen", check=False)
    assert result.returncode == 2 and "front_end: the automatic choice trains each candidate" in result.stderr
    result = run_cli("train", "--detector", "autoencoder", "--front-end", "pcen", check=False)
    assert result.returncode == 2 and "front_end: autoencoder takes none; mahalanobis," in result.stderr
    refused = "from core.workflows.training import _params\ntry:\n    _params('mahalanobis', None, 'top10')\n" \
              "except Exception:\n    import sys\n    print('tensorflow' in sys.modules)"  # fmt: skip
    assert subprocess.run([sys.executable, "-c", refused], cwd=REPO, capture_output=True, text=True, timeout=300,
                          check=True).stdout.strip() == "False"  # a refusal does not load TensorFlow
    help_text = run_cli("train", "--help").stdout
    assert f"--front-end {{{','.join(FrontEnd)}}}" in help_text  # the CLI's choices are the front ends


def test_activate_an_unknown_machine_exits_2():
    result = run_cli("activate", "--machine", "fan/id_00", "--detector", "mahalanobis", check=False)
    assert result.returncode == 2
    assert "no such machine 'fan/id_00' (no machines yet: ingest clips first)" in result.stderr


@pytest.fixture
def two_machines(tmp_path) -> None:
    """fan/id_00 and pump/id_01, one clip each, in this test's database (what the CLI opens)."""
    from core.workflows.ingest import ingest

    for k, key in enumerate(("fan/id_00", "pump/id_01")):
        write_wav(tmp_path / "in" / key / "a.wav", tone(0.5, freq=300 + 100 * k))
    assert ingest([str(tmp_path / "in")], n_jobs=1).ingested == 2


@pytest.mark.parametrize(
    ("spec", "command"),
    [("NONSENSE", ["score"]), ("%", ["evaluate"]), ("fan/id_0_", ["train", "--detector", "mahalanobis"]),
     ("_", ["drift"]), ("fan/%", ["export", "{tmp}/out"]), ("NONSENSE", ["threshold", "suggest"]),
     ("%/%", ["threshold", "set", "1.0", "--by", "ana"]), ("pump/id_0%", ["activate", "--detector", "mahalanobis"]),
     ("fan/nope", ["evaluate", "--compare"])],
)  # fmt: skip
def test_every_machine_option_refuses_a_machine_that_does_not_exist(two_machines, tmp_path, spec, command):
    """Whatever the command, one line naming the machine and the known ones, exit 2; ``%`` and ``_`` are plain
    characters (never SQL LIKE wildcards)."""
    args = [arg.format(tmp=tmp_path) for arg in command]
    result = run_cli(*args, "--machine", spec, check=False)
    assert result.returncode == 2, result.stdout
    assert result.stderr.splitlines()[-1] == (
        f"error: no such machine '{spec}' (known: fan/id_00, pump/id_01) [invalid_parameter]"
    )
    assert result.stdout == ""
    assert not (tmp_path / "out").exists()


def test_a_command_for_one_machine_says_a_type_is_not_one(two_machines):
    result = run_cli("threshold", "suggest", "--machine", "fan", check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == ("error: 'fan' is a machine type; give one machine as TYPE/ID "
                                              "(known: fan/id_00, pump/id_01) [invalid_parameter]")  # fmt: skip


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
    assert "judge flagged clips on the Triage page" in refused.stderr  # the page's words, the same message
    assert "--use-test on the command line" in refused.stderr

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
    assert "no automatic choice for fan/id_00 yet" in compared  # the test split grades; it never chooses
    refused = run_cli("activate", "--machine", "fan/id_00", "--best", check=False)
    assert refused.returncode == 2 and "train with --detector auto" in refused.stderr

    auto = json.loads(run_cli("train", "--machine", "fan/id_00", "--detector", "auto", "--json").stdout)["trained"][0]
    assert auto["choice"] and auto["detector"] != "auto"
    compared = json.loads(run_cli("evaluate", "--compare", "--machine", "fan/id_00", "--json").stdout)
    choice = compared["choice"]
    assert choice["model_id"] == auto["model_id"] and choice["detector"] == auto["detector"]
    assert {"mahalanobis", "frame_knn_top10", "machine_id"} <= choice["evidence"].keys()  # fan/id_02 is a sibling
    assert all(0.0 <= e["auc"] <= 1.0 for e in choice["evidence"].values())
    assert "other_machines" in choice["evidence"]["mahalanobis"]["by_kind"]
    assert choice["note"] in run_cli("evaluate", "--compare", "--machine", "fan/id_00").stdout
    assert [r for r in compared["detectors"] if r["auto_chosen"]][0]["model_id"] == auto["model_id"]
    best = run_cli("activate", "--machine", "fan/id_00", "--best")
    assert best.stdout.strip() == f"fan/id_00: model {auto['model_id']} is now active"


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


def _sparse_wav(path: Path, *, seconds: float, sr: int = 16_000, channels: int = 1) -> Path:
    """A valid 16-bit PCM WAV header, then a hole the file system fills with zeros: a long, big file
    that costs neither disk space nor time to write."""
    n = int(seconds * sr) * 2 * channels
    fmt = struct.pack("<IHHIIHH", 16, 1, channels, sr, sr * 2 * channels, 2 * channels, 16)
    header = b"RIFF" + struct.pack("<I", 36 + n) + b"WAVE" + b"fmt " + fmt + b"data" + struct.pack("<I", n)
    with path.open("wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + n)
    return path


def test_ingest_a_batch_of_hostile_files(tmp_path):
    """Good clips among every kind of bad file: the good ones are ingested, each bad one is listed with its path
    and reason, the exit code is 0."""
    batch = tmp_path / "batch" / "pump"
    good = [write_wav(batch / f"good{k}.wav", tone(1.0, seed=k)) for k in range(3)]
    write_wav(batch / "bø ñ 音.wav", tone(1.0, seed=10))
    write_wav(batch / "rate_8k.wav", tone(1.0, sr=8000, seed=11), sr=8000)
    write_wav(batch / "rate_44k.flac", tone(1.0, sr=44_100, seed=12), sr=44_100)
    shutil.copy(good[0], batch / "good0_copy.wav")
    (batch / "program.wav").write_bytes(b"MZ\x90\x00" + bytes(range(256)) * 8)
    (batch / "zero.wav").write_bytes(b"")
    raw = good[1].read_bytes()
    (batch / "header_cut.wav").write_bytes(raw[:30])
    (batch / "data_cut.wav").write_bytes(raw[: len(raw) // 2])
    nan = tone(1.0, seed=13)
    nan[500] = np.nan
    write_wav(batch / "nan.wav", nan, subtype="FLOAT")
    _sparse_wav(batch / "hour.wav", seconds=3600)  # 115 MB
    _sparse_wav(batch / "300MB.wav", seconds=300e6 / 2 / 16_000)  # 2.6 h
    latin1 = os.fsdecode(os.fsencode(batch) + b"/caf\xe9.wav")  # a name that is not UTF-8
    Path(latin1).write_bytes(raw[:-2] + b"\x07\x00")

    result = run_cli("ingest", str(batch / ".." / "pump"), "--json")

    report = json.loads(result.stdout)
    assert (report["ingested"], report["already_known"]) == (6, 1)  # the copy is the same clip
    reasons = {Path(r["path"]).name: r["reason"] for r in report["rejected"]}
    assert reasons == {
        "300MB.wav": "too_long",
        "caf\\xe9.wav": "invalid_parameter",
        "data_cut.wav": "corrupt",
        "header_cut.wav": "corrupt",
        "hour.wav": "too_long",
        "nan.wav": "non_finite",
        "program.wav": "not_audio",
        "zero.wav": "empty",
    }
    assert {str(Path(r["path"]).parent) for r in report["rejected"]} == {str(batch)}  # each names its file
    details = {Path(r["path"]).name: r["detail"] for r in report["rejected"]}
    assert details["hour.wav"] == "3600.0 s long; the limit is 600 s"
    assert details["caf\\xe9.wav"] == "the file name is not valid UTF-8; rename the file"
    assert details["data_cut.wav"].startswith("truncated: header declares 32000 data bytes")
    assert all(details.values())

    with session_scope() as session:
        clips = {Path(c.path).name: c.sample_rate for c in session.scalars(select(Clip))}
    assert clips == {  # other sample rates are ingested; one rate per model (tests/workflows/test_training.py)
        "good0.wav": 16_000, "good1.wav": 16_000, "good2.wav": 16_000, "bø ñ 音.wav": 16_000,
        "rate_8k.wav": 8_000, "rate_44k.flac": 44_100,
    }  # fmt: skip


@pytest.mark.slow
def test_drift_table_json_and_retrain_suggestion(tmp_path):
    from core.datasets.demo import write_plant
    from core.workflows.ingest import ingest
    from core.workflows.training import train

    write_plant(tmp_path / "plant", machines=1, normal=60, abnormal=0, duration_s=2.0, n_jobs=1)
    ingest([str(tmp_path / "plant")])
    train("fan/id_00", "mahalanobis")
    write_plant(tmp_path / "loud", machines=1, normal=20, abnormal=0, duration_s=2.0, snr_db=-6.0, n_jobs=1)
    ingest([str(tmp_path / "loud")])  # newer clips of the same fan in a louder factory
    table = run_cli("drift", "--machine", "fan", "--recent", "20").stdout
    assert "retrain suggested" in table and "scores of recent clips shifted" in table
    assert "python -m core train --machine fan/id_00 --detector mahalanobis" in table
    [report] = json.loads(run_cli("drift", "--recent", "20", "--json").stdout)["machines"]
    assert (report["machine"], report["state"], report["n_recent"]) == ("fan/id_00", "retrain suggested", 20)
    assert run_cli("drift", "--machine", "pump", check=False).returncode == 2


def test_annotate_by_id_and_by_path_then_refuses_unknown_clips(tmp_path):
    from core.workflows.ingest import ingest
    from tests.conftest import tone, write_wav

    clip = write_wav(tmp_path / "line" / "fan" / "id_00" / "snippet.wav", tone(1.0))
    ingest([str(tmp_path / "line")])
    by_path = json.loads(run_cli("annotate", str(clip), "--verdict", "abnormal", "--annotator", "ana",
                                 "--type", "bearing", "--note", "rattle", "--json").stdout)  # fmt: skip
    assert by_path == {"annotation_id": 1, "clip_id": 1, "verdict": "abnormal", "annotator": "ana",
                       "type": "bearing", "note": "rattle", "other_verdicts": {}}  # fmt: skip
    by_id = run_cli("annotate", "1", "--verdict", "normal", "--annotator", "bob")
    assert by_id.stdout.strip() == "clip 1: normal by bob [annotation 2]"
    assert "others judged it too (ana: abnormal); every verdict is kept" in by_id.stderr
    typed = run_cli("annotate", "1", "--verdict", "normal", "--annotator", "bob", "--type", "bearing", check=False)
    assert typed.returncode == 2 and "use it with --verdict abnormal" in typed.stderr
    copy = write_wav(tmp_path / "elsewhere.wav", tone(1.0))  # same content, another name: the same clip
    assert json.loads(run_cli("annotate", str(copy), "--verdict", "unsure", "--annotator", "eve",
                              "--json").stdout)["clip_id"] == 1  # fmt: skip
    for spec in ("99", str(tmp_path / "missing.wav")):
        refused = run_cli("annotate", spec, "--verdict", "normal", "--annotator", "bob", check=False)
        assert refused.returncode == 2 and "not_found" in refused.stderr
    bad = run_cli("annotate", "1", "--verdict", "maybe", "--annotator", "bob", check=False)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
