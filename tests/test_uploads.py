"""core.uploads: uploads land under DATA_DIR with safe names, oversized ones are refused."""

from __future__ import annotations

from pathlib import Path

from core.ingest import ingest
from core.uploads import safe_name, store_uploads
from tests.conftest import tone, write_wav


def test_uploads_are_stored_under_data_dir_with_safe_names(data_dir, tmp_path):
    wav = write_wav(tmp_path / "x.wav", tone(1.0)).read_bytes()
    stored = store_uploads(
        [("../../etc/evil.wav", wav), ("pompe é 1.wav", wav), ("evil.wav", wav), ("big.wav", wav + b"0")],
        "fan/../id_01",
        max_bytes=len(wav),
    )
    root = (data_dir / "uploads").resolve()
    assert all(Path(p).resolve().is_relative_to(root) for p in stored.paths)
    assert [Path(p).name for p in stored.paths] == ["evil.wav", "pompe___1.wav", "evil_1.wav"]
    assert Path(stored.paths[0]).parent == root / "fan" / "id_01"
    assert [item["path"] for item in stored.refused] == ["big.wav"]
    report = ingest(stored.paths)
    assert (report.ingested, report.already_known) == (1, 2)  # same content three times is one clip


def test_oversized_upload_is_refused_with_its_reason(data_dir):
    stored = store_uploads([("huge.wav", b"0" * 11)], "fan/id_00", max_bytes=10)
    assert stored.paths == []
    assert stored.refused == [
        {"path": "huge.wav", "reason": "too_large", "detail": "0.0 MB is over the 1e-05 MB limit"}
    ]


def test_safe_name():
    assert safe_name("../..", "x") == "x"
    assert safe_name(".hidden.wav", "x") == "hidden.wav"
    assert safe_name("a\\b\\c.wav", "x") == "c.wav"
