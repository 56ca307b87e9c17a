"""core.datasets.demo: a deterministic synthetic plant, in the MIMII layout, with realistic but detectable faults."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.datasets.demo import ANOMALIES, MACHINE_CATALOGUE, MANIFEST_NAME, plan_plant, write_plant
from core.datasets.layouts import discover
from core.errors import BadInputError, Reason
from core.signal.features import log_mel

SMALL = dict(normal=4, abnormal=3, duration_s=1.0)


@pytest.fixture(scope="module")
def plant(tmp_path_factory) -> tuple[Path, list]:
    out = tmp_path_factory.mktemp("plant")
    return out, write_plant(out, seed=0, machines=5, n_jobs=1, **SMALL)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_different_seed_different(tmp_path):
    write_plant(tmp_path / "a", seed=3, machines=3, n_jobs=1, **SMALL)
    write_plant(tmp_path / "b", seed=3, machines=3, n_jobs=2, **SMALL)  # a process pool: same bytes
    write_plant(tmp_path / "c", seed=4, machines=3, n_jobs=1, **SMALL)
    serial = _files(tmp_path / "a")
    assert len(serial) == 3 * 7 + 1
    assert _files(tmp_path / "b") == serial
    other = _files(tmp_path / "c")
    assert other.keys() == serial.keys()
    assert all(other[name] != serial[name] for name in serial if name.endswith(".wav"))


def test_layout_is_discovered_as_mimii(plant):
    out, plan = plant
    found = {c.path: c for c in discover(out)}
    assert len(found) == len(plan) == 5 * 7
    for clip in plan:
        seen = found[clip.path]
        label = "normal" if clip.anomaly is None else "abnormal"
        assert (seen.layout, seen.machine_type, seen.machine_id, seen.label) == (
            "mimii",
            clip.machine_type,
            clip.machine_id,
            label,
        )
        assert (seen.split, seen.snr_db) == ("none", 6.0)
    per_machine = Counter((c.machine, c.label) for c in found.values())
    assert {m for m, _ in per_machine} == {f"{t}/{i}" for t, i, _ in MACHINE_CATALOGUE[:5]}
    assert set(per_machine.values()) == {4, 3} and len(per_machine) == 10


@pytest.mark.parametrize("machines", range(3, len(MACHINE_CATALOGUE) + 1))
def test_a_plant_of_three_or_more_is_not_only_fans(tmp_path, machines):
    plan = plan_plant(tmp_path, machines=machines, normal=1, abnormal=1)
    assert len({(c.machine_type, c.machine_id) for c in plan}) == machines
    assert {c.machine_type for c in plan} - {"fan"}


def test_manifest_lists_every_clip_with_its_fault(plant):
    out, plan = plant
    rows = list(csv.DictReader((out / MANIFEST_NAME).open()))
    assert [out / r["path"] for r in rows] == [Path(c.path) for c in plan]
    for row in rows:
        assert (out / row["path"]).is_file()
        if row["label"] == "abnormal":
            assert row["anomaly_type"] in ANOMALIES[row["machine_type"]]
            assert 0.0 <= float(row["severity"]) <= 1.0
        else:
            assert row["label"] == "normal" and row["anomaly_type"] == ""
    kinds = {r["anomaly_type"] for r in rows if r["anomaly_type"]}
    assert len(kinds) >= 4
    assert len({float(r["severity"]) for r in rows if r["label"] == "abnormal"}) > 5  # severities vary


def test_files_are_16_bit_16_khz_mono(plant):
    for clip in plant[1]:
        info = sf.info(clip.path)
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (16_000, 1, "PCM_16", 16_000)


def test_multichannel_clips(tmp_path):
    plan = write_plant(tmp_path, machines=1, normal=1, abnormal=1, duration_s=0.5, channels=8, n_jobs=1)
    for clip in plan:
        data, sr = sf.read(clip.path)
        assert (sr, data.shape, sf.info(clip.path).subtype) == (16_000, (8_000, 8), "PCM_16")
        assert not np.allclose(data[:, 0], data[:, 1])  # distinct microphones, not copies
        assert np.abs(data).max() > 0.01


def test_abnormal_clips_differ_but_are_not_trivially_separable(plant):
    """Mean log-mel spectrum per clip; distance to the mean of the machine's normal clips."""
    spectra = defaultdict(lambda: {"normal": [], "abnormal": []})
    for clip in plant[1]:
        signal, sr = sf.read(clip.path, dtype="float32")
        label = "normal" if clip.anomaly is None else "abnormal"
        spectra[(clip.machine_type, clip.machine_id)][label].append(log_mel(signal, sr).mean(axis=1))
    normal_d, abnormal_d, overlapping = [], [], 0
    for groups in spectra.values():
        normals, abnormals = np.array(groups["normal"]), np.array(groups["abnormal"])
        centre = normals.mean(axis=0)
        dn = np.linalg.norm(normals - centre, axis=1)
        da = np.linalg.norm(abnormals - centre, axis=1)
        normal_d.extend(dn)
        abnormal_d.extend(da)
        overlapping += int((da < dn.max()).sum())
    assert np.mean(abnormal_d) > 1.2 * np.mean(normal_d)  # faults are audible on average...
    assert overlapping >= 1  # ...but some are subtle enough to sit among the normal clips


