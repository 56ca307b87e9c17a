"""Saving uploaded recordings under ``DATA_DIR`` safely before they are ingested.

Nothing an upload's name says can place a file outside ``DATA_DIR/uploads/<type>/<id>/``:
names are reduced to one safe file name, files are created exclusively (an existing file,
or a link planted there, is never written through), and the size limit ``MAX_UPLOAD_MB``
is applied here, not only in the page.  A saved file that ingest refuses, or whose recording is already a clip
stored as another file, is deleted again (:func:`ingest_uploads`): the uploads folder holds clips, not refusals
nor copies.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from core.access import Action, Actor, require
from core.commands import core_command
from core.detection.selection import name_of
from core.errors import BadInputError, Reason, check_text, shown
from core.parallel import Progress
from core.settings import settings
from core.signal.audio import AUDIO_SUFFIXES
from core.vocabulary import MACHINE_ID_LENGTH, MACHINE_TYPE_LENGTH
from core.workflows.ingest import IngestReport, ingest
from core.workflows.scoring import ScoreReport, score
from core.workflows.training import MIN_TRAINING_CLIPS, clips_to_learn
from db.models import Clip
from db.queries import (
    active_threshold,
    clip_by_hash,
    clip_by_path,
    clip_scores,
    clips_ingested_under,
    machine_by_key,
)
from db.session import data_dir, session_scope

MAX_NAME_BYTES = 200  # a stored file name's length in UTF-8 (file systems allow 255)
_UNSAFE = re.compile(r"[^\w.-]")  # \w: letters and digits of any script, and "_"


@dataclass(frozen=True)
class KnownClip:
    """The clip an upload's recording already is: its id and machine (``type/id``)."""

    clip_id: int
    machine: str


@dataclass
class StoredUploads:
    paths: list[str] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason", "detail"}; path: the upload's name
    names: dict[str, str] = field(default_factory=dict)  # stored path -> the name it was uploaded under
    removed: list[str] = field(default_factory=list)  # stored, then deleted at ingest: refused, or a copy (known_as)
    known_as: dict[str, KnownClip] = field(default_factory=dict)  # an upload already a clip -> that clip


def max_upload_bytes() -> int:
    """The upload size limit in bytes: the ``MAX_UPLOAD_MB`` setting (megabytes, default 200; a bad value
    raises BadInputError naming it)."""
    return settings().max_upload_bytes


def _shorten(text: str, max_bytes: int) -> str:
    return text.encode()[:max_bytes].decode(errors="ignore")


def safe_name(name: str, default: str) -> str:
    """A file or folder name of letters, digits (any script), ``_ . -`` only: no separators, no ``..``,
    no leading dot, at most ``MAX_NAME_BYTES`` bytes (the suffix kept)."""
    base = unicodedata.normalize("NFC", name.replace("\\", "/")).rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).lstrip(".")
    if not cleaned:
        return default
    stem, dot, suffix = cleaned.rpartition(".")
    if not dot or len(suffix.encode()) > 16:
        return _shorten(cleaned, MAX_NAME_BYTES)
    return _shorten(stem, MAX_NAME_BYTES - len(suffix.encode()) - 1) + "." + suffix


def _refuse(result: StoredUploads, name: str, reason: str, detail: str) -> None:
    result.refused.append({"path": name or "(no name)", "reason": reason, "detail": detail})


def _create(folder: Path, name: str, content: bytes | memoryview) -> Path:
    """Write ``content`` to a new file ``folder/name`` (numbered ``name_1``... when taken) and return it;
    an existing regular file with the same content is reused instead of copied again."""
    stem, suffix = Path(name).stem, Path(name).suffix
    path, n = folder / name, 1
    while True:
        try:
            with path.open("xb") as fh:  # O_EXCL: never follows a link, never overwrites
                try:
                    fh.write(content)
                except BaseException:  # a full disk half-way: no partial file is left behind
                    fh.close()
                    path.unlink(missing_ok=True)
                    raise
            return path
        except FileExistsError:
            same_size = not path.is_symlink() and path.is_file() and path.stat().st_size == len(content)
            if same_size and path.read_bytes() == content:
                return path
        path = folder / f"{stem}_{n}{suffix}"
        n += 1


def _machine_folders(machine: str) -> tuple[str, str]:
    """``(type, id)`` of ``"type/id"``, each made a safe folder name; raises :class:`BadInputError` when nothing is
    left of either (never a made-up machine for files of a real one) or either is longer than the database keeps."""
    machine_type, _, machine_id = machine.strip().partition("/")
    machine_type, machine_id = safe_name(machine_type, ""), safe_name(machine_id, "")
    if not machine_type or not machine_id:
        raise BadInputError(Reason.INVALID_PARAMETER, f"machine must be type/id, e.g. fan/id_00, got {shown(machine)}")
    return (check_text("machine type", machine_type, MACHINE_TYPE_LENGTH),
            check_text("machine id", machine_id, MACHINE_ID_LENGTH))  # fmt: skip


