"""Writing the curated, balanced spectrogram dataset that supervised training reads.

Layout of ``OUT``::

    train/<label>/<image>.png     test/<label>/<image>.png
    train.manifest                test.manifest      (Ground Truth JSON Lines, see core.workflows.manifest)
    summary.json                  what was chosen, from where, and every image's clip

The export is validated against Rekognition Custom Labels' rules before it is reported
done; an unreadable clip is listed in the summary and never stops the others.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.access import Action, Actor, on_behalf_of, require, worker_name
from core.errors import BadInputError, Reason
from core.parallel import Progress, map_guarded
from core.settings import settings
from core.signal.batch import file_features
from core.signal.spectrogram_image import IMAGE_FEATURES, image_from_features
from core.vocabulary import Label, LabelQuality, LabelSource, Split
from core.workflows.audit import record_event
from core.workflows.clip_store import open_clip
from core.workflows.curation import (
    CLASSES,
    CuratedClip,
    MachineCounts,
    Prefer,
    balance,
    curated_clips,
    disputed_clips,
    grouped_split,
)
from core.workflows.manifest import manifest_line, validate_export
from db.models import Export
from db.queries import latest_export
from db.session import data_dir, session_scope

SUMMARY_FILE = "summary.json"
ZIP_FOLDER = "zips"  # under DATA_DIR/exports: one zip per export, made when first downloaded
SUBSETS = (Split.TRAIN.value, Split.TEST.value)


@dataclass(frozen=True)
class ExportOptions:
    """How the dataset is chosen: which label source wins, balance cap, test share, seed, machines."""

    prefer: Prefer = Prefer.VERDICTS
    seed: int = 0
    test_fraction: float = 0.25
    cap: int | None = None
    machine: str | None = None
    source_ref_base: str = ""  # prefix of every source-ref, e.g. "s3://bucket/prefix/"; "" = relative
    trusted_only: bool = False  # only trusted labels (ground truth, double-confirmed, adjudicated, an engineer's)


def preview(options: ExportOptions = ExportOptions(), *, url: str | None = None) -> list[MachineCounts]:
    """Per machine, the curated clips per class and what an export with ``options`` would keep."""
    with session_scope(url) as session:
        curated = curated_clips(session, options.machine, options.prefer, options.trusted_only)
    return balance(curated, seed=options.seed, cap=options.cap)[1]


@dataclass(frozen=True)
class ExportStatus:
    """The newest export at a glance: where, what it holds, and why it cannot be trained on (if so)."""

    export_id: int
    out_dir: str
    counts: dict[str, dict[str, int]]
    unusable: str | None  # None when training can use it


def newest_export(*, url: str | None = None) -> ExportStatus | None:
    """The newest export recorded, or None."""
    with session_scope(url) as session:
        row = latest_export(session)
        if row is None:
            return None
        summary = row.summary or {}
        problems, counts = summary.get("problems") or [], summary.get("counts", {})
    unusable = None
    if problems:
        unusable = f"it failed validation ({problems[0]}); export again"
    elif not (Path(row.out_dir) / SUMMARY_FILE).is_file():
        unusable = "its folder is gone; export again"
    return ExportStatus(row.id, row.out_dir, counts, unusable)


def default_export_dir() -> Path:
    """A new, empty folder for one export, made here: ``DATA_DIR/exports/export-YYYYMMDD-HHMMSS`` (UTC), with
    ``-2``, ``-3``… when that second's folder exists, so that two exports started in one second (two people, or the
    page and the CLI) never share one (the second was refused: "folder is not empty")."""
    first = data_dir() / "exports" / f"export-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    first.parent.mkdir(parents=True, exist_ok=True)
    folder, n = first, 1
    while True:
        try:
            folder.mkdir()  # atomic: whoever makes it owns it
            return folder
        except FileExistsError:
            n += 1
            folder = first.with_name(f"{first.name}-{n}")


def write_image(audio_path: str, target: str) -> tuple[int, int]:
    """Write the spectrogram PNG of ``audio_path`` to ``target``; returns its ``(height, width)`` in px."""
    image = image_from_features(file_features(audio_path, IMAGE_FEATURES, opener=open_clip))
    Image.fromarray(image, mode="L").save(target, format="PNG", optimize=True)
    return image.shape


def _write(item: tuple[str, str]) -> tuple[int, int]:
    return write_image(*item)


def export_dataset(
    out_dir: str | Path,
    options: ExportOptions = ExportOptions(),
    *,
    overwrite: bool = False,
    user: str = "system",
    url: str | None = None,
    n_jobs: int | None = None,
    progress: Progress | None = None,
    actor: Actor | None = None,
) -> dict[str, Any]:
    """Export the curated, balanced dataset to ``out_dir`` and return its summary (also in ``summary.json``).

    ``actor`` (default: the CLI's operator, who names ``user``) needs the engineer role.

    Raises :class:`BadInputError` when no machine has enough curated clips, when
    ``out_dir`` holds files and ``overwrite`` is false, or when the written dataset
    fails validation (the files stay for inspection; the summary lists the problems).
    """
    actor = require(actor, Action.EXPORT)
    user = worker_name(actor, user)
    out = Path(out_dir)
    _refuse_target(out, overwrite)
    with session_scope(url) as session:
        curated = curated_clips(session, options.machine, options.prefer, options.trusted_only)
        disputed = disputed_clips(session, options.machine)
    kept, counts = balance(curated, seed=options.seed, cap=options.cap)
    if not kept:
        advice = "; ".join(f"{c.machine}: {c.advice}" for c in counts) or "no labelled or reviewed clips yet"
        raise BadInputError(Reason.INVALID_PARAMETER, f"nothing to export ({advice})")
    train, test = grouped_split(kept, test_fraction=options.test_fraction, seed=options.seed)
    _prepare(out, overwrite)  # only now that the options proved good and there is something to write
    planned = [(subset, clip) for subset, clips in zip(SUBSETS, (train, test), strict=True) for clip in clips]
    for subset in SUBSETS:
        for label in CLASSES:
            (out / subset / label).mkdir(parents=True, exist_ok=True)
    written, unreadable = _write_images(out, planned, n_jobs, progress)
    images = [_image_record(subset, clip) for i, (subset, clip) in enumerate(planned) if i in written]
    _write_manifests(out, [item for i, item in enumerate(planned) if i in written], options.source_ref_base)
    summary = _summary(out, options, curated, counts, images, unreadable)
    summary["disputed"] = disputed  # clip ids left out: their annotators disagree (the Triage review list)
    summary["problems"] = validate_export(out, options.source_ref_base)
    with session_scope(url, write=True) as session:
        # a copy: a JSON column sees no in-place change, so the id added below must come as a different dict
        row = Export(out_dir=str(out.resolve()), params=summary["options"], summary=dict(summary), created_by=user)
        session.add(row)
        session.flush()
        summary["export_id"] = row.id
        row.summary = dict(summary)
        record_event(session, on_behalf_of(actor, user), Action.EXPORT, str(out.resolve()),
                     f"export {row.id}: {describe_counts(summary['counts'])}")  # fmt: skip
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8")
    if summary["problems"]:
        shown = "; ".join(summary["problems"][:5])
        raise BadInputError(Reason.INVALID_PARAMETER, f"export failed validation: {shown}", out)
    return summary


def _write_images(
    out: Path, planned: list[tuple[str, CuratedClip]], n_jobs: int | None, progress: Progress | None
) -> tuple[dict[int, tuple[int, int]], list[dict]]:
    """Write each planned clip's PNG: ``({index in planned: (height, width)}, [unreadable clips])``."""
    work = [(clip.path, str(out / _relative(subset, clip))) for subset, clip in planned]
    written, unreadable = {}, []
    for index, result in map_guarded(_write, work, n_jobs=n_jobs, progress=progress):
        if isinstance(result, BadInputError):
            unreadable.append({"path": work[index][0], "reason": result.reason.value, "detail": result.detail})
        else:
            written[index] = result
    return written, unreadable


def _write_manifests(out: Path, written: list[tuple[str, CuratedClip]], source_ref_base: str) -> None:
    """``train.manifest`` and ``test.manifest``: one Ground Truth line per written image of each subset."""
    for subset in SUBSETS:
        lines = [
            manifest_line(source_ref_base + _relative(subset, clip), clip.label,
                          human_annotated=clip.source != LabelSource.GROUND_TRUTH, created=clip.labelled_at)
            for s, clip in written if s == subset
        ]  # fmt: skip
        (out / f"{subset}.manifest").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _refuse_target(out: Path, overwrite: bool) -> None:
    """Raise unless ``out`` can take the export: absent, empty, or an earlier export with ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise BadInputError(Reason.INVALID_PARAMETER, "the export target is a file, not a folder", out)
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise BadInputError(Reason.INVALID_PARAMETER, "folder is not empty (choose another or overwrite)", out)
        if not (out / SUMMARY_FILE).is_file():
            raise BadInputError(Reason.INVALID_PARAMETER, "folder holds other files; left untouched", out)


def _prepare(out: Path, overwrite: bool) -> None:
    """Empty an earlier export in ``out`` (checked by :func:`_refuse_target`) and create the folder."""
    if out.is_dir() and overwrite:
        for name in (*SUBSETS, *(f"{s}.manifest" for s in SUBSETS), SUMMARY_FILE):
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _relative(subset: str, clip: CuratedClip) -> str:
    return f"{subset}/{clip.label}/{clip.image_name}"


def _image_record(subset: str, clip: CuratedClip) -> dict[str, Any]:
    return {"file": _relative(subset, clip), "subset": subset, "clip_id": clip.clip_id, "path": clip.path,
            "machine": clip.machine, "label": clip.label, "source": clip.source, "quality": clip.quality,
            "trusted": clip.trusted}  # fmt: skip


def label_quality(records: list[dict]) -> dict[str, dict[str, int]]:
    """Per class, how many labels are ground truth, single-annotator, double-confirmed and adjudicated, and how
    many of them are trusted (``records``: image records or :class:`CuratedClip` fields as dicts)."""
    out = {}
    for label in CLASSES:
        mine = [r for r in records if r["label"] == label]
        counts = Counter(r["quality"] for r in mine)
        out[label] = {q.value.replace(" ", "_"): counts.get(q.value, 0) for q in LabelQuality}
        out[label]["trusted"] = sum(bool(r["trusted"]) for r in mine)
    return out


def _label_rule(options: ExportOptions) -> str:
    """The label policy as this export applied it, in words (``summary.json``'s ``label_source``)."""
    winner = "the team's word wins" if options.prefer == "verdicts" else "the dataset's ground truth wins"
    kept = ("only trusted labels (ground truth, double-confirmed, adjudicated, or one verdict by an engineer or "
            "higher)" if options.trusted_only else "every label, single-annotator verdicts included")  # fmt: skip
    return (f"an adjudication stands above every individual verdict (the pilots' verdicts); {winner} where the team "
            f"and the ground truth both give a label; disputed and unsure clips have none; {kept}")  # fmt: skip


def _summary(out, options, curated, counts, images, unreadable) -> dict[str, Any]:
    per_subset = {s: Counter(i["label"] for i in images if i["subset"] == s) for s in SUBSETS}
    return {
        "out_dir": str(out.resolve()),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {"prefer": options.prefer, "seed": options.seed, "test_fraction": options.test_fraction,
                    "cap": options.cap, "machine": options.machine, "source_ref_base": options.source_ref_base,
                    "trusted_only": options.trusted_only},
        "label_source": _label_rule(options),
        "label_quality": label_quality(images),  # of the exported images, per class
        "curated": len(curated),
        "sources": dict(Counter(c.source for c in curated)),
        "conflicts": sum(c.conflict for c in curated),
        "machines": [{"machine": c.machine, "available": c.available, "kept": c.kept,
                      "sufficient": c.sufficient, "advice": c.advice} for c in counts],
        "counts": {s: {label: per_subset[s].get(label, 0) for label in CLASSES} for s in SUBSETS},
        "images": images,
        "unreadable": unreadable,
    }  # fmt: skip


def describe_counts(counts: dict[str, dict[str, int]]) -> str:
    """``{"train": {"normal": 6, "abnormal": 6}, ...}`` -> ``"train 12 (6 normal, 6 abnormal), ..."``."""
    parts = []
    for subset, by_label in counts.items():
        labels = ", ".join(f"{n} {label}" for label, n in by_label.items())
        parts.append(f"{subset} {sum(by_label.values())} ({labels})")
    return ", ".join(parts)


def read_summary(out_dir: str | Path) -> dict[str, Any]:
    """The ``summary.json`` of an export folder."""
    path = Path(out_dir) / SUMMARY_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(Reason.NOT_FOUND, "no summary.json: not an export folder", out_dir) from None
    except ValueError as exc:
        raise BadInputError(Reason.CORRUPT, f"summary.json is not valid JSON ({exc})", path) from None


def read_images(out_dir: str | Path, subset: str) -> tuple[list[np.ndarray], np.ndarray, list[dict[str, Any]]]:
    """The ``subset`` images of an export as greyscale arrays, their labels (1 = abnormal) and records."""
    records = [r for r in read_summary(out_dir)["images"] if r["subset"] == subset]
    arrays = []
    for record in records:
        path = Path(out_dir) / record["file"]
        try:
            with Image.open(path) as image:
                arrays.append(np.asarray(image.convert("L")))
        except OSError as exc:
            raise BadInputError(Reason.CORRUPT, f"cannot read the exported image ({exc})", path) from None
    labels = np.array([r["label"] == Label.ABNORMAL for r in records], dtype=np.int8)
    return arrays, labels, records


def export_bytes(out_dir: str | Path) -> int:
    """The bytes of what :func:`export_zip` puts in the zip of the export in ``out_dir`` (its summary, manifests and
    images; about the zip's size, PNGs being stored as they are); missing files count nothing."""
    out = Path(out_dir)
    members = [SUMMARY_FILE, *(f"{s}.manifest" for s in SUBSETS), *(r["file"] for r in read_summary(out)["images"])]
    return sum((out / member).stat().st_size for member in members if (out / member).is_file())


def max_download_bytes() -> int:
    """The largest export offered as a download (``MAX_DOWNLOAD_MB`` x 10^6 bytes)."""
    return int(settings().max_download_mb * 1e6)


def export_zip(out_dir: str | Path, *, actor: Actor | None = None) -> Path:
    """The export in ``out_dir`` as one zip file, ``DATA_DIR/exports/zips/export-<id>.zip``: its images,
    manifests and ``summary.json`` at their paths inside the export, nothing else of the folder.

    Written file by file from disk (PNGs stored as they are, text deflated), so memory holds one file at a
    time whatever the dataset's size, to a temporary file renamed into place, so a reader never sees half a
    zip; made once and reused while it is newer than the export's ``summary.json``.  ``actor`` needs the
    engineer role (as exporting does).  Raises :class:`BadInputError` when ``out_dir`` is not an export or
    one of its files is gone."""
    require(actor, Action.EXPORT)
    out = Path(out_dir)
    summary = read_summary(out)
    name = f"export-{summary['export_id']}" if summary.get("export_id") is not None else out.resolve().name
    target = data_dir() / "exports" / ZIP_FOLDER / f"{name}.zip"
    if target.is_file() and target.stat().st_mtime_ns >= (out / SUMMARY_FILE).stat().st_mtime_ns:
        return target
    members = [SUMMARY_FILE, *(f"{s}.manifest" for s in SUBSETS), *(r["file"] for r in summary["images"])]
    for member in members:
        if not (out / member).is_file():
            raise BadInputError(Reason.NOT_FOUND, f"the export lacks {member}; export again", out)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{name}-", suffix=".zip.part", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as fh, zipfile.ZipFile(fh, "w") as archive:
            for member in members:
                stored = member.endswith(".png")  # PNG is compressed already
                archive.write(out / member, member, zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
        os.replace(staging, target)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return target
