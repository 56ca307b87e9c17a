"""core.workflows.ingest and core.workflows.bootstrap: idempotent registration, bad files reported and never fatal."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

import core.workflows.ingest
from core.datasets.demo import write_plant
from core.workflows.ingest import IngestReport, ingest
from db.models import Clip, RejectedFile
from db.queries import clip_counts, count_clips
from db.session import session_scope
from tests.conftest import tone, write_wav


@pytest.fixture
def plant(tmp_path) -> tuple[Path, list]:
    out = tmp_path / "plant"
    return out, write_plant(out, seed=0, machines=3, normal=4, abnormal=3, duration_s=1.0, n_jobs=1)


def _counts() -> Counter:
    """Clips per (machine type, machine id, label); splits are checked on their own."""
    counts = Counter()
    with session_scope() as session:
        for c in clip_counts(session):
            counts[(c.machine_type, c.machine_id, c.label)] += c.n_clips
    return counts


def _n_clips() -> int:
    with session_scope() as session:
        return count_clips(session)


def test_ingest_a_plant_then_again(plant):
    out, plan = plant
    report = ingest([str(out)])
    assert (report.ingested, report.already_known, report.rejected) == (21, 0, [])
    expected = Counter((c.machine_type, c.machine_id, "abnormal" if c.anomaly else "normal") for c in plan)
    assert _counts() == expected
    with session_scope() as session:
        clips = {c.path: c for c in session.scalars(select(Clip))}
    some = plan[5]
    row = clips[str(Path(some.path).resolve())]
    assert row.content_hash == hashlib.sha256(Path(some.path).read_bytes()).hexdigest()
    assert (row.layout, row.snr_db, row.sample_rate, row.n_channels, row.duration_s) == ("mimii", 6.0, 16000, 1, 1.0)
    assert row.n_bytes == Path(some.path).stat().st_size

    again = ingest([str(out)], n_jobs=1)
    assert (again.ingested, again.already_known, again.rejected) == (0, 21, [])
    assert _counts() == expected


def test_same_content_under_another_name_is_one_clip(plant, tmp_path):
    out, plan = plant
    ingest([str(out)])
    copy = tmp_path / "elsewhere" / "renamed.wav"
    copy.parent.mkdir()
    shutil.copy(plan[0].path, copy)
    report = ingest([str(copy)])
    assert (report.ingested, report.already_known) == (0, 1)
    assert _n_clips() == 21


def test_duplicates_within_one_batch(tmp_path):
    first = write_wav(tmp_path / "in/pump/a.wav", tone(0.5))
    shutil.copy(first, tmp_path / "in/pump/b.wav")
    report = ingest([str(tmp_path / "in")])
    assert (report.ingested, report.already_known) == (1, 1)
    with session_scope() as session:
        (clip,) = session.scalars(select(Clip))
        assert (clip.path, clip.machine.key, clip.label, clip.layout) == (str(first), "pump/id_00", "unknown", "plain")


def test_bad_files_are_rejected_and_the_rest_ingested(tmp_path):
    folder = tmp_path / "mixed" / "fan" / "id_00" / "normal"
    write_wav(folder / "good1.wav", tone(0.5, freq=300.0))
    write_wav(folder / "good2.flac", tone(0.5, freq=500.0))
    (folder / "text.wav").write_text("this is not audio\n" * 20)
    (folder / "empty.wav").write_bytes(b"")
    good = write_wav(tmp_path / "tmp.wav", tone(0.5, freq=700.0)).read_bytes()
    (folder / "truncated.wav").write_bytes(good[: len(good) // 2])
    write_wav(folder / "silent.wav", np.zeros((8000, 1), dtype=np.float32))
    missing = str(tmp_path / "does" / "not" / "exist.wav")

    report = ingest([str(tmp_path / "mixed"), missing])

    assert (report.ingested, report.already_known) == (2, 0)
    reasons = {Path(r["path"]).name: r["reason"] for r in report.rejected}
    assert reasons == {
        "text.wav": "not_audio",
        "empty.wav": "empty",
        "truncated.wav": "corrupt",
        "silent.wav": "silent",
        "exist.wav": "not_found",
    }
    assert missing in {r["path"] for r in report.rejected}
    assert all(r["detail"] for r in report.rejected)
    with session_scope() as session:
        rows = {(r.path, r.reason, r.detail) for r in session.scalars(select(RejectedFile))}
    assert rows == {(r["path"], r["reason"], r["detail"]) for r in report.rejected}
    assert _counts() == Counter({("fan", "id_00", "normal"): 2})


def test_report_json_shape():
    report = IngestReport(
        ingested=2,
        known_paths=["/y.wav"],
        rejected=[{"path": "/x.wav", "reason": "empty", "detail": "the file is empty (0 bytes)"}],
    )
    payload = json.loads(json.dumps(report.as_json()))
    assert payload == {
        "ingested": 2,
        "already_known": 1,
        "rejected": [{"path": "/x.wav", "reason": "empty", "detail": "the file is empty (0 bytes)"}],
    }
    assert IngestReport().as_json() == {"ingested": 0, "already_known": 0, "rejected": []}


def test_mimii_clips_get_a_recorded_split_that_keeps_abnormals_out_of_training(plant):
    out, _ = plant
    ingest([str(out)], n_jobs=1)
    with session_scope() as session:
        clips = list(session.scalars(select(Clip)))
    assert {c.split_source for c in clips} == {"assigned"}
    assert {c.split for c in clips if c.label == "abnormal"} == {"test"}
    assert {c.split for c in clips if c.label == "normal"} <= {"train", "test"}
    assert any(c.split == "train" for c in clips)


def test_a_file_name_that_is_not_utf8_is_refused_and_recorded_and_the_batch_goes_on(tmp_path):
    folder = tmp_path / "in" / "pump"
    write_wav(folder / "good.wav", tone(0.5))
    latin1 = os.fsdecode(os.fsencode(folder) + b"/caf\xe9.wav")  # Python carries the byte as a lone surrogate
    Path(latin1).write_bytes(write_wav(tmp_path / "other.wav", tone(0.5, seed=1)).read_bytes())
    missing = os.fsdecode(os.fsencode(tmp_path) + b"/gone\xff.wav")

    report = ingest([str(tmp_path / "in"), missing])

    assert (report.ingested, report.already_known) == (1, 0)
    shown = f"{folder}/caf\\xe9.wav"  # the undecodable byte shown as an escape, so the name can be stored
    assert [(r["path"], r["reason"]) for r in report.rejected] == [
        (f"{tmp_path}/gone\\xff.wav", "not_found"), (shown, "invalid_parameter"),
    ]  # fmt: skip
    with session_scope() as session:
        assert {r.path for r in session.scalars(select(RejectedFile))} == {r["path"] for r in report.rejected}


def test_an_interrupted_ingest_keeps_the_chunks_it_committed(tmp_path, monkeypatch):
    monkeypatch.setattr(core.workflows.ingest, "COMMIT_EVERY", 2)
    folder = tmp_path / "in" / "pump"
    for k in range(7):
        write_wav(folder / f"c{k}.wav", tone(0.2, seed=k))

    def interrupt(done: int, _total: int) -> None:
        if done == 5:  # Ctrl-C after the fifth file: two chunks of two are in, the fifth clip is not
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest([str(folder)], n_jobs=1, progress=interrupt)
    assert _n_clips() == 4

    report = ingest([str(folder)], n_jobs=1)
    assert (report.ingested, report.already_known, report.rejected) == (3, 4, [])
    assert _n_clips() == 7


def test_snr_versions_of_a_mimii_recording_land_in_one_split(tmp_path):
    """-6, 0 and 6 dB versions of each take (different bytes, same file name) never straddle train and test."""
    from collections import defaultdict

    from sqlalchemy import select

    from core.datasets.demo import write_plant
    from db.models import Clip
    from db.session import session_scope

    for snr in (-6.0, 0.0, 6.0):
        write_plant(tmp_path / f"{snr:g}_dB_fan", machines=1, normal=12, abnormal=0, duration_s=1.0, seed=0,
                    snr_db=snr, n_jobs=1)  # fmt: skip
    assert ingest([str(tmp_path)], n_jobs=1).ingested == 36
    by_take = defaultdict(set)
    with session_scope() as session:
        for clip in session.scalars(select(Clip)):
            by_take[clip.path.rsplit("/", 1)[-1]].add(clip.split)
    assert len(by_take) == 12 and all(len(splits) == 1 for splits in by_take.values())
    assert {s for splits in by_take.values() for s in splits} == {"train", "test"}


# --- names longer than the database keeps: refused alone, on every backend -------------------------------------------


def _long_named_files(root: Path) -> dict[str, Path]:
    """Real clips: two whose folders name a machine longer than the database keeps (a type of 70 characters in
    the plain layout, an id of 80 in MIMII's), one at exactly the limit, one ordinary."""
    return {
        "long type": write_wav(root / ("t" * 70) / "id_00" / "a.wav", tone(0.5, seed=1)),
        "long id": write_wav(root / "fan" / ("i" * 80) / "normal" / "b.wav", tone(0.5, seed=2)),
        "at the limit": write_wav(root / ("t" * 64) / ("i" * 64) / "normal" / "c.wav", tone(0.5, seed=3)),
        "ordinary": write_wav(root / "fan" / "id_00" / "d.wav", tone(0.5, seed=4)),
    }


def test_machine_names_longer_than_the_database_keeps_are_refused_and_the_batch_stored(any_db_url, tmp_path):
    files = _long_named_files(tmp_path / "in")
    report = ingest([str(tmp_path / "in")], url=any_db_url, n_jobs=1)

    assert (report.ingested, report.already_known) == (2, 0)
    refused = {item["path"]: item for item in report.rejected}
    assert refused.keys() == {str(files["long type"]), str(files["long id"])}
    assert refused[str(files["long type"])]["detail"] == f"machine type '{'t' * 23}…' is 70 characters; at most 64"
    assert refused[str(files["long id"])]["detail"] == f"machine id '{'i' * 23}…' is 80 characters; at most 64"
    assert {item["reason"] for item in report.rejected} == {"invalid_parameter"}
    with session_scope(any_db_url) as session:
        stored = {row.path: (row.reason, row.detail) for row in session.scalars(select(RejectedFile))}
        keys = {c.machine.key for c in session.scalars(select(Clip))}
    assert stored == {path: (item["reason"], item["detail"]) for path, item in refused.items()}
    assert keys == {"fan/id_00", f"{'t' * 64}/{'i' * 64}"}


def test_a_value_the_database_still_refuses_costs_only_its_own_clip(any_db_url, tmp_path, monkeypatch):
    """Should a check ever be missing (here: switched off), PostgreSQL refuses the long name; the rest of the batch
    is stored and the clip is reported as a bug, without the SQL."""
    if not any_db_url.startswith("postgresql"):
        pytest.skip("SQLite keeps text of any length")
    monkeypatch.setattr(core.workflows.ingest, "check_storable", lambda clip: clip)
    files = _long_named_files(tmp_path / "in")
    report = ingest([str(tmp_path / "in")], url=any_db_url, n_jobs=1)

    assert report.ingested == 2
    assert {item["path"] for item in report.rejected} == {str(files["long type"]), str(files["long id"])}
    for item in report.rejected:
        assert item["reason"] == "unexpected_error"
        assert item["detail"].startswith("the database refused it (a bug, not a fault of the file): ")
        assert "value too long" in item["detail"] and "INSERT" not in item["detail"]
    with session_scope(any_db_url) as session:
        assert session.query(RejectedFile).count() == 2


def test_the_report_names_the_clips_this_run_registered_and_no_others(tmp_path):
    """What the Data page scores and lists after a folder ingest: only the clips that are new, as stored."""
    folder = tmp_path / "plant" / "fan" / "id_00" / "normal"
    first = [write_wav(folder / f"{k}.wav", tone(1.0, seed=k)) for k in range(3)]
    assert sorted(ingest([str(tmp_path / "plant")], n_jobs=1).new_paths) == sorted(str(p.resolve()) for p in first)
    later = write_wav(folder / "later.wav", tone(1.0, seed=9))
    write_wav(folder / "copy.wav", tone(1.0, seed=0))  # the content of 0.wav: already known
    again = ingest([str(tmp_path / "plant")], n_jobs=1)
    assert (again.ingested, again.already_known, again.new_paths) == (1, 4, [str(later.resolve())])
    assert "new_paths" not in again.as_json()
