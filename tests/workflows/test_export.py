"""core.workflows.export: the curated, balanced spectrogram dataset written from a real ingested plant -- images,
Ground Truth
manifests, summary and the Export row; seeded and reproducible; label source preference; refusals and bad clips."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from core.errors import BadInputError, Reason
from core.signal.batch import file_features
from core.signal.spectrogram_image import IMAGE_FEATURES, image_from_features
from core.workflows.export import ExportOptions, export_dataset, read_images, read_summary
from core.workflows.ingest import ingest
from core.workflows.manifest import CLASS_INDEX, read_manifest, validate_export
from core.workflows.triage import record_verdict
from db.models import Annotation, Clip, Export
from db.session import session_scope
from tests.conftest import tone, write_wav

SUBSETS = ("train", "test")
LABELS = ("normal", "abnormal")


def _export(out: Path, options: ExportOptions = ExportOptions(), **kwargs) -> dict:
    return export_dataset(out, options, n_jobs=1, **kwargs)


def _pngs(out: Path) -> list[str]:
    """Every PNG under ``out``, as sorted paths relative to it."""
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))


def _manifest_refs(out: Path, subset: str) -> list[tuple[str, str]]:
    entries, problems = read_manifest(out / f"{subset}.manifest")
    assert problems == []
    return [(e.source_ref, e.class_name) for e in entries]


def _clips_by_id() -> dict[int, tuple[str, str, str]]:
    """``{clip id: (machine, ground-truth label, path)}`` straight from the database."""
    with session_scope() as session:
        return {c.id: (c.machine.key, c.label, c.path) for c in session.scalars(select(Clip))}


def _clip_id(machine: str, label: str, index: int = 0) -> int:
    with session_scope() as session:
        clips = [
            c for c in session.scalars(select(Clip).order_by(Clip.path)) if (c.machine.key, c.label) == (machine, label)
        ]
        return clips[index].id


# --- the dataset written -------------------------------------------------------------------------------------


def test_export_writes_a_valid_balanced_dataset(plant, tmp_path):
    out = tmp_path / "out"
    summary = _export(out, user="alice")

    # layout: train/<label>/*.png and test/<label>/*.png, two manifests, summary.json -- nothing else
    assert sorted(p.name for p in out.iterdir()) == ["summary.json", "test", "test.manifest", "train", "train.manifest"]
    for subset in SUBSETS:
        assert sorted(p.name for p in (out / subset).iterdir()) == ["abnormal", "normal"]
    files = _pngs(out)
    assert all(f.split("/")[0] in SUBSETS and f.split("/")[1] in LABELS for f in files)

    # every manifest line parses, names an existing image in the folder of its subset and class
    listed = []
    for subset in SUBSETS:
        refs = _manifest_refs(out, subset)
        assert refs
        for ref, name in refs:
            assert (out / ref).is_file()
            assert ref.startswith(f"{subset}/{name}/")
        listed += [ref for ref, _ in refs]
        for line in (out / f"{subset}.manifest").read_text(encoding="utf-8").splitlines():
            meta = json.loads(line)["machine-sound-metadata"]
            assert meta["human-annotated"] == "no"  # every label here is the ground truth
    assert sorted(listed) == files  # every image is listed exactly once
    assert validate_export(out) == [] and summary["problems"] == []

    # counts: 20 normal + 6 abnormal per fan -> 6 of each per fan; 6 groups per cell -> round(1.5) = 2 to test
    assert summary["counts"] == {"train": {"normal": 8, "abnormal": 8}, "test": {"normal": 4, "abnormal": 4}}
    on_disk = Counter(tuple(f.split("/")[:2]) for f in files)
    assert {s: {label: on_disk[(s, label)] for label in LABELS} for s in SUBSETS} == summary["counts"]
    assert summary["curated"] == 52 and summary["sources"] == {"ground truth": 52}
    none = {"single": 0, "double": 0, "adjudicated": 0}
    assert summary["label_quality"] == {label: {"ground_truth": 12, **none, "trusted": 12} for label in LABELS}
    assert summary["conflicts"] == 0 and summary["unreadable"] == []
    assert [(m["machine"], m["available"], m["kept"], m["sufficient"]) for m in summary["machines"]] == [
        ("fan/id_00", {"normal": 20, "abnormal": 6}, {"normal": 6, "abnormal": 6}, True),
        ("fan/id_02", {"normal": 20, "abnormal": 6}, {"normal": 6, "abnormal": 6}, True),
    ]

    # every image's clip, checked against the database: label, machine, balance per machine, no clip in both sets
    clips = _clips_by_id()
    records = summary["images"]
    assert sorted(r["file"] for r in records) == files
    per_machine = Counter()
    for r in records:
        machine, truth, path = clips[r["clip_id"]]
        assert (r["machine"], r["label"], r["path"], r["source"]) == (machine, truth, path, "ground truth")
        assert r["file"].startswith(f"{r['subset']}/{truth}/")
        per_machine[(machine, truth)] += 1
    assert per_machine == {(m, label): 6 for m in ("fan/id_00", "fan/id_02") for label in LABELS}
    train_ids = {r["clip_id"] for r in records if r["subset"] == "train"}
    test_ids = {r["clip_id"] for r in records if r["subset"] == "test"}
    assert not train_ids & test_ids and len(train_ids) + len(test_ids) == len(records) == 24
    assert not {Path(f).name for f in files if f.startswith("train/")} & {
        Path(f).name for f in files if f.startswith("test/")
    }

    # images: PNG, greyscale, at least 64 px a side, and the spectrogram of their clip
    for f in files:
        with Image.open(out / f) as image:
            assert (image.format, image.mode) == ("PNG", "L")
            assert min(image.size) >= 64
    first = records[0]
    with Image.open(out / first["file"]) as image:
        pixels = np.asarray(image)
    np.testing.assert_array_equal(pixels, image_from_features(file_features(first["path"], IMAGE_FEATURES)))

    # summary.json is the returned summary; the Export row holds it too
    assert json.loads((out / "summary.json").read_text(encoding="utf-8")) == json.loads(json.dumps(summary))
    assert read_summary(out) == json.loads(json.dumps(summary))
    with session_scope() as session:
        (row,) = session.scalars(select(Export)).all()
        assert row.id == summary["export_id"]
        assert row.out_dir == str(out.resolve()) == summary["out_dir"]
        assert row.created_by == "alice"
        assert (
            row.params
            == summary["options"]
            == {
                "prefer": "verdicts",
                "seed": 0,
                "test_fraction": 0.25,
                "cap": None,
                "machine": None,
                "source_ref_base": "",
                "trusted_only": False,
            }
        )
        assert row.summary["counts"] == summary["counts"]
        assert row.summary["export_id"] == row.id
        assert row.summary["images"] == json.loads(json.dumps(records))


def test_export_is_reproducible_with_its_seed(plant, tmp_path):
    a = _export(tmp_path / "a")
    b = _export(tmp_path / "b")
    c = _export(tmp_path / "c", ExportOptions(seed=1))
    assert _pngs(tmp_path / "a") == _pngs(tmp_path / "b")
    for subset in SUBSETS:
        assert (tmp_path / "a" / f"{subset}.manifest").read_bytes() == (
            tmp_path / "b" / f"{subset}.manifest"
        ).read_bytes()
    assert a["images"] == b["images"]
    for f in _pngs(tmp_path / "a"):  # same clip, same pixels
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    assert _pngs(tmp_path / "c") != _pngs(tmp_path / "a")
    test_a = {r["clip_id"] for r in a["images"] if r["subset"] == "test"}
    test_c = {r["clip_id"] for r in c["images"] if r["subset"] == "test"}
    assert test_a != test_c
    # every abnormal clip is kept whatever the seed, so only the split can move them between the sets
    abnormal_a = {r["clip_id"] for r in a["images"] if r["subset"] == "test" and r["label"] == "abnormal"}
    abnormal_c = {r["clip_id"] for r in c["images"] if r["subset"] == "test" and r["label"] == "abnormal"}
    assert {r["clip_id"] for r in a["images"] if r["label"] == "abnormal"} == {
        r["clip_id"] for r in c["images"] if r["label"] == "abnormal"
    }
    assert abnormal_a != abnormal_c
    assert c["counts"] == a["counts"]  # another draw, the same shape
    with session_scope() as session:
        assert [r.params["seed"] for r in session.scalars(select(Export).order_by(Export.id))] == [0, 0, 1]


def test_export_options_machine_cap_fraction_and_source_ref_base(plant, tmp_path):
    out = tmp_path / "out"
    base = "s3://bucket/datasets/fan-02/"
    options = ExportOptions(machine="fan/id_02", cap=4, test_fraction=0.5, source_ref_base=base)
    summary = _export(out, options)
    assert {r["machine"] for r in summary["images"]} == {"fan/id_02"}
    assert summary["curated"] == 26
    assert summary["counts"] == {"train": {"normal": 2, "abnormal": 2}, "test": {"normal": 2, "abnormal": 2}}
    for subset in SUBSETS:
        for line in (out / f"{subset}.manifest").read_text(encoding="utf-8").splitlines():
            ref = json.loads(line)["source-ref"]
            assert ref.startswith(base + f"{subset}/")
            assert (out / ref[len(base) :]).is_file()
    assert summary["problems"] == [] and validate_export(out, base) == []


# --- label source --------------------------------------------------------------------------------------------


def test_prefer_verdicts_or_ground_truth_when_a_pilot_contradicts_it(plant, tmp_path):
    said_abnormal = _clip_id("fan/id_00", "normal", 3)  # truth normal, the pilot says abnormal
    said_normal = _clip_id("fan/id_00", "abnormal", 2)  # truth abnormal, the pilot says normal
    annotation = record_verdict(said_abnormal, "alice", "abnormal", anomaly_type="bearing")
    record_verdict(said_normal, "alice", "normal")
    with session_scope() as session:
        verdict_date = session.get(Annotation, annotation).created_at.replace(tzinfo=None)

    verdicts = _export(tmp_path / "v", ExportOptions(prefer="verdicts"))
    truth = _export(tmp_path / "t", ExportOptions(prefer="ground-truth"))

    # with verdicts: fan/id_00 has 6 abnormal clips again (5 by truth + 1 by verdict), all kept
    by_clip = {r["clip_id"]: r for r in verdicts["images"]}
    record = by_clip[said_abnormal]
    assert (record["label"], record["source"]) == ("abnormal", "verdict")
    assert record["file"].startswith(f"{record['subset']}/abnormal/")
    assert (tmp_path / "v" / record["file"]).is_file()
    line = next(
        json.loads(text)
        for text in (tmp_path / "v" / f"{record['subset']}.manifest").read_text(encoding="utf-8").splitlines()
        if json.loads(text)["source-ref"] == record["file"]
    )
    assert line["machine-sound"] == CLASS_INDEX["abnormal"]
    assert line["machine-sound-metadata"]["human-annotated"] == "yes"
    assert line["machine-sound-metadata"]["creation-date"] == verdict_date.isoformat(timespec="seconds")
    assert said_normal not in by_clip or by_clip[said_normal]["label"] == "normal"
    assert not any(
        f.endswith(Path(by_clip[said_abnormal]["file"]).name) and "/normal/" in f for f in _pngs(tmp_path / "v")
    )

    # with the ground truth: the abnormal clip the pilot called normal is abnormal (all 6 kept)
    by_clip = {r["clip_id"]: r for r in truth["images"]}
    assert (by_clip[said_normal]["label"], by_clip[said_normal]["source"]) == ("abnormal", "ground truth")
    assert by_clip[said_normal]["file"].startswith(f"{by_clip[said_normal]['subset']}/abnormal/")
    assert said_abnormal not in by_clip or by_clip[said_abnormal]["label"] == "normal"
    clips = _clips_by_id()
    assert all(r["label"] == clips[r["clip_id"]][1] for r in truth["images"])  # every label is the truth

    for summary in (verdicts, truth):  # both exports see the two disagreements
        assert summary["conflicts"] == 2
        assert summary["problems"] == []
    assert verdicts["sources"] == {"verdict": 2, "ground truth": 50}
    assert truth["sources"] == {"ground truth": 52}
    assert "verdicts" in verdicts["label_source"] and "ground truth" in truth["label_source"]
    assert verdicts["options"]["prefer"] == "verdicts" and truth["options"]["prefer"] == "ground-truth"


# --- the target folder ---------------------------------------------------------------------------------------


def test_summary_counts_label_quality_per_class_and_trusted_only_keeps_trusted_labels(plant, tmp_path):
    """Per class: single-annotator, double-confirmed and adjudicated labels; ``trusted_only`` drops the labels one
    annotator alone gives (here against the layout: the clips go, they do not fall back to ground truth)."""
    from core.access import Actor, Role
    from core.workflows.review import adjudicate

    single = _clip_id("fan/id_00", "normal", 0)  # ana alone: abnormal
    double = _clip_id("fan/id_00", "normal", 1)  # ana and bo: abnormal
    settled = _clip_id("fan/id_00", "normal", 2)  # disputed, then adjudicated abnormal
    ana, bo = Actor("ana", Role.ANNOTATOR), Actor("bo", Role.ANNOTATOR)
    record_verdict(single, "ana", "abnormal", actor=ana)
    for clip_id in (double, settled):
        record_verdict(clip_id, "ana", "abnormal", actor=ana)
    record_verdict(double, "bo", "abnormal", actor=bo)
    record_verdict(settled, "bo", "normal", actor=bo)
    adjudicate(settled, "abnormal", "rubbing at 1 s", anomaly_type="rubbing", actor=Actor("eve", Role.ENGINEER))
    options = ExportOptions(machine="fan/id_00", cap=9)

    every = _export(tmp_path / "all", options)
    trusted = _export(tmp_path / "trusted", replace(options, trusted_only=True))

    by_clip = {r["clip_id"]: r for r in every["images"]}
    assert {c: (by_clip[c]["label"], by_clip[c]["source"], by_clip[c]["quality"], by_clip[c]["trusted"])
            for c in (single, double, settled)} == {
        single: ("abnormal", "verdict", "single", False), double: ("abnormal", "verdict", "double", True),
        settled: ("abnormal", "adjudication", "adjudicated", True)}  # fmt: skip (9 abnormal: all kept)
    assert every["label_quality"]["abnormal"] == {"ground_truth": 6, "single": 1, "double": 1, "adjudicated": 1,
                                                  "trusted": 8}  # fmt: skip
    assert every["label_quality"]["normal"]["single"] == 0
    assert trusted["label_quality"]["abnormal"] == {"ground_truth": 6, "single": 0, "double": 1, "adjudicated": 1,
                                                    "trusted": 8}  # fmt: skip
    assert single not in {r["clip_id"] for r in trusted["images"]}
    assert all(r["trusted"] for r in trusted["images"])
    assert trusted["options"]["trusted_only"] is True and "only trusted labels" in trusted["label_source"]
    assert "single-annotator verdicts included" in every["label_source"]
    assert "adjudication stands above" in every["label_source"]
    line = next(json.loads(text) for subset in SUBSETS
                for text in (tmp_path / "all" / f"{subset}.manifest").read_text(encoding="utf-8").splitlines()
                if json.loads(text)["source-ref"] == by_clip[settled]["file"])  # fmt: skip
    assert line["machine-sound-metadata"]["human-annotated"] == "yes"


def test_non_empty_folder_refused_unless_overwrite(plant, tmp_path):
    out = tmp_path / "out"
    first = _export(out)
    before = {f: (out / f).read_bytes() for f in _pngs(out)}
    with pytest.raises(BadInputError) as info:
        _export(out, ExportOptions(seed=3))
    assert info.value.reason == Reason.INVALID_PARAMETER and "not empty" in info.value.detail
    assert {f: (out / f).read_bytes() for f in _pngs(out)} == before  # untouched
    assert read_summary(out)["export_id"] == first["export_id"]

    (out / "train" / "normal" / "stale.png").write_bytes(b"left from an old export")
    second = _export(out, ExportOptions(seed=3), overwrite=True)
    assert not (out / "train" / "normal" / "stale.png").exists()  # the old export is replaced whole
    assert sorted(r["file"] for r in second["images"]) == _pngs(out)
    assert read_summary(out)["export_id"] == second["export_id"] != first["export_id"]
    assert validate_export(out) == []
    with session_scope() as session:
        assert len(session.scalars(select(Export)).all()) == 2  # the refused attempt left no row


def test_folder_with_foreign_files_refused_even_with_overwrite(plant, tmp_path):
    out = tmp_path / "precious"
    (out / "train").mkdir(parents=True)
    (out / "notes.txt").write_text("do not delete", encoding="utf-8")
    (out / "train" / "photo.png").write_bytes(b"holiday")
    for overwrite in (False, True):
        with pytest.raises(BadInputError) as info:
            _export(out, overwrite=overwrite)
        assert info.value.reason == Reason.INVALID_PARAMETER
    assert "other files" in info.value.detail and "untouched" in info.value.detail
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["notes.txt", "train", "train/photo.png"]
    assert (out / "notes.txt").read_text(encoding="utf-8") == "do not delete"
    assert (out / "train" / "photo.png").read_bytes() == b"holiday"
    with session_scope() as session:
        assert session.scalars(select(Export)).all() == []


def test_target_that_is_a_file_refused(plant, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x", encoding="utf-8")
    with pytest.raises(BadInputError) as info:
        _export(target, overwrite=True)
    assert "not a folder" in info.value.detail
    assert target.read_text(encoding="utf-8") == "x"


def test_existing_empty_folder_is_used(plant, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert _export(out)["problems"] == []


# --- bad clips and nothing to export -------------------------------------------------------------------------


def test_unreadable_clip_is_listed_and_the_export_goes_on(plant_dir, tmp_path):
    copy = tmp_path / "plant"
    shutil.copytree(plant_dir, copy)  # the session's plant stays intact
    assert ingest([str(copy)], n_jobs=1).ingested == 52
    broken = _clip_id("fan/id_02", "abnormal", 1)  # abnormal: every one is kept, so it is surely exported
    path = _clips_by_id()[broken][2]
    assert path.startswith(str(copy))
    Path(path).write_bytes(b"\x00garbage, no longer audio\xff" * 100)

    summary = _export(tmp_path / "out")
    assert len(summary["unreadable"]) == 1
    (bad,) = summary["unreadable"]
    assert bad["path"] == path
    assert bad["reason"] in {r.value for r in Reason} and bad["detail"]
    assert broken not in {r["clip_id"] for r in summary["images"]}
    assert len(summary["images"]) == 23 == len(_pngs(tmp_path / "out"))
    total = Counter(r["label"] for r in summary["images"])
    assert total == {"normal": 12, "abnormal": 11}
    refs = [ref for s in SUBSETS for ref, _ in _manifest_refs(tmp_path / "out", s)]
    assert len(refs) == 23 and all((tmp_path / "out" / ref).is_file() for ref in refs)
    assert summary["problems"] == []
    assert read_summary(tmp_path / "out")["unreadable"] == summary["unreadable"]


def test_nothing_to_export_in_an_empty_database(tmp_path):
    with pytest.raises(BadInputError) as info:
        _export(tmp_path / "out")
    assert info.value.reason == Reason.INVALID_PARAMETER
    assert "nothing to export" in info.value.detail and "no labelled or reviewed clips yet" in info.value.detail
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    with session_scope() as session:
        assert session.scalars(select(Export)).all() == []


def test_nothing_to_export_with_only_normal_clips(tmp_path):
    for i in range(4):
        write_wav(tmp_path / "src" / "fan" / "id_00" / "normal" / f"{i:08d}.wav", tone(1.0, seed=i))
    assert ingest([str(tmp_path / "src")], n_jobs=1).ingested == 4
    with pytest.raises(BadInputError) as info:
        _export(tmp_path / "out")
    assert "nothing to export" in info.value.detail
    assert "fan/id_00" in info.value.detail and "2 more abnormal" in info.value.detail
    assert not (tmp_path / "out" / "summary.json").exists()


def test_machine_filter_matching_no_machine_names_the_known_ones(plant, tmp_path):
    with pytest.raises(BadInputError) as info:
        _export(tmp_path / "out", ExportOptions(machine="pump"))
    assert info.value.detail == "no such machine 'pump' (known: fan/id_00, fan/id_02)"
    assert not (tmp_path / "out").exists()


# --- reading an export back ----------------------------------------------------------------------------------


def test_read_images_matches_the_manifests(plant, tmp_path):
    out = tmp_path / "out"
    _export(out)
    for subset in SUBSETS:
        arrays, labels, records = read_images(out, subset)
        refs = _manifest_refs(out, subset)
        assert len(arrays) == len(labels) == len(records) == len(refs)
        assert [r["file"] for r in records] == [ref for ref, _ in refs]
        assert labels.tolist() == [CLASS_INDEX[name] for _, name in refs]
        assert set(labels.tolist()) == {0, 1}
        for array, record in zip(arrays, records, strict=True):
            assert array.dtype == np.uint8 and array.ndim == 2 and min(array.shape) >= 64
            with Image.open(out / record["file"]) as image:
                np.testing.assert_array_equal(array, np.asarray(image))
            assert record["subset"] == subset


def test_read_summary_and_images_refuse_a_non_export(tmp_path):
    with pytest.raises(BadInputError) as info:
        read_summary(tmp_path)
    assert info.value.reason == Reason.NOT_FOUND
    (tmp_path / "summary.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(BadInputError) as info:
        read_images(tmp_path, "train")
    assert info.value.reason == Reason.CORRUPT


def test_read_images_names_a_damaged_image(plant, tmp_path):
    out = tmp_path / "out"
    summary = _export(out)
    victim = next(r for r in summary["images"] if r["subset"] == "test")
    (out / victim["file"]).write_bytes(b"not a png")
    with pytest.raises(BadInputError) as info:
        read_images(out, "test")
    assert info.value.reason == Reason.CORRUPT and info.value.path == str(out / victim["file"])
    assert len(read_images(out, "train")[0]) == 16  # the other subset still reads


def test_a_failed_overwrite_keeps_the_earlier_export(plant, tmp_path):
    out = tmp_path / "out"
    export_dataset(out, n_jobs=1)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(BadInputError, match="no such machine 'pump'"):
        export_dataset(out, ExportOptions(machine="pump"), overwrite=True, n_jobs=1)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_an_author_name_longer_than_records_keep_is_refused_before_any_work(tmp_path):
    with pytest.raises(BadInputError, match=f"user '{'u' * 23}…' is 200 characters; at most 128"):
        export_dataset(tmp_path / "never", user="u" * 200, n_jobs=1)
    assert not (tmp_path / "never").exists()


def test_nothing_to_export_creates_no_folder(tmp_path):
    with pytest.raises(BadInputError):
        export_dataset(tmp_path / "never", n_jobs=1)
    assert not (tmp_path / "never").exists()


def test_a_bad_option_with_overwrite_keeps_the_earlier_export(plant, tmp_path):
    out = tmp_path / "out"
    export_dataset(out, n_jobs=1)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(BadInputError, match="test_fraction"):
        export_dataset(out, ExportOptions(test_fraction=1.5), overwrite=True, n_jobs=1)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert (
        "the dataset's ground truth wins where"
        in export_dataset(out, ExportOptions(prefer="ground-truth"), overwrite=True, n_jobs=1)["label_source"]
    )


def test_an_export_as_one_zip_of_its_files_made_once(plant, tmp_path, data_dir):
    import zipfile

    from core.workflows.export import export_zip

    out = tmp_path / "out"
    summary = _export(out)
    (out / "notes.txt").write_text("not part of the export")
    path = export_zip(out)
    assert path == data_dir / "exports" / "zips" / f"export-{summary['export_id']}.zip"
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert sorted(names) == sorted(["summary.json", "train.manifest", "test.manifest", *_pngs(out)])
        for name in names:
            assert archive.read(name) == (out / name).read_bytes()
        kinds = {i.filename: i.compress_type for i in archive.infolist()}
        assert {kinds[n] for n in names if n.endswith(".png")} == {zipfile.ZIP_STORED}
        assert kinds["summary.json"] == zipfile.ZIP_DEFLATED
    made = path.stat().st_mtime_ns
    assert export_zip(out) == path and path.stat().st_mtime_ns == made  # reused, not rewritten
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no staging file left


def test_an_export_zip_refuses_a_damaged_export_and_needs_the_export_right(plant, tmp_path):
    from core.access import Actor
    from core.errors import PermissionDeniedError
    from core.workflows.export import export_zip

    out = tmp_path / "out"
    summary = _export(out)
    with pytest.raises(PermissionDeniedError):
        export_zip(out, actor=Actor("ann", "annotator"))
    (out / summary["images"][0]["file"]).unlink()
    with pytest.raises(BadInputError, match="the export lacks") as caught:
        export_zip(out)
    assert caught.value.reason == Reason.NOT_FOUND
    with pytest.raises(BadInputError):
        export_zip(tmp_path / "nothing")


def test_two_exports_started_in_one_second_get_two_folders(data_dir, monkeypatch):
    """The default folder is named by the second: a second export in that second was refused, 'folder is not empty'."""
    from datetime import UTC, datetime

    from core.workflows import export

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 12, 2, 13, 30, 53, tzinfo=UTC)

    monkeypatch.setattr(export, "datetime", Frozen)
    first, second, third = (export.default_export_dir() for _ in range(3))
    assert [f.name for f in (first, second, third)] == ["export-20261202-133053", "export-20261202-133053-2",
                                                        "export-20261202-133053-3"]  # fmt: skip
    assert all(f.is_dir() and not any(f.iterdir()) and f.parent == data_dir / "exports" for f in (first, second, third))
