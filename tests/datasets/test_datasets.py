"""core.datasets.layouts: what a clip's location says about it, for every layout, on real files."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from core.datasets.layouts import describe, discover
from tests.conftest import tone, write_wav

CLIP = tone(0.1)

# relative path -> (layout, machine_type, machine_id, label, split, snr_db, domain)
CASES = {
    "fan/id_00/normal/00000000.wav": ("mimii", "fan", "id_00", "normal", "none", None, None),
    "6_dB_fan/fan/id_02/abnormal/x.wav": ("mimii", "fan", "id_02", "abnormal", "none", 6.0, None),
    "-6dB/pump/id_04/normal/x.wav": ("mimii", "pump", "id_04", "normal", "none", -6.0, None),
    "datasets/mimii/0_dB_valve/valve/id_06/abnormal/y.wav": ("mimii", "valve", "id_06", "abnormal", "none", 0.0,
                                                             None),
    "pump/train/normal_id_04_00000001.wav": ("dcase2020", "pump", "id_04", "normal", "train", None, None),
    "pump/test/anomaly_id_04_00000001.wav": ("dcase2020", "pump", "id_04", "abnormal", "test", None, None),
    "valve/test/section_02_target_test_anomaly_0001_pat_03.wav":
        ("dcase2021", "valve", "section_02", "abnormal", "test", None, "target"),
    "valve/train/section_00_source_train_normal_0001_pat_01.wav":
        ("dcase2021", "valve", "section_00", "normal", "train", None, "source"),
    "recordings/line3/clip_a.wav": ("plain", "line3", "id_00", "unknown", "none", None, None),
    "incoming/fan/id_02/2026-11-25T10-05.wav": ("plain", "fan", "id_02", "unknown", "none", None, None),
    "incoming/valve/section_01/snippet.wav": ("plain", "valve", "section_01", "unknown", "none", None, None),
    "fan/id_00/normal/00000001.flac": ("mimii", "fan", "id_00", "normal", "none", None, None),
    "fan/id_00/abnormal/LOUD.WAV": ("mimii", "fan", "id_00", "abnormal", "none", None, None),
}  # fmt: skip


def _facts(clip) -> tuple:
    return (clip.layout, clip.machine_type, clip.machine_id, clip.label, clip.split, clip.snr_db, clip.domain)


@pytest.mark.parametrize("rel", list(CASES))
def test_each_layout_is_recognised(tmp_path, rel):
    path = write_wav(tmp_path / rel, CLIP)
    (clip,) = discover(tmp_path)
    assert clip.path == str(path)
    assert _facts(clip) == CASES[rel]
    assert clip.machine == f"{CASES[rel][1]}/{CASES[rel][2]}"
    assert _facts(describe(path)) == CASES[rel]


def test_discover_a_whole_tree_sorted(tmp_path):
    for rel in reversed(CASES):  # written in reverse order: the output must still be sorted
        write_wav(tmp_path / rel, CLIP)
    found = discover(tmp_path)
    assert [c.path for c in found] == sorted(str(tmp_path / rel) for rel in CASES)
    assert {str(Path(c.path).relative_to(tmp_path)): _facts(c) for c in found} == CASES


def test_hidden_and_non_audio_files_are_ignored(tmp_path):
    keep = write_wav(tmp_path / "fan/id_00/normal/a.wav", CLIP)
    write_wav(tmp_path / "fan/id_00/normal/.hidden.wav", CLIP)
    write_wav(tmp_path / ".cache/fan/id_00/normal/b.wav", CLIP)
    (tmp_path / "fan/id_00/normal/notes.txt").write_text("not a clip")
    (tmp_path / "fan/id_00/normal/a.wav.bak").write_bytes(keep.read_bytes())
    (tmp_path / "fan/id_00/normal/c.mp3").write_bytes(b"ID3")
    assert [c.path for c in discover(tmp_path)] == [str(keep)]


def test_empty_folder_and_pure_path_logic(tmp_path):
    assert discover(tmp_path) == []
    # describe never opens the file: a path that does not exist is still classified
    clip = describe("/nowhere/pump/test/anomaly_id_02_00000007.wav")
    assert (clip.layout, clip.machine, clip.label, clip.split) == ("dcase2020", "pump/id_02", "abnormal", "test")


def test_discover_a_single_file_keeps_what_its_name_says(tmp_path):
    path = write_wav(tmp_path / "valve/test/section_02_target_test_anomaly_0001_pat_03.wav", CLIP)
    assert discover(path) == [describe(path)]
    assert discover(path)[0].label == "abnormal"


def test_real_recordings_match_their_manifest(real_data):
    rows = list(csv.DictReader((real_data / "manifest.csv").open()))
    assert rows
    found = {Path(c.path).relative_to(real_data.resolve()).as_posix(): c for c in discover(real_data)}
    missing = [row["path"] for row in rows if row["path"] not in found]
    assert not missing
    for row in rows:
        clip = found[row["path"]]
        assert row["label"] in ("normal", "abnormal")
        assert (clip.machine_type, clip.label) == (row["machine_type"], row["label"]), row["path"]
        if re.fullmatch(r"(id|section)_\d+", row["machine_id"]):
            assert clip.machine_id == row["machine_id"], row["path"]
        if row["dataset"].startswith("DCASE"):
            assert clip.split in ("train", "test")
            assert clip.split == Path(row["path"]).parent.name, row["path"]
        else:
            assert clip.split == "none", row["path"]


def test_pointing_at_a_lower_folder_keeps_the_metadata(tmp_path):
    dcase = write_wav(tmp_path / "dev/valve/test/anomaly_id_02_00000001.wav", CLIP)
    mimii = write_wav(tmp_path / "6_dB_fan/fan/id_00/abnormal/00000001.wav", CLIP)
    assert discover(tmp_path / "dev/valve") == discover(tmp_path / "dev") == [describe(dcase)]
    assert discover(tmp_path / "6_dB_fan/fan/id_00") == [describe(mimii)]
    assert describe(mimii).snr_db == 6.0 and describe(mimii).machine == "fan/id_00"


def test_unlabelled_dcase_evaluation_file(tmp_path):
    clip = describe(write_wav(tmp_path / "fan/test/section_03_0001.wav", CLIP))
    assert (clip.layout, clip.machine, clip.label, clip.split) == ("dcase2021", "fan/section_03", "unknown", "test")
