"""core.workflows.manifest: SageMaker Ground Truth image-classification JSON Lines, line-by-line validation naming each
problem's line, Rekognition Custom Labels' image and manifest limits, and whole-export checks."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import core.workflows.manifest as manifest
from core.workflows.manifest import (
    CLASS_INDEX,
    JOB_NAME,
    METADATA,
    TYPE,
    ManifestEntry,
    image_problems,
    local_image,
    manifest_line,
    parse_line,
    read_manifest,
    validate_export,
)

CREATED = datetime(2026, 11, 25, 15, 0, 0, tzinfo=UTC)


def _record(source: str = "train/normal/a.png", name: str = "normal") -> dict:
    return json.loads(manifest_line(source, name, human_annotated=False, created=CREATED))


def _png(path: Path, width: int = 64, height: int = 64, *, seed: int = 0, fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def _write_manifest(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


# --- manifest_line -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "index"), [("normal", 0), ("abnormal", 1)])
@pytest.mark.parametrize(("human", "flag"), [(True, "yes"), (False, "no")])
def test_manifest_line_is_ground_truth_image_classification(name, index, human, flag):
    created = datetime(2026, 11, 25, 15, 4, 5, 987654, tzinfo=UTC)
    text = manifest_line(f"s3://bucket/ds/train/{name}/x.png", name, human_annotated=human, created=created)
    assert "\n" not in text  # one JSON object per line
    record = json.loads(text)
    assert set(record) == {"source-ref", "machine-sound", "machine-sound-metadata"}
    assert record["source-ref"] == f"s3://bucket/ds/train/{name}/x.png"
    assert record["machine-sound"] == index and type(record["machine-sound"]) is int
    meta = record["machine-sound-metadata"]
    assert meta["class-name"] == name
    assert meta["confidence"] == 1.0
    assert meta["human-annotated"] == flag
    assert meta["creation-date"] == "2026-11-25T15:04:05"
    assert datetime.fromisoformat(meta["creation-date"]) == datetime(2026, 11, 25, 15, 4, 5)
    assert meta["type"] == "groundtruth/image-classification"
    assert meta["job-name"] == JOB_NAME
    entry, problems = parse_line(text, 1)
    assert problems == []
    assert entry == ManifestEntry(f"s3://bucket/ds/train/{name}/x.png", name, 1)


def test_manifest_line_keeps_non_ascii_paths():
    text = manifest_line("train/normal/müll_é.png", "normal", human_annotated=True, created=CREATED)
    assert "müll_é.png" in text
    assert parse_line(text, 1)[0].source_ref == "train/normal/müll_é.png"


# --- parse_line ----------------------------------------------------------------------------------------------


def _broken(change) -> str:
    record = _record()
    change(record)
    return json.dumps(record)


def _set_meta(key, value):
    return lambda r: r[METADATA].__setitem__(key, value)


def _drop_meta(key):
    return lambda r: r[METADATA].pop(key)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "not JSON"),
        ('["a", "list"]', "not a JSON object"),
        ("42", "not a JSON object"),
        (_broken(lambda r: r.pop("source-ref")), "'source-ref' is missing or empty"),
        (_broken(lambda r: r.__setitem__("source-ref", "")), "'source-ref' is missing or empty"),
        (_broken(lambda r: r.__setitem__("source-ref", 12)), "'source-ref' is missing or empty"),
        (_broken(lambda r: r.pop("machine-sound")), "class index (an integer)"),
        (_broken(lambda r: r.__setitem__("machine-sound", "0")), "class index (an integer)"),
        (_broken(lambda r: r.__setitem__("machine-sound", 0.0)), "class index (an integer)"),
        (_broken(lambda r: r.__setitem__("machine-sound", False)), "class index (an integer)"),
        (_broken(lambda r: r.pop(METADATA)), f"'{METADATA}' is missing"),
        (_broken(lambda r: r.__setitem__(METADATA, "normal")), f"'{METADATA}' is missing"),
        (_broken(_set_meta("class-name", "broken")), "class-name 'broken' is not one of"),
        (_broken(_drop_meta("class-name")), "class-name None is not one of"),
        (_broken(lambda r: r.__setitem__("machine-sound", 1)), "class index 1 does not match class-name 'normal'"),
        (_broken(_set_meta("confidence", 1.5)), "confidence must be a number in [0, 1]"),
        (_broken(_set_meta("confidence", -0.01)), "confidence must be a number in [0, 1]"),
        (_broken(_set_meta("confidence", "high")), "confidence must be a number in [0, 1]"),
        (_broken(_drop_meta("confidence")), "confidence must be a number in [0, 1]"),
        (_broken(_set_meta("human-annotated", True)), "human-annotated must be 'yes' or 'no'"),
        (_broken(_set_meta("type", "groundtruth/object-detection")), "type must be"),
        (_broken(_drop_meta("type")), "type must be"),
        (_broken(_set_meta("creation-date", "yesterday")), "creation-date 'yesterday' is not an ISO 8601 time"),
        (_broken(_set_meta("creation-date", "2026-13-45T99:00:00")), "is not an ISO 8601 time"),
        (_broken(_drop_meta("creation-date")), "is not an ISO 8601 time"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 45 else None,
)
def test_parse_line_names_each_problem_and_its_line(text, expected):
    entry, problems = parse_line(text, 7)
    assert entry is None
    assert problems, text
    assert all(p.startswith("line 7: ") for p in problems)
    assert any(expected in p for p in problems), problems


def test_parse_line_reports_every_problem_of_a_line_at_once():
    record = _record(name="abnormal")
    record["machine-sound"] = 0
    record[METADATA]["confidence"] = 2
    record[METADATA]["type"] = "x"
    _, problems = parse_line(json.dumps(record), 3)
    assert len(problems) == 3
    assert any("does not match" in p for p in problems)
    assert any("confidence" in p for p in problems)
    assert any("type must be" in p for p in problems)


@pytest.mark.parametrize("confidence", [0, 0.0, 0.5, 1])
def test_parse_line_accepts_confidence_in_range(confidence):
    text = _broken(_set_meta("confidence", confidence))
    entry, problems = parse_line(text, 1)
    assert problems == [] and entry is not None


def test_class_index_table():
    assert CLASS_INDEX == {"normal": 0, "abnormal": 1}
    assert TYPE == "groundtruth/image-classification"


# --- read_manifest -------------------------------------------------------------------------------------------


def test_read_manifest_reports_each_problem_with_file_and_line(tmp_path):
    good = manifest_line("train/normal/a.png", "normal", human_annotated=False, created=CREATED)
    other = manifest_line("train/abnormal/b.png", "abnormal", human_annotated=True, created=CREATED)
    path = _write_manifest(
        tmp_path / "train.manifest",
        [
            good,  # 1
            "",  # 2: empty
            "{oops",  # 3: not JSON
            other,  # 4
            good,  # 5: duplicate of line 1
            "   ",  # 6: blank
            _broken(_set_meta("confidence", 3)),  # 7: bad confidence (and a duplicate source-ref, never reached)
        ],
    )
    entries, problems = read_manifest(path)
    assert [(e.line, e.source_ref, e.class_name) for e in entries] == [
        (1, "train/normal/a.png", "normal"),
        (4, "train/abnormal/b.png", "abnormal"),
        (5, "train/normal/a.png", "normal"),
    ]
    assert all(p.startswith(f"{path}: line ") for p in problems)
    assert len(problems) == 5
    joined = "\n".join(problems)
    assert f"{path}: line 2: empty line" in joined
    assert f"{path}: line 3: not JSON" in joined
    assert f"{path}: line 5: train/normal/a.png already listed on line 1" in joined
    assert f"{path}: line 6: empty line" in joined
    assert f"{path}: line 7: confidence" in joined


def test_read_manifest_clean_file(tmp_path):
    lines = [manifest_line(f"x/{i}.png", "abnormal", human_annotated=False, created=CREATED) for i in range(5)]
    entries, problems = read_manifest(_write_manifest(tmp_path / "m", lines))
    assert problems == []
    assert [e.line for e in entries] == [1, 2, 3, 4, 5]


def test_read_manifest_missing_and_undecodable(tmp_path):
    entries, problems = read_manifest(tmp_path / "absent.manifest")
    assert entries == [] and len(problems) == 1 and "cannot read" in problems[0]
    (tmp_path / "binary.manifest").write_bytes(b"\xff\xfe\x00\x81garbage")
    entries, problems = read_manifest(tmp_path / "binary.manifest")
    assert entries == [] and "cannot read" in problems[0]


def test_read_manifest_line_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest, "MAX_MANIFEST_LINES", 4)
    lines = [manifest_line(f"x/{i}.png", "normal", human_annotated=False, created=CREATED) for i in range(4)]
    _, problems = read_manifest(_write_manifest(tmp_path / "four.manifest", lines))
    assert len(problems) == 1
    assert "4 lines" in problems[0] and "fewer than 4" in problems[0]
    entries, problems = read_manifest(_write_manifest(tmp_path / "three.manifest", lines[:3]))
    assert problems == [] and len(entries) == 3


def test_real_limits_are_rekognitions():
    assert manifest.MAX_MANIFEST_LINES == 250_000
    assert (manifest.MIN_IMAGE_SIDE, manifest.MAX_IMAGE_SIDE) == (64, 4096)
    assert manifest.MAX_IMAGE_BYTES == 15 * 1024 * 1024


# --- image_problems ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "suffix"), [("PNG", "png"), ("JPEG", "jpg")])
def test_image_problems_accepts_png_and_jpeg(tmp_path, fmt, suffix):
    assert image_problems(_png(tmp_path / f"ok.{suffix}", 64, 300, fmt=fmt)) == []


@pytest.mark.parametrize(("width", "height"), [(32, 32), (63, 200), (200, 10)])
def test_image_problems_too_small(tmp_path, width, height):
    path = _png(tmp_path / "small.png", width, height)
    problems = image_problems(path)
    assert len(problems) == 1
    assert f"{width}x{height} px" in problems[0] and str(path) in problems[0]


def test_image_problems_too_large_side(tmp_path, monkeypatch):
    path = _png(tmp_path / "wide.png", 120, 64)
    assert image_problems(path) == []
    monkeypatch.setattr(manifest, "MAX_IMAGE_SIDE", 100)
    problems = image_problems(path)
    assert len(problems) == 1 and "120x64 px" in problems[0] and "64-100" in problems[0]


def test_image_problems_too_many_bytes(tmp_path, monkeypatch):
    path = _png(tmp_path / "a.png", 64, 64)
    monkeypatch.setattr(manifest, "MAX_IMAGE_BYTES", 100)
    problems = image_problems(path)
    assert len(problems) == 1 and "bytes" in problems[0]


def test_image_problems_not_an_image(tmp_path):
    path = tmp_path / "fake.png"
    path.write_bytes(b"RIFF....WAVEfmt this is audio, not a picture" * 10)
    problems = image_problems(path)
    assert len(problems) == 1 and "not a readable image" in problems[0] and str(path) in problems[0]


def test_image_problems_missing(tmp_path):
    assert image_problems(tmp_path / "gone.png") == [f"{tmp_path / 'gone.png'}: image missing"]


@pytest.mark.parametrize("fmt", ["GIF", "BMP"])
def test_image_problems_refuses_other_formats(tmp_path, fmt):
    path = _png(tmp_path / "named.png", 64, 64, fmt=fmt)  # the name says png, the content does not
    problems = image_problems(path)
    assert len(problems) == 1
    assert f"format {fmt}" in problems[0] and "PNG or JPEG" in problems[0]


def test_image_problems_several_at_once(tmp_path):
    problems = image_problems(_png(tmp_path / "tiny.gif", 16, 16, fmt="GIF"))
    assert len(problems) == 2


# --- local_image ---------------------------------------------------------------------------------------------


def test_local_image(tmp_path):
    root = tmp_path / "export"
    root.mkdir()
    assert local_image(root, "train/normal/a.png") == (root / "train/normal/a.png").resolve()
    assert local_image(root, "s3://b/p/train/normal/a.png", "s3://b/p/") == (root / "train/normal/a.png").resolve()
    assert local_image(root, "s3://other/train/a.png", "s3://b/p/") is None
    assert local_image(root, "../x.png") is None
    assert local_image(root, "train/../../x.png") is None
    assert local_image(root, str(tmp_path / "x.png")) is None  # absolute
    assert local_image(root, "s3://b/p/a.png") is None  # a remote reference without its base


# --- validate_export -----------------------------------------------------------------------------------------


@pytest.fixture
def export_dir(tmp_path) -> Path:
    """A valid hand-made export: two distinct images per label in train, one per label in test."""
    root = tmp_path / "export"
    plan = {
        "train": [("normal", "n1"), ("normal", "n2"), ("abnormal", "a1"), ("abnormal", "a2")],
        "test": [("normal", "n3"), ("abnormal", "a3")],
    }
    seed = 0
    for subset, items in plan.items():
        lines = []
        for label, stem in items:
            seed += 1
            _png(root / subset / label / f"{stem}.png", 64, 80, seed=seed)
            lines.append(manifest_line(f"{subset}/{label}/{stem}.png", label, human_annotated=False, created=CREATED))
        _write_manifest(root / f"{subset}.manifest", lines)
    return root


def _append(root: Path, subset: str, source: str, label: str) -> None:
    with (root / f"{subset}.manifest").open("a", encoding="utf-8") as fh:
        fh.write(manifest_line(source, label, human_annotated=False, created=CREATED) + "\n")


def test_validate_export_accepts_a_good_export(export_dir):
    assert validate_export(export_dir) == []


def test_validate_export_same_image_in_both_sets(export_dir):
    shutil.copy(export_dir / "train/normal/n1.png", export_dir / "test/normal/copy.png")  # same bytes, other name
    _append(export_dir, "test", "test/normal/copy.png", "normal")
    problems = validate_export(export_dir)
    assert problems == ["test/normal/copy.png is in both the train and the test set"]


def test_validate_export_fewer_than_two_labels(export_dir):
    _write_manifest(
        export_dir / "test.manifest",
        [manifest_line("test/normal/n3.png", "normal", human_annotated=False, created=CREATED)],
    )
    problems = validate_export(export_dir)
    assert len(problems) == 1
    assert "test.manifest" in problems[0] and "1 label(s) ['normal']" in problems[0] and "at least 2" in problems[0]


def test_validate_export_empty_manifest(export_dir):
    (export_dir / "train.manifest").write_text("", encoding="utf-8")
    problems = validate_export(export_dir)
    assert len(problems) == 1 and "0 label(s)" in problems[0]


def test_validate_export_source_ref_escaping_the_folder(export_dir):
    _png(export_dir.parent / "x.png", 64, 64, seed=99)  # it exists, but outside the export
    _append(export_dir, "train", "../x.png", "normal")
    problems = validate_export(export_dir)
    assert len(problems) == 1
    assert "train.manifest: line 5: ../x.png is not a file of this export" in problems[0]


def test_validate_export_missing_and_bad_images(export_dir):
    (export_dir / "test/abnormal/a3.png").unlink()
    _png(export_dir / "train/normal/n2.png", 32, 32, seed=5)
    problems = validate_export(export_dir)
    assert len(problems) == 2
    assert any("a3.png: image missing" in p for p in problems)
    assert any("n2.png: 32x32 px" in p for p in problems)


def test_validate_export_missing_manifest(export_dir):
    (export_dir / "test.manifest").unlink()
    problems = validate_export(export_dir)
    assert any("test.manifest: cannot read" in p for p in problems)
    assert any("0 label(s)" in p for p in problems)


def test_validate_export_bad_line_is_named(export_dir):
    with (export_dir / "train.manifest").open("a", encoding="utf-8") as fh:
        fh.write("{broken\n")
    problems = validate_export(export_dir)
    assert len(problems) == 1 and "train.manifest: line 5: not JSON" in problems[0]


def test_validate_export_with_a_source_ref_base(tmp_path, export_dir):
    base = "s3://bucket/datasets/fan/"
    for subset in ("train", "test"):
        path = export_dir / f"{subset}.manifest"
        lines = path.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines]
        for record in records:
            record["source-ref"] = base + record["source-ref"]
        _write_manifest(path, [json.dumps(r) for r in records])
    assert validate_export(export_dir, base) == []
    problems = validate_export(export_dir)  # without the base, the s3:// references are not local files
    assert len(problems) == 6 and all("is not a file of this export" in p for p in problems)


def test_creation_dates_are_utc_whatever_zone_the_database_answered_in():
    paris = datetime(2026, 11, 25, 16, 30, tzinfo=timezone(timedelta(hours=1)))
    line = json.loads(manifest_line("a.png", "normal", human_annotated=True, created=paris))
    assert line["machine-sound-metadata"]["creation-date"] == "2026-11-25T15:30:00"
    naive = json.loads(manifest_line("a.png", "normal", human_annotated=True, created=datetime(2026, 11, 25, 15, 30)))
    assert naive["machine-sound-metadata"]["creation-date"] == "2026-11-25T15:30:00"
