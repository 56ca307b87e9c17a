"""core.workflows.uploads: uploads land under DATA_DIR with safe names whatever they are called, nothing is ever written
elsewhere, oversized, empty and non-audio ones are refused with their reason, and the rest of the batch is kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import BadInputError, Reason
from core.workflows.ingest import ingest
from core.workflows.uploads import ingest_uploads, max_upload_bytes, safe_name, store_uploads
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
    # letters of any script are kept; the same name with the same content is the same file, not a copy, named once
    assert [Path(p).name for p in stored.paths] == ["evil.wav", "pompe_é_1.wav"]
    assert stored.names[stored.paths[0]] == "../../etc/evil.wav"  # the first name it was uploaded under
    assert Path(stored.paths[0]).parent == root / "fan" / "id_01"
    assert [item["path"] for item in stored.refused] == ["big.wav"]
    report = ingest(stored.paths)
    assert (report.ingested, report.already_known) == (1, 1)  # same content twice is one clip


def test_an_upload_ingest_refuses_is_deleted_again_and_named_as_removed(data_dir, tmp_path):
    good = write_wav(tmp_path / "good.wav", tone(1.0)).read_bytes()
    files = [("good.wav", good), ("junk.wav", b"this is not audio"), ("cut.wav", good[:40])]  # a header cut short
    stored = store_uploads(files, "fan/id_00")
    folder = (data_dir / "uploads" / "fan" / "id_00").resolve()
    assert sorted(p.name for p in folder.iterdir()) == ["cut.wav", "good.wav", "junk.wav"]
    report = ingest_uploads(stored, n_jobs=1)
    assert report.ingested == 1
    refused = sorted((Path(i["path"]).name, i["reason"]) for i in report.rejected)
    assert refused == [("cut.wav", "corrupt"), ("junk.wav", "not_audio")]
    assert [p.name for p in folder.iterdir()] == ["good.wav"]  # the refused files are not left there
    assert stored.paths == [str(folder / "good.wav")]
    assert sorted(stored.removed) == [str(folder / "cut.wav"), str(folder / "junk.wav")]

    again = store_uploads([("good.wav", good)], "fan/id_00")  # a clip already registered is never deleted
    assert ingest_uploads(again, n_jobs=1).already_known == 1 and again.removed == []
    assert {path: known.machine for path, known in again.known_as.items()} == {str(folder / "good.wav"): "fan/id_00"}
    assert [p.name for p in folder.iterdir()] == ["good.wav"] and again.paths == [str(folder / "good.wav")]


def test_an_upload_whose_recording_is_already_a_clip_elsewhere_is_deleted_and_names_that_clip(data_dir, tmp_path):
    """The same recordings uploaded for another machine register nothing there: the copies are not left under
    that machine's folder, and each names the clip it already is (a copy within one batch too)."""
    from core.workflows.triage import resolve_clip
    from core.workflows.uploads import KnownClip

    one, two = (write_wav(tmp_path / f"{k}.wav", tone(1.0, seed=k)).read_bytes() for k in range(2))
    first = store_uploads([("one.wav", one), ("two.wav", two)], "fan/id_00")
    assert ingest_uploads(first, n_jobs=1).ingested == 2
    fan = (data_dir / "uploads" / "fan" / "id_00").resolve()
    ids = {name: resolve_clip(str(fan / name)) for name in ("one.wav", "two.wav")}

    again = store_uploads([("one.wav", one), ("copy of two.wav", two), ("two again.wav", two)], "valve/id_00")
    report = ingest_uploads(again, n_jobs=1)
    valve = (data_dir / "uploads" / "valve" / "id_00").resolve()
    assert (report.ingested, report.already_known, report.rejected) == (0, 3, [])
    assert list(valve.iterdir()) == [] and again.paths == []
    assert sorted(again.removed) == sorted(str(valve / n) for n in ("one.wav", "copy_of_two.wav", "two_again.wav"))
    assert again.known_as == {str(valve / "one.wav"): KnownClip(ids["one.wav"], "fan/id_00"),
                              str(valve / "copy_of_two.wav"): KnownClip(ids["two.wav"], "fan/id_00"),
                              str(valve / "two_again.wav"): KnownClip(ids["two.wav"], "fan/id_00")}  # fmt: skip
    assert sorted(p.name for p in fan.iterdir()) == ["one.wav", "two.wav"]  # the clips' own files stay

    three = write_wav(tmp_path / "3.wav", tone(1.0, seed=3)).read_bytes()
    batch = store_uploads([("a.wav", three), ("b.wav", three)], "valve/id_00")  # one recording twice in a batch
    report = ingest_uploads(batch, n_jobs=1)
    assert (report.ingested, report.already_known) == (1, 1)
    assert batch.paths == [str(valve / "a.wav")] and [p.name for p in valve.iterdir()] == ["a.wav"]
    assert batch.known_as == {str(valve / "b.wav"): KnownClip(resolve_clip(str(valve / "a.wav")), "valve/id_00")}


