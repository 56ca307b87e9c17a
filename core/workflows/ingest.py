"""Registering clips in the database: idempotent by content, never stopped by a bad file."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from sqlalchemy.exc import DataError

from core.access import Action, Actor, require
from core.datasets.layouts import DiscoveredClip, describe, discover
from core.datasets.splits import assign_split, split_key
from core.errors import BadInputError, Reason, check_text
from core.parallel import Progress, map_guarded
from core.settings import settings
from core.signal.audio import load_clip
from core.vocabulary import MACHINE_ID_LENGTH, MACHINE_TYPE_LENGTH
from core.workflows.audit import record_event
from core.workflows.clip_store import is_uri, layout_path, list_objects, open_clip
from db.models import Clip
from db.queries import get_or_create_machine, known_hashes, record_rejection
from db.session import session_scope, write_transaction

COMMIT_EVERY = 200  # clips per write transaction
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InspectedFile:
    """What reading a file told us: its SHA-256, sample rate (Hz), channels, duration (s) and size (bytes)."""

    content_hash: str
    sample_rate: int
    n_channels: int
    duration_s: float
    n_bytes: int


@dataclass
class IngestReport:
    """Counts of an ingest run, with each refused file and its reason."""

    ingested: int = 0
    rejected: list[dict[str, str]] = field(default_factory=list)
    new_paths: list[str] = field(default_factory=list, repr=False)  # as stored: the clips this run registered
    known_paths: list[str] = field(default_factory=list, repr=False)  # files whose content is already a clip

    @property
    def already_known(self) -> int:
        """Files whose content was already a clip (each named in ``known_paths``)."""
        return len(self.known_paths)

    @property
    def clips(self) -> int:
        """Files that are clips after the run: the ones it registered and the ones already known (a resumed first
        start registers only what the interrupted one had not)."""
        return self.ingested + self.already_known

    def as_json(self) -> dict:
        """``{"ingested": n, "already_known": n, "rejected": [{"path", "reason", "detail"}]}``."""
        return {"ingested": self.ingested, "already_known": self.already_known, "rejected": self.rejected}

    @classmethod
    def combined(cls, reports: list[IngestReport]) -> IngestReport:
        """One report adding up ``reports``."""
        rejected, new = [i for r in reports for i in r.rejected], [p for r in reports for p in r.new_paths]
        known = [p for r in reports for p in r.known_paths]
        return cls(sum(r.ingested for r in reports), rejected, new, known)


def inspect_file(path: str) -> InspectedFile:
    """Validate ``path`` as a clip (every check of :func:`core.signal.audio.load_clip`, clips longer than the
    ``MAX_CLIP_SECONDS`` setting refused) and hash it.  An ``s3://`` URI is read through
    :func:`core.workflows.clip_store.open_clip` (an object over ``MAX_UPLOAD_MB`` refused from its size)."""
    limits = settings()
    fileobj = open_clip(path)
    if fileobj is not None:
        with fileobj:
            clip = load_clip(path, max_duration_s=limits.max_clip_seconds, max_sample_rate=limits.max_sample_rate,
                             fileobj=fileobj)  # fmt: skip
            fileobj.seek(0)
            digest = hashlib.file_digest(fileobj, "sha256").hexdigest()
            return InspectedFile(digest, clip.sr, clip.n_channels, clip.duration_s, fileobj.seek(0, 2))
    clip = load_clip(path, max_duration_s=limits.max_clip_seconds, max_sample_rate=limits.max_sample_rate)
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    return InspectedFile(digest, clip.sr, clip.n_channels, clip.duration_s, Path(path).stat().st_size)


def printable(text: str) -> str:
    """``text`` storable as UTF-8: bytes of a file name that are not valid UTF-8 (which Python carries as
    lone surrogates) become ``\\xNN`` escapes, so the name can be stored and shown."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def check_storable(clip: DiscoveredClip) -> DiscoveredClip:
    """``clip`` if what its location says can be stored; else BadInputError (``invalid_parameter``) naming
    the file: a file name that is not valid UTF-8 (it could be neither stored nor opened again by name), or
    a machine type or id (folder names) longer than the database keeps (:mod:`core.vocabulary`)."""
    if printable(clip.path) != clip.path:
        raise BadInputError(Reason.INVALID_PARAMETER, "the file name is not valid UTF-8; rename the file", clip.path)
    check_text("machine type", clip.machine_type, MACHINE_TYPE_LENGTH, clip.path)
    check_text("machine id", clip.machine_id, MACHINE_ID_LENGTH, clip.path)
    return clip


