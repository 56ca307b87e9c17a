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