def test_oversized_upload_is_refused_with_its_reason(data_dir):
    stored = store_uploads([("huge.wav", b"0" * 11)], "fan/id_00", max_bytes=10)
    assert stored.paths == []
    assert stored.refused == [
        {"path": "huge.wav", "reason": "too_large", "detail": "0.0 MB is over the 1e-05 MB limit"}
    ]


@pytest.mark.parametrize(
    ("machine", "message"),
    [("t" * 70 + "/id_00", f"machine type '{'t' * 23}…' is 70 characters; at most 64"),
     ("fan/" + "i" * 65, f"machine id '{'i' * 23}…' is 65 characters; at most 64")],
)  # fmt: skip
def test_a_machine_name_longer_than_the_database_keeps_is_refused_before_anything_is_written(
    data_dir, tmp_path, machine, message
):
    wav = write_wav(tmp_path / "x.wav", tone(0.5)).read_bytes()
    with pytest.raises(BadInputError) as info:
        store_uploads([("a.wav", wav)], machine)
    assert (info.value.reason, info.value.detail) == (Reason.INVALID_PARAMETER, message)
    assert not list((data_dir / "uploads").rglob("*.wav"))


@pytest.mark.parametrize("machine", ["", "fan", "fan/", "/id_00", " / ", "../.."])
def test_a_machine_without_a_type_or_an_id_is_refused_not_made_up(data_dir, tmp_path, machine):
    wav = write_wav(tmp_path / "x.wav", tone(0.5)).read_bytes()
    with pytest.raises(BadInputError) as info:
        store_uploads([("a.wav", wav)], machine)
    assert (info.value.reason, info.value.detail) == (
        Reason.INVALID_PARAMETER, f"machine must be type/id, e.g. fan/id_00, got {machine!r}")  # fmt: skip
    assert not (data_dir / "uploads").exists()


def test_safe_name():
    assert safe_name("../..", "x") == "x"
    assert safe_name(".hidden.wav", "x") == "hidden.wav"
    assert safe_name("a\\b\\c.wav", "x") == "c.wav"


def _tree(root: Path, skip: Path) -> set[str]:
    """Every path under ``root``, except inside ``skip``."""
    return {str(p) for p in root.rglob("*") if not p.is_relative_to(skip)}


HOSTILE_NAMES = [
    "../../../../../evil.wav",  # climbs out of DATA_DIR/uploads/<type>/<id>, DATA_DIR and tmp_path
    "/etc/passwd.wav",
    "..\\..\\..\\..\\..\\win.wav",
    "C:\\Windows\\system.wav",
    "bø ñ 音.wav",
    "nul\x00byte.wav",
    "\u202etxt.wav",  # right-to-left override
    "a" * 300 + ".wav",  # longer than a file name may be
    "",
    "..",
    ".wav",
]