@pytest.mark.parametrize("bad", [
    dict(machines=0), dict(machines=len(MACHINE_CATALOGUE) + 1), dict(normal=0, abnormal=0),
    dict(normal=-1), dict(channels=0), dict(duration_s=0.0),
])  # fmt: skip
def test_invalid_parameters(tmp_path, bad):
    args = dict(machines=1, normal=1, abnormal=1, duration_s=0.2, n_jobs=1) | bad
    with pytest.raises(BadInputError) as info:
        write_plant(tmp_path / "out", **args)
    assert info.value.reason is Reason.INVALID_PARAMETER
    assert not (tmp_path / "out").exists()


def test_fractional_snr_folder_is_read_back(tmp_path):
    write_plant(tmp_path, snr_db=2.5, machines=1, normal=1, abnormal=0, duration_s=0.2, n_jobs=1)
    assert [c.snr_db for c in discover(tmp_path)] == [2.5]


def test_negative_seed_is_its_own_plant(tmp_path):
    a = write_plant(tmp_path / "a", seed=1, machines=1, normal=1, abnormal=0, duration_s=0.2, n_jobs=1)
    b = write_plant(tmp_path / "b", seed=-1, machines=1, normal=1, abnormal=0, duration_s=0.2, n_jobs=1)
    assert Path(a[0].path).read_bytes() != Path(b[0].path).read_bytes()


@pytest.mark.slow
def test_demo_difficulty_is_calibrated_for_the_seeds_autoencoder(tmp_path, monkeypatch):
    """At 6 dB the seed's recipe lands at 0.75-0.97 AUC per machine; at -6 dB every machine is harder."""
    from core.workflows.evaluation import evaluate
    from core.workflows.ingest import ingest
    from core.workflows.training import train
    from db.session import dispose_engines

    aucs = {}
    for snr in (6.0, -6.0):
        monkeypatch.setenv("DATA_DIR", str(tmp_path / f"data_{snr:g}"))
        dispose_engines()
        write_plant(tmp_path / f"plant_{snr:g}", machines=2, snr_db=snr)  # the first two machines, full size
        ingest([str(tmp_path / f"plant_{snr:g}")])
        train(detector="autoencoder")
        aucs[snr] = {record["machine"]: record["auc"] for record in evaluate()}
    assert set(aucs[6.0]) == {"fan/id_00", "fan/id_02"}
    for machine, auc in aucs[6.0].items():
        assert 0.75 <= auc <= 0.97, (machine, aucs)
        assert aucs[-6.0][machine] < auc, (machine, aucs)