def collect(paths: list[str]) -> tuple[list[DiscoveredClip], list[BadInputError]]:
    """Expand files, folders and ``s3://`` URIs (an object, or every audio object under a prefix) into described
    clips; a path that does not exist is an error, and so is a clip :func:`check_storable` refuses (each
    refused alone: the others are kept)."""
    found: list[DiscoveredClip] = []
    errors: list[BadInputError] = []
    for raw in paths:
        try:
            clips = _expand(raw)
        except BadInputError as exc:
            errors.append(exc)
            continue
        for clip in clips:
            try:
                found.append(check_storable(clip))
            except BadInputError as exc:
                errors.append(exc)
    return found, errors


def _expand(raw: str) -> list[DiscoveredClip]:
    """The clips ``raw`` names, described; BadInputError when it names nothing that exists."""
    if is_uri(raw):
        return [_described(obj.uri) for obj in list_objects(raw)]
    path = Path(raw)
    try:
        exists = path.exists()
    except OSError as exc:  # a name too long for the file system, a loop of links...
        raise BadInputError(Reason.INVALID_PARAMETER, f"cannot be opened: {exc.strerror}", raw) from None
    if not exists:
        raise BadInputError(Reason.NOT_FOUND, "no such file or folder", raw)
    return discover(path)


def _described(uri: str) -> DiscoveredClip:
    """What an object's key says about the clip (any known layout, the bucket as the top folder), by URI."""
    return dataclasses.replace(describe(layout_path(uri)), path=uri)


def ingest(
    paths: list[str],
    *,
    url: str | None = None,
    n_jobs: int | None = None,
    progress: Progress | None = None,
    actor: Actor | None = None,
) -> IngestReport:
    """Register every clip under ``paths`` (files or folders).  ``actor`` (default: the CLI's operator,
    who ingests what it names) needs the engineer role; see :func:`ingest_folder` for the dashboard.

    Files are validated and hashed on ``n_jobs`` processes and registered every
    ``COMMIT_EVERY`` clips as they come, so a killed run keeps what it stored (the next
    run finds those clips already known).  The same content twice (even under another name) is one clip; a bad
    file is recorded with its reason in ``rejected_files`` and in the report, and the
    batch goes on.
    """
    actor = require(actor, Action.INGEST)
    clips, errors = collect(paths)
    report = _register(clips, errors, url=url, n_jobs=n_jobs, progress=progress)
    _audit(actor, ", ".join(str(p) for p in paths), report, url)
    return report


def ingest_roots() -> list[Path]:
    """The folders the dashboard may ingest from (``INGEST_ROOTS``, default ``DATA_DIR``), resolved."""
    return [Path(root).resolve() for root in settings().ingest_roots]


def ingest_folder(
    folder: str,
    *,
    roots: list[Path] | None = None,
    url: str | None = None,
    n_jobs: int | None = None,
    progress: Progress | None = None,
    actor: Actor | None = None,
) -> IngestReport:
    """Register the clips under ``folder``, which must lie inside one of ``roots`` (default: the
    ``INGEST_ROOTS`` setting): what the dashboard may ingest from its server.

    The path is resolved (``..`` and links) before the check, and a folder outside the roots is refused
    with the same words whether or not it exists.  A file inside that is a symbolic link leading
    outside the roots is refused with its reason; the rest of the folder is ingested.  ``actor`` needs
    the engineer role.  Raises :class:`BadInputError` for a folder outside the roots or missing.
    """
    actor = require(actor, Action.INGEST)
    allowed = [Path(r).resolve() for r in roots] if roots is not None else ingest_roots()
    target = Path(folder.strip()).expanduser().resolve()
    if not any(target.is_relative_to(root) for root in allowed):
        shown = ", ".join(str(r) for r in allowed)
        raise BadInputError(Reason.INVALID_PARAMETER, f"the dashboard ingests only from inside {shown} "
                            "(INGEST_ROOTS); ask an operator to ingest other folders with the CLI", folder)  # fmt: skip
    if not target.is_dir():
        raise BadInputError(Reason.NOT_FOUND, "no such folder inside the ingest roots", folder)
    clips, errors = collect([str(target)])
    inside = [c for c in clips if any(Path(c.path).resolve().is_relative_to(root) for root in allowed)]
    errors += [BadInputError(Reason.INVALID_PARAMETER, "a symbolic link to a file outside the ingest roots",
                             c.path) for c in clips if c not in inside]  # fmt: skip
    report = _register(inside, errors, url=url, n_jobs=n_jobs, progress=progress)
    _audit(actor, str(target), report, url)
    return report