def test_hostile_names_are_stored_inside_data_dir_and_nothing_is_written_elsewhere(data_dir, tmp_path):
    outside = tmp_path.parent  # this test's folder and its neighbours
    before = _tree(outside, data_dir)
    files = [(name, write_wav(tmp_path / f"src{k}.wav", tone(0.5, seed=k)).read_bytes())
             for k, name in enumerate(HOSTILE_NAMES)]  # fmt: skip
    after_sources = _tree(outside, data_dir)

    with pytest.raises(BadInputError) as info:  # a machine name with nothing safe left in it: refused, not made up
        store_uploads(files, "../../../../../x/..\\..", max_bytes=10**6)
    assert info.value.detail.startswith("machine must be type/id, e.g. fan/id_00, got ")
    assert not (data_dir / "uploads").exists() or not list((data_dir / "uploads").rglob("*"))
    stored = store_uploads(files, "fan/id_00", max_bytes=10**6)

    assert _tree(outside, data_dir) == after_sources  # nothing was written outside DATA_DIR
    assert not Path("/etc/passwd.wav").exists() and not Path("/evil.wav").exists()
    assert after_sources - before == {str(tmp_path / f"src{k}.wav") for k in range(len(HOSTILE_NAMES))}
    root = (data_dir / "uploads").resolve()
    names = [Path(p).name for p in stored.paths]
    assert all(Path(p).parent.parent.parent == root for p in stored.paths)
    assert {Path(p).parent for p in stored.paths} == {root / "fan" / "id_00"}
    assert names[:7] == ["evil.wav", "passwd.wav", "win.wav", "system.wav", "bø_ñ_音.wav", "nul_byte.wav", "_txt.wav"]
    assert len(names[7].encode()) <= 200 and names[7].endswith(".wav") and names[7].startswith("aaaa")
    assert names[8:] == ["upload.wav", "upload_1.wav"]  # nothing left of the name: a default, numbered
    assert [item["path"] for item in stored.refused] == [".wav"]  # no audio suffix left once made safe
    assert stored.refused[0]["reason"] == "not_audio"
    assert [stored.names[p] for p in stored.paths] == HOSTILE_NAMES[:10]

    report = ingest(stored.paths)  # every stored upload is a good clip: all of them are kept
    assert (report.ingested, report.already_known, report.rejected) == (10, 0, [])


def test_the_size_limit_comes_from_max_upload_mb_and_is_applied_in_core(data_dir, monkeypatch, tmp_path):
    wav = write_wav(tmp_path / "x.wav", tone(1.0)).read_bytes()  # 32 kB
    monkeypatch.setenv("MAX_UPLOAD_MB", "0.02")
    assert max_upload_bytes() == 20_000
    stored = store_uploads([("small.wav", wav[:10_000]), ("large.wav", wav)], "fan/id_00")  # no max_bytes given
    assert [Path(p).name for p in stored.paths] == ["small.wav"]
    assert stored.refused == [
        {"path": "large.wav", "reason": "too_large", "detail": "0.0 MB is over the 0.02 MB limit"}
    ]

    monkeypatch.delenv("MAX_UPLOAD_MB")
    assert max_upload_bytes() == 200_000_000  # the default, 200 MB
    for bad in ("abc", "-1", "0", "nan", "inf"):
        monkeypatch.setenv("MAX_UPLOAD_MB", bad)
        with pytest.raises(BadInputError, match="MAX_UPLOAD_MB") as caught:
            store_uploads([("small.wav", wav)], "fan/id_00")
        assert caught.value.reason is Reason.INVALID_PARAMETER