def store_uploads(
    files: list[tuple[str, bytes | memoryview]],
    machine: str,
    *,
    max_bytes: int | None = None,
    actor: Actor | None = None,
) -> StoredUploads:
    """Write ``(file name, content)`` pairs to ``DATA_DIR/uploads/<type>/<id>/``.

    ``content`` is what the server already holds: pass an upload's ``getvalue()`` (the bytes Streamlit keeps,
    shared, not copied; ``getbuffer()`` would copy the whole file), so storing a batch grows the server by
    nothing beyond the uploads themselves.

    Names are made safe (a name such as ``../../x.wav`` lands inside that folder as
    ``x.wav``).  Refused, each with its reason and the name it was uploaded under: a
    file over ``max_bytes`` (default :func:`max_upload_bytes`) as ``too_large``, an
    empty one as ``empty``, a name without a ``.wav``/``.flac`` suffix as ``not_audio``.
    An existing file of the same name is never overwritten (a numbered name is used,
    or the same file when its content is identical; ``paths`` names each file once).  The other files of the batch are
    stored whatever happens to one of them.  A ``machine`` without a type or an id (nothing left of either once
    made safe), or a type or id longer than the database keeps (64 characters), raises :class:`BadInputError`
    before anything is written.
    """
    require(actor, Action.INGEST)
    limit = max_upload_bytes() if max_bytes is None else max_bytes
    machine_type, machine_id = _machine_folders(machine)
    root = (data_dir() / "uploads").resolve()
    target = root / machine_type / machine_id
    root.mkdir(parents=True, exist_ok=True)
    for folder in (target.parent, target):
        if folder.is_symlink():  # planted inside DATA_DIR/uploads: following it could lead anywhere
            raise BadInputError(Reason.INVALID_PARAMETER, "the upload folder is a link; refusing to follow it", folder)
        try:
            folder.mkdir(exist_ok=True)
        except OSError as exc:  # a file in the way, permissions
            raise BadInputError(Reason.INVALID_PARAMETER, f"cannot create the upload folder ({exc})", folder) from None
    result = StoredUploads()
    for name, content in files:
        if len(content) > limit:
            detail = f"{len(content) / 1e6:.1f} MB is over the {limit / 1e6:g} MB limit"
            _refuse(result, name, "too_large", detail)
            continue
        if not content:
            _refuse(result, name, Reason.EMPTY.value, "the file is empty (0 bytes)")
            continue
        clean = safe_name(name, "upload.wav")
        if Path(clean).suffix.lower() not in AUDIO_SUFFIXES:
            _refuse(result, name, Reason.NOT_AUDIO.value, "only WAV and FLAC files (.wav, .flac) are accepted")
            continue
        try:
            path = _create(target, clean, content)
        except OSError as exc:  # disk full, permissions: this file is refused, the batch goes on
            _refuse(result, name, Reason.INVALID_PARAMETER.value, f"could not be saved ({exc.strerror or exc})")
            continue
        if str(path) not in result.names:  # the same name and content twice in a batch: one file
            result.paths.append(str(path))
            result.names[str(path)] = name
    return result


def ingest_uploads(
    stored: StoredUploads, *, url: str | None = None, n_jobs: int | None = None, progress: Progress | None = None,
    actor: Actor | None = None,
) -> IngestReport:  # fmt: skip
    """Register the files :func:`store_uploads` saved, and return the ingest report (which still names every file
    with what became of it).  Deleted again, leaving ``stored.paths`` for ``stored.removed``: each file ingest
    refuses for what it holds (unreadable, empty, silent, too long...: it is no clip, and left in the uploads folder
    it would look kept), and each copy of a recording already registered as another file (kept, the copy would look
    like a clip of the machine it was uploaded for).  ``stored.known_as`` names the clip each upload already was.
    A file refused by a bug (``unexpected_error``, not the file's fault) is kept for the operator."""
    report = ingest(stored.paths, url=url, n_jobs=n_jobs, progress=progress, actor=actor)
    refused = [item["path"] for item in report.rejected if item["reason"] != Reason.UNEXPECTED.value]
    for path in refused:
        _remove(stored, path)
    with session_scope(url) as session:
        for path in report.known_paths:
            clip = _registered(session, path)
            if clip is not None:  # the same file again (kept), or a copy of another (deleted)
                stored.known_as[path] = KnownClip(clip.id, clip.machine.key)
                if clip.path != str(Path(path).resolve()):
                    _remove(stored, path)
    stored.paths = [p for p in stored.paths if p not in stored.removed]
    return report


def _remove(stored: StoredUploads, path: str) -> bool:
    """Delete ``path`` when it is a file of ``stored`` saved inside ``DATA_DIR/uploads/<type>/<id>/`` (as
    :func:`store_uploads` saves) and not removed yet, and add it to ``stored.removed``; True when it was."""
    root = (data_dir() / "uploads").resolve()
    if path not in stored.names or path in stored.removed or Path(path).parent.parent.parent != root:
        return False
    Path(path).unlink(missing_ok=True)  # never a link followed: unlink removes the entry itself
    stored.removed.append(path)
    return True


