"""SageMaker Ground Truth image-classification manifests, the format Rekognition Custom Labels reads.

One JSON object per line::

    {"source-ref": "s3://bucket/prefix/train/abnormal/fan_id_00_12_x.png",
     "machine-sound": 1,
     "machine-sound-metadata": {"class-name": "abnormal", "confidence": 1.0,
        "human-annotated": "yes", "creation-date": "2026-11-25T15:00:00",
        "type": "groundtruth/image-classification", "job-name": "labeling-job/machine-sound"}}

The validators here run before anything is sent to AWS, so a bad dataset fails on the
user's machine with the file and line named, not an hour into a cloud training run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from core.clock import as_utc
from core.vocabulary import Label

LABEL_ATTRIBUTE = "machine-sound"
METADATA = f"{LABEL_ATTRIBUTE}-metadata"
TYPE = "groundtruth/image-classification"
JOB_NAME = f"labeling-job/{LABEL_ATTRIBUTE}"
CLASS_INDEX = {Label.NORMAL.value: 0, Label.ABNORMAL.value: 1}

# Rekognition Custom Labels' limits on training and test images and manifests.
IMAGE_FORMATS = ("PNG", "JPEG")
MIN_IMAGE_SIDE = 64  # px
MAX_IMAGE_SIDE = 4096  # px
MAX_IMAGE_BYTES = 15 * 1024 * 1024
MAX_MANIFEST_LINES = 250_000  # lines (images) per manifest must stay below this
MIN_LABELS = 2


@dataclass(frozen=True)
class ManifestEntry:
    """One parsed manifest line."""

    source_ref: str
    class_name: str
    line: int


def manifest_line(source_ref: str, class_name: str, *, human_annotated: bool, created: datetime) -> str:
    """One manifest line (JSON, no trailing newline) for an image labelled ``class_name``."""
    record = {
        "source-ref": source_ref,
        LABEL_ATTRIBUTE: CLASS_INDEX[class_name],
        METADATA: {
            "class-name": class_name,
            "confidence": 1.0,
            "human-annotated": "yes" if human_annotated else "no",
            "creation-date": as_utc(created).replace(tzinfo=None).isoformat(timespec="seconds"),
            "type": TYPE,
            "job-name": JOB_NAME,
        },
    }
    return json.dumps(record, ensure_ascii=False)


def parse_line(text: str, line: int) -> tuple[ManifestEntry | None, list[str]]:
    """The entry on one manifest line and the problems found with it (``line`` counts from 1)."""
    where = f"line {line}"
    try:
        record = json.loads(text)
    except ValueError as exc:
        return None, [f"{where}: not JSON ({exc.msg})"]
    if not isinstance(record, dict):
        return None, [f"{where}: not a JSON object"]
    problems = []
    source = record.get("source-ref")
    if not isinstance(source, str) or not source:
        problems.append(f"{where}: 'source-ref' is missing or empty")
    index = record.get(LABEL_ATTRIBUTE)
    if not isinstance(index, int) or isinstance(index, bool):
        problems.append(f"{where}: '{LABEL_ATTRIBUTE}' must be the class index (an integer)")
    meta = record.get(METADATA)
    if not isinstance(meta, dict):
        return None, [*problems, f"{where}: '{METADATA}' is missing"]
    name = meta.get("class-name")
    if name not in CLASS_INDEX:
        problems.append(f"{where}: class-name {name!r} is not one of {sorted(CLASS_INDEX)}")
    elif isinstance(index, int) and CLASS_INDEX[name] != index:
        problems.append(f"{where}: class index {index} does not match class-name {name!r}")
    confidence = meta.get("confidence")
    if not isinstance(confidence, int | float) or not 0.0 <= confidence <= 1.0:
        problems.append(f"{where}: confidence must be a number in [0, 1]")
    if meta.get("human-annotated") not in ("yes", "no"):
        problems.append(f"{where}: human-annotated must be 'yes' or 'no'")
    if meta.get("type") != TYPE:
        problems.append(f"{where}: type must be {TYPE!r}")
    try:
        datetime.fromisoformat(str(meta.get("creation-date")))
    except ValueError:
        problems.append(f"{where}: creation-date {meta.get('creation-date')!r} is not an ISO 8601 time")
    if problems:
        return None, problems
    return ManifestEntry(source, name, line), []


def read_manifest(path: Path) -> tuple[list[ManifestEntry], list[str]]:
    """All entries of a manifest file and every problem, each naming the file and line."""
    entries, problems = [], []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return [], [f"{path}: cannot read ({exc})"]
    if len(lines) >= MAX_MANIFEST_LINES:
        problems.append(f"{path}: {len(lines)} lines; Rekognition needs fewer than {MAX_MANIFEST_LINES}")
    seen: dict[str, int] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            problems.append(f"{path}: line {number}: empty line")
            continue
        entry, found = parse_line(text, number)
        problems += [f"{path}: {p}" for p in found]
        if entry is None:
            continue
        if entry.source_ref in seen:
            first = seen[entry.source_ref]
            problems.append(f"{path}: line {number}: {entry.source_ref} already listed on line {first}")
        seen[entry.source_ref] = number
        entries.append(entry)
    return entries, problems


def image_problems(path: Path) -> list[str]:
    """Why Rekognition would refuse this image file (empty when it is fine)."""
    try:
        size = path.stat().st_size
        with Image.open(path) as image:
            fmt, (width, height) = image.format, image.size
    except FileNotFoundError:
        return [f"{path}: image missing"]
    except (OSError, UnidentifiedImageError) as exc:
        return [f"{path}: not a readable image ({exc})"]
    problems = []
    if fmt not in IMAGE_FORMATS:
        problems.append(f"{path}: format {fmt}; Rekognition reads {' or '.join(IMAGE_FORMATS)}")
    if min(width, height) < MIN_IMAGE_SIDE or max(width, height) > MAX_IMAGE_SIDE:
        problems.append(f"{path}: {width}x{height} px; each side must be {MIN_IMAGE_SIDE}-{MAX_IMAGE_SIDE} px")
    if size > MAX_IMAGE_BYTES:
        problems.append(f"{path}: {size} bytes; at most {MAX_IMAGE_BYTES} are accepted")
    return problems


def local_image(root: Path, source_ref: str, base: str = "") -> Path | None:
    """The file under ``root`` that ``source_ref`` names (``base`` + a path relative to ``root``),
    or None when it points elsewhere (``..`` or absolute paths are never followed)."""
    relative = source_ref[len(base) :] if base and source_ref.startswith(base) else source_ref
    if "://" in relative or relative.startswith("/"):
        return None
    target = (root / relative).resolve()
    return target if target.is_relative_to(root.resolve()) else None


def validate_export(root: Path, base: str = "") -> list[str]:
    """Every problem that would make Rekognition refuse the dataset in ``root`` (empty: send it).

    Checks both manifests line by line, every image they name, at least
    :data:`MIN_LABELS` labels with one image or more each in both sets, and that no
    image (by name or by content) is in both sets.
    """
    root = Path(root)
    problems: list[str] = []
    digests: dict[str, dict[str, str]] = {}
    for subset in ("train", "test"):
        manifest = root / f"{subset}.manifest"
        entries, found = read_manifest(manifest)
        problems += found
        labels = {e.class_name for e in entries}
        if len(labels) < MIN_LABELS:
            problems.append(f"{manifest}: {len(labels)} label(s) {sorted(labels)}; at least {MIN_LABELS} are needed")
        digests[subset] = {}
        for entry in entries:
            image = local_image(root, entry.source_ref, base)
            if image is None:
                problems.append(f"{manifest}: line {entry.line}: {entry.source_ref} is not a file of this export")
                continue
            found_image = image_problems(image)
            problems += found_image
            if not found_image:
                digests[subset][hashlib.sha256(image.read_bytes()).hexdigest()] = entry.source_ref
    shared = digests.get("train", {}).keys() & digests.get("test", {}).keys()
    problems += [f"{digests['test'][d]} is in both the train and the test set" for d in sorted(shared)]
    return problems