def test_a_bad_upload_never_costs_the_good_ones_and_each_refusal_names_the_file(data_dir, tmp_path):
    good = [write_wav(tmp_path / f"g{k}.wav", tone(1.0, seed=k)).read_bytes() for k in range(2)]
    batch = [
        ("first.wav", good[0]),
        ("huge.wav", good[0] * 3),
        ("empty.wav", b""),
        ("script.sh", b"#!/bin/sh\nrm -rf /\n"),
        ("fake.wav", b"MZ\x90\x00 this is a program, not audio" * 30),
        ("head.wav", good[1][:30]),
        ("copy of first.flac", good[0]),
        ("second.wav", good[1]),
    ]
    stored = store_uploads(batch, "pump/id_03", max_bytes=2 * len(good[0]))
    assert [(r["path"], r["reason"]) for r in stored.refused] == [
        ("huge.wav", "too_large"), ("empty.wav", "empty"), ("script.sh", "not_audio"),
    ]  # fmt: skip
    assert all(r["detail"] for r in stored.refused)
    assert list(stored.names.values()) == ["first.wav", "fake.wav", "head.wav", "copy of first.flac", "second.wav"]

    report = ingest(stored.paths)
    assert (report.ingested, report.already_known) == (2, 1)  # the copy is the same clip
    rejected = {stored.names[r["path"]]: r["reason"] for r in report.rejected}
    assert rejected == {"fake.wav": "not_audio", "head.wav": "corrupt"}
    assert all(Path(r["path"]).is_relative_to(data_dir) for r in report.rejected)


def test_uploading_again_reuses_the_same_file_and_a_new_content_gets_a_new_name(data_dir, tmp_path):
    one, two = (write_wav(tmp_path / f"{k}.wav", tone(1.0, seed=k)).read_bytes() for k in range(2))
    (first,) = store_uploads([("clip.wav", one)], "fan/id_00", max_bytes=10**6).paths
    (again,) = store_uploads([("clip.wav", one)], "fan/id_00", max_bytes=10**6).paths
    (other,) = store_uploads([("clip.wav", two)], "fan/id_00", max_bytes=10**6).paths
    assert first == again and Path(other).name == "clip_1.wav"
    assert Path(first).read_bytes() == one and Path(other).read_bytes() == two
    assert sorted(p.name for p in Path(first).parent.iterdir()) == ["clip.wav", "clip_1.wav"]


def test_links_planted_in_the_upload_folder_are_never_written_through(data_dir, tmp_path):
    wav = write_wav(tmp_path / "x.wav", tone(1.0)).read_bytes()
    folder = data_dir / "uploads" / "fan" / "id_00"
    folder.mkdir(parents=True)
    target = tmp_path / "outside.wav"
    (folder / "clip.wav").symlink_to(target)  # dangling: writing through it would create outside.wav
    (stored,) = store_uploads([("clip.wav", wav)], "fan/id_00", max_bytes=10**6).paths
    assert Path(stored) == folder / "clip_1.wav" and not target.exists()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (data_dir / "uploads" / "pump").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(BadInputError, match="is a link") as caught:
        store_uploads([("clip.wav", wav)], "pump/id_00", max_bytes=10**6)
    assert caught.value.reason is Reason.INVALID_PARAMETER
    assert list(elsewhere.iterdir()) == []


def _machine_plant(root: Path, sr: int = 16_000) -> None:
    """fan/id_00 with 6 normal training clips (MIMII layout), trained (Mahalanobis)."""
    for k in range(6):
        write_wav(root / "fan" / "id_00" / "normal" / f"{k:08d}.wav", tone(1.0, sr=sr, seed=k), sr=sr)


def test_new_clips_are_scored_and_each_says_its_score_and_whether_flagged(data_dir, tmp_path):
    from core.workflows.explore import clip_details
    from core.workflows.training import train
    from core.workflows.uploads import score_new_clips

    _machine_plant(tmp_path / "plant")
    ingest([str(tmp_path / "plant")], n_jobs=1)
    train(None, "mahalanobis")
    write_wav(tmp_path / "odd.wav", tone(1.0, freq=3000.0, amplitude=0.9, seed=9))
    stored = store_uploads([("odd.wav", (tmp_path / "odd.wav").read_bytes())], "fan/id_00")
    ingest(stored.paths, n_jobs=1)
    result = score_new_clips(stored.paths)
    (clip,) = result.clips
    details = clip_details(clip.clip_id)
    assert (clip.machine, clip.model, clip.score, clip.threshold) == (
        "fan/id_00", "Mahalanobis v1", details.score, details.threshold,
    )  # fmt: skip
    assert clip.score is not None and clip.flagged is details.flagged
    assert result.report.failed == [] and result.report.machines_without_model == [] and result.train_commands() == []
    # the training clips were scored too (same machine), and only these paths are described and counted
    assert result.report.scored == 7 and [c.path for c in result.clips] == stored.paths
    assert (result.scored, result.flagged) == (1, int(details.flagged))