@dataclass(frozen=True)
class ClipOutcome:
    """What became of one new clip: its score by its machine's active model and whether that flags it."""

    path: str  # as stored (or the file with the same content registered earlier)
    clip_id: int | None  # None: the file is not a registered clip (refused at ingest)
    machine: str | None
    model: str | None  # "mahalanobis v1"; None: the machine has no active model
    score: float | None  # None: not scored (no model, or refused; see the report's failures)
    threshold: float | None

    @property
    def flagged(self) -> bool | None:
        """True when the score is above the threshold (the clip waits in the triage queue); None: not scored."""
        if self.score is None or self.threshold is None:
            return None
        return self.score > self.threshold


@dataclass
class NewClipsScored:
    """New clips scored at once: each clip's outcome, and the scoring report limited to these clips (never an
    older clip's failure, nor another machine's)."""

    clips: list[ClipOutcome]
    report: ScoreReport
    normal_clips: dict[str, int] = field(default_factory=dict)  # machine without a model -> clips one would learn from

    @property
    def scored(self) -> int:
        """How many of these clips have a score now (each clip once, however many paths name it)."""
        return len({c.clip_id for c in self.clips if c.score is not None})

    @property
    def flagged(self) -> int:
        """How many of these clips their machine's active model flags (each clip once): never more than
        :attr:`scored`."""
        return len({c.clip_id for c in self.clips if c.flagged})

    def too_few_to_train(self) -> dict[str, int]:
        """The machines of these clips without a model whose normal clips are too few to train one
        (``MIN_TRAINING_CLIPS``; uploads are unlabelled, so they never count): machine -> how many they have."""
        return {m: n for m, n in self.normal_clips.items() if n < MIN_TRAINING_CLIPS}

    def train_commands(self) -> list[str]:
        """For each machine of these clips without a model, the command that trains one (quoted for the shell)."""
        return [core_command("train", "--machine", m) for m in self.report.machines_without_model]


def _registered(session, path: str) -> Clip | None:
    """The clip registered under ``path``, or with the same content under another name."""
    found = clip_by_path(session, str(Path(path).resolve()))
    if found is None and Path(path).is_file():
        with open(path, "rb") as fh:
            found = clip_by_hash(session, hashlib.file_digest(fh, "sha256").hexdigest())
    return found


def score_new_clips(
    paths: list[str] | None = None, *, folder: str | None = None, actor: Actor | None = None, url: str | None = None,
    n_jobs: int | None = None, progress: Progress | None = None,
) -> NewClipsScored:  # fmt: skip
    """Score just-ingested clips (``paths``: an ingest report's ``new_paths``, or the files just stored; or, with
    ``folder``, every clip registered under it) by their machines' active models, at once, and say of each its
    score, threshold and whether it is flagged.

    Only the machines of these clips are scored, and the report keeps only these clips' failures and these
    machines without a model, so earlier problems of other clips are not repeated.  ``actor`` needs the
    engineer role (as ingesting does)."""
    require(actor, Action.INGEST)
    with session_scope(url) as session:
        if folder is not None:
            paths = sorted(clips_ingested_under(session, str(Path(folder.strip()).expanduser().resolve())))
        found = {path: _registered(session, path) for path in paths or []}
        machines = sorted({clip.machine.key for clip in found.values() if clip is not None})
        ids = {path: (clip.id, clip.path) for path, clip in found.items() if clip is not None}
    report = ScoreReport()
    for machine in machines:
        part = score(machine, url=url, n_jobs=n_jobs, progress=progress)
        report.scored += part.scored
        report.models += part.models
        report.failed += part.failed
        report.machines_without_model += part.machines_without_model
    mine = {stored for _, stored in ids.values()} | set(ids)
    report.failed = [item for item in report.failed if item["path"] in mine]
    outcomes = [_outcome(path, ids.get(path), url) for path in paths or []]
    return NewClipsScored(outcomes, report, _normal_clips(report.machines_without_model, url))


def _normal_clips(machines: list[str], url: str | None) -> dict[str, int]:
    """For each of ``machines``, how many clips a detector trained now would learn normal from
    (:func:`core.workflows.training.clips_to_learn`)."""
    with session_scope(url) as session:
        return {key: len(clips_to_learn(session, [machine_by_key(session, key).id]).clips) for key in machines}


def _outcome(path: str, clip: tuple[int, str] | None, url: str | None) -> ClipOutcome:
    if clip is None:
        return ClipOutcome(path, None, None, None, None, None)
    with session_scope(url) as session:
        row = session.get(Clip, clip[0])
        model = row.machine.active_model
        if model is None:
            return ClipOutcome(path, row.id, row.machine.key, None, None, None)
        value = clip_scores(session, model.id, [row.id]).get(row.id)
        current = active_threshold(session, model.id)
        name = name_of(model, scope=False)
        return ClipOutcome(path, row.id, row.machine.key, name, value, current.value if current else None)