def _audit(actor: Actor, target: str, report: IngestReport, url: str | None) -> None:
    with session_scope(url, write=True) as session:
        record_event(session, actor, Action.INGEST, target, f"ingested {report.ingested}, already known "
                     f"{report.already_known}, refused {len(report.rejected)}")  # fmt: skip


def _register(
    clips: list[DiscoveredClip],
    errors: list[BadInputError],
    *,
    url: str | None,
    n_jobs: int | None,
    progress: Progress | None,
) -> IngestReport:
    """Validate, hash and store ``clips``, recording ``errors`` and each refused file, in batches."""
    report = IngestReport()
    pending: list[tuple[DiscoveredClip, InspectedFile]] = []
    for index, result in map_guarded(inspect_file, [c.path for c in clips], n_jobs=n_jobs, progress=progress):
        if isinstance(result, BadInputError):
            errors.append(result)
            continue
        pending.append((clips[index], result))
        if len(pending) == COMMIT_EVERY:  # committed as the work goes: a killed run keeps what it stored
            _store(pending, report, url, errors)
            pending = []
    if pending:
        _store(pending, report, url, errors)
    if errors:
        _store_rejections(errors, report, url)
    return report


def _store(
    batch: list[tuple[DiscoveredClip, InspectedFile]], report: IngestReport, url: str | None,
    errors: list[BadInputError],
) -> None:  # fmt: skip
    """Register a batch in one transaction (retried whole if a concurrent ingest raced it); the same content
    twice in a batch is registered under the first path in sorted order.

    Every value is checked before it gets here (:func:`check_storable`), so a value the database still
    refuses (``DataError``) is a bug; even then one clip never costs the batch: each is stored alone, and
    the one refused is added to ``errors`` (``unexpected_error``, with the database's first line, no SQL)."""
    batch = sorted(batch, key=lambda item: item[0].path)
    try:
        added, known = write_transaction(partial(_register_batch, batch), url)
    except DataError as exc:
        if len(batch) > 1:
            for item in batch:
                _store([item], report, url, errors)
            return
        log.exception("the database refused %s", batch[0][0].path)
        said = (str(exc.orig or exc).splitlines() or [""])[0]
        errors.append(BadInputError(Reason.UNEXPECTED, f"the database refused it (a bug, not a fault of the file): "
                                    f"{type(exc.orig or exc).__name__}: {said}", batch[0][0].path))  # fmt: skip
        return
    report.ingested += len(added)
    report.new_paths += added
    report.known_paths += known


def _register_batch(batch: list[tuple[DiscoveredClip, InspectedFile]], session) -> tuple[list[str], list[str]]:
    """Add the clips of ``batch`` (sorted by path) not registered yet; ``(their stored paths, the paths of the
    files whose content was already a clip)``."""
    seen = known_hashes(session, [facts.content_hash for _, facts in batch])
    added: list[str] = []
    known: list[str] = []
    for where, facts in batch:
        if facts.content_hash in seen:
            known.append(where.path)
            continue
        seen.add(facts.content_hash)
        machine = get_or_create_machine(session, where.machine_type, where.machine_id)
        key = split_key(facts.content_hash, where.layout, f"{where.machine_type}/{where.machine_id}", where.label,
                        Path(where.path).name)  # fmt: skip
        split = assign_split(key, where.label, where.split)
        source = "layout" if split == where.split else "assigned"
        added.append(where.path if is_uri(where.path) else str(Path(where.path).resolve()))
        session.add(
            Clip(
                path=added[-1],
                content_hash=facts.content_hash,
                machine=machine,
                label=where.label,
                split=split,
                split_source=source,
                layout=where.layout,
                snr_db=where.snr_db,
                domain=where.domain,
                sample_rate=facts.sample_rate,
                n_channels=facts.n_channels,
                duration_s=facts.duration_s,
                n_bytes=facts.n_bytes,
            )
        )
    return added, known


def _store_rejections(errors: list[BadInputError], report: IngestReport, url: str | None) -> None:
    errors.sort(key=lambda e: e.path or "")
    with session_scope(url, write=True) as session:
        for error in errors:
            path, detail = printable(error.path or ""), printable(error.detail)
            record_rejection(session, path, error.reason.value, detail)
            report.rejected.append({"path": path, "reason": error.reason.value, "detail": detail})