def test_the_counts_of_new_clips_count_each_clip_once_and_never_flag_more_than_they_score(data_dir, tmp_path):
    """Paths naming clips scored earlier, or one clip twice, count once each: flagged is never more than scored."""
    from core.workflows.training import train
    from core.workflows.uploads import score_new_clips

    _machine_plant(tmp_path / "plant")
    ingest([str(tmp_path / "plant")], n_jobs=1)
    train(None, "mahalanobis")
    odd = [write_wav(tmp_path / f"odd{k}.wav", tone(1.0, freq=3000.0 + 500 * k, amplitude=0.9, seed=9 + k))
           for k in range(2)]  # fmt: skip
    stored = store_uploads([(p.name, p.read_bytes()) for p in odd], "fan/id_00")
    ingest(stored.paths, n_jobs=1)
    result = score_new_clips(stored.paths + stored.paths[:1] + [str(odd[0])])  # the same clip three ways
    assert [c.flagged for c in result.clips] == [True, True, True, True]
    assert (result.scored, result.flagged) == (2, 2)


def test_only_these_clips_failures_and_machines_are_reported(data_dir, tmp_path):
    from core.workflows.uploads import score_new_clips

    write_wav(tmp_path / "old" / "pump" / "id_01" / "a.wav", tone(1.0, seed=4))
    ingest([str(tmp_path / "old")], n_jobs=1)  # pump/id_01: no model, not these clips' machine
    stored = store_uploads([("new.wav", write_wav(tmp_path / "n.wav", tone(1.0, seed=5)).read_bytes())], "press/id_02")
    ingest(stored.paths, n_jobs=1)
    result = score_new_clips(stored.paths + [str(tmp_path / "never-ingested.wav")])
    assert result.report.machines_without_model == ["press/id_02"]
    assert result.train_commands() == ["python -m core train --machine press/id_02"]
    assert result.too_few_to_train() == {"press/id_02": 0}  # an upload is unlabelled: no normal clip to learn from
    registered, unknown = result.clips
    assert (registered.machine, registered.model, registered.score, registered.flagged) == ("press/id_02", None, None,
                                                                                          None)  # fmt: skip
    assert unknown.clip_id is None and unknown.machine is None


def test_a_machine_without_a_model_but_with_normal_clips_can_be_trained(data_dir, tmp_path):
    from sqlalchemy import func, select

    from core.workflows.uploads import score_new_clips
    from db.models import Clip
    from db.session import session_scope

    _machine_plant(tmp_path / "plant")  # 6 normal clips, never trained
    ingest([str(tmp_path / "plant")], n_jobs=1)
    stored = store_uploads([("new.wav", write_wav(tmp_path / "n.wav", tone(1.0, seed=7)).read_bytes())], "fan/id_00")
    ingest(stored.paths, n_jobs=1)
    result = score_new_clips(stored.paths)
    with session_scope() as session:  # its normal clips outside the test split (the split is drawn by content)
        training = session.scalar(select(func.count()).where(Clip.split == "train", Clip.label == "normal"))
    assert result.report.machines_without_model == ["fan/id_00"] and result.normal_clips == {"fan/id_00": training}
    assert training >= 3
    assert result.too_few_to_train() == {} and (result.scored, result.flagged) == (0, 0)


def test_scoring_new_clips_needs_the_ingest_right(data_dir):
    from core.access import Actor
    from core.errors import PermissionDeniedError
    from core.workflows.uploads import score_new_clips

    with pytest.raises(PermissionDeniedError):
        score_new_clips([], actor=Actor("ann", "annotator"))
