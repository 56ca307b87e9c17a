"""Continuous ingestion: new recordings in a folder are ingested, scored and, when flagged,
announced, as they land.

A file is taken only once it is complete: nothing has written to it for ``settle_s``
seconds (its modification time; keep the recorders' clocks in sync on network shares),
and its header agrees with its length (a WAV still
being written says it holds more samples than it does).  A file that stays incomplete
for ``grace_s`` is handed to ingest anyway, which records why it was refused.

Restart-safe by construction: what is registered, refused, scored or notified lives in
the database; a new watcher skips files registered or refused, unless they changed since,
scores only unscored clips, and never notifies a flag twice.

A pass is cheap when nothing arrived: it scores only after ingesting new clips (and on a
watcher's first pass, which finishes what a killed predecessor left unscored), and it looks
for flags only among clips newer than those it has already handled (its first pass looks
back ``lookback_s`` for flags a predecessor never enqueued).

Hidden files and folders, and temporary or partial-download names, are never read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.clock import as_utc
from core.errors import BadInputError, Reason
from core.signal.audio import clip_info
from core.workflows.ingest import ingest
from core.workflows.notify import Channel, Dispatcher, enqueue, flag_payload
from core.workflows.scoring import score
from db.queries import clips_ingested_under, flagged_since, machines_matching, rejections_under
from db.session import session_scope

AUDIO_SUFFIXES = frozenset({".wav", ".flac"})
PARTIAL_SUFFIXES = frozenset({".part", ".partial", ".tmp", ".crdownload", ".download"})
FINAL_DELIVERY_S = 30.0  # after its last pass, run(max_polls=...) still sends what is due for this long at most
log = logging.getLogger(__name__)

Signature = tuple[int, int]  # (size in bytes, modification time in ns)


@dataclass
class PollReport:
    """What one pass over the folder did."""

    ingested: int = 0
    already_known: int = 0
    rejected: list[dict[str, str]] = field(default_factory=list)
    scored: int = 0
    flagged: list[int] = field(default_factory=list)  # ids of this pass's new clips that the model flags
    waiting: int = 0  # files seen but not complete yet

    @property
    def busy(self) -> bool:
        return bool(self.ingested or self.already_known or self.rejected or self.scored or self.flagged)


def is_candidate(path: Path) -> bool:
    """An audio file a recorder has finished naming (no hidden, temporary or partial-download names)."""
    name = path.name
    return (path.suffix.lower() in AUDIO_SUFFIXES and not name.startswith((".", "~"))
            and not any(s in PARTIAL_SUFFIXES for s in path.suffixes))  # fmt: skip


def header_complete(path: Path) -> bool:
    """False while the file looks half-written (empty, or shorter than its header says)."""
    try:
        clip_info(path)
    except BadInputError as exc:
        return exc.reason not in (Reason.EMPTY, Reason.CORRUPT, Reason.NOT_AUDIO)
    return True


class Watcher:
    """Watches ``folder`` (recursively); call :meth:`poll` repeatedly, or :meth:`run`."""

    def __init__(
        self, folder: str | Path, *, url: str | None = None, settle_s: float = 2.0, grace_s: float = 300.0,
        lookback_s: float = 3600.0, channels: list[Channel] | None = None, n_jobs: int | None = 1,
        clock: Callable[[], float] = time.time,
    ):  # fmt: skip
        """``lookback_s``: flags of clips ingested this long before the start are still announced
        (those a crashed predecessor scored but had not enqueued yet)."""
        self.folder = Path(folder).resolve()
        if not self.folder.is_dir():
            raise BadInputError(Reason.NOT_FOUND, "no such folder to watch", folder)
        if not (settle_s >= 0 and grace_s >= 0):
            raise BadInputError(Reason.INVALID_PARAMETER, f"settle_s, grace_s must be >= 0: {settle_s}, {grace_s}")
        self.url, self.settle_s, self.grace_s = url, settle_s, grace_s
        self.channels = channels or []
        self.n_jobs, self.clock = n_jobs, clock
        self.since = datetime.fromtimestamp(clock(), UTC) - timedelta(seconds=lookback_s)
        self._flag_scope = str(self.folder)  # flags are looked for among the clips stored under this
        self._observed: dict[str, tuple[Signature, float]] = {}  # path -> (signature, first seen with it)
        self._done: dict[str, Signature] = self._already_handled()
        self._needs_scoring = True  # the first pass scores what a killed predecessor ingested but never scored
        # (machine pk, active model id) -> the highest clip id whose flag this watcher has handled (enqueued)
        self._flag_marks: dict[tuple[int, int | None], int] = {}

    def _already_handled(self) -> dict[str, Signature]:
        """Files registered or refused and not changed since (modified before that happened): skipped
        until they change."""
        with session_scope(self.url) as session:
            registered = clips_ingested_under(session, str(self.folder))
            refused = rejections_under(session, str(self.folder))
        done = {}
        for path in registered.keys() | refused.keys():
            handled_at = max(as_utc(t) for t in (registered.get(path), refused.get(path)) if t is not None)
            sig = _signature(Path(path))
            if sig and sig[1] / 1e9 <= handled_at.timestamp():
                done[path] = sig
        return done

    def ready_files(self) -> tuple[list[str], int]:
        """``(complete files not handled yet, number still being written)``."""
        now = self.clock()
        ready, waiting = [], 0
        for path in sorted(p for p in self.folder.rglob("*") if p.is_file() and is_candidate(p)
                           and not any(part.startswith(".") for part in p.relative_to(self.folder).parts)):  # fmt: skip
            key, sig = str(path), _signature(path)
            if sig is None or self._done.get(key) == sig:
                continue
            previous = self._observed.get(key)
            if previous is None or previous[0] != sig:
                self._observed[key] = (sig, now)
                previous = self._observed[key]
            settled = now - sig[1] / 1e9 >= self.settle_s  # nothing written to it for settle_s
            unchanged_for = now - min(previous[1], sig[1] / 1e9)  # since first seen, or last written if earlier
            if settled and (header_complete(path) or unchanged_for >= self.grace_s):
                ready.append(key)
            else:
                waiting += 1
        return ready, waiting

    def poll(self) -> PollReport:
        """One pass: ingest complete new files, score what is unscored (when this pass ingested clips, or is
        the first), enqueue notifications of new flags."""
        report = PollReport()
        ready, report.waiting = self.ready_files()
        if ready:
            needed = self._needs_scoring
            self._needs_scoring = True  # should ingest fail half-way, the next pass scores what it committed
            ingested = ingest(ready, url=self.url, n_jobs=self.n_jobs)
            report.ingested, report.already_known, report.rejected = (
                ingested.ingested, ingested.already_known, ingested.rejected)  # fmt: skip
            for path in ready:
                self._done[path] = _signature(Path(path)) or (0, 0)
                self._observed.pop(path, None)
            self._needs_scoring = needed or ingested.ingested > 0
        if self._needs_scoring:  # kept when scoring fails: the next pass tries again
            report.scored = score(url=self.url, n_jobs=self.n_jobs).scored
            self._needs_scoring = False
        report.flagged = self._enqueue_flags(set(ready))
        return report

    def _enqueue_flags(self, new_paths: set[str]) -> list[int]:
        """Enqueue a notification per flag of the watched files not handled yet: on the first pass (and a
        machine's first with its active model) those ingested since the look-back start, then only those of
        clips above the highest one handled (the outbox ignores rows already there).  Returns the flagged
        clips among ``new_paths``."""
        flags, new, marks = [], [], {}
        with session_scope(self.url) as session:
            for machine in machines_matching(session):
                key = (machine.id, machine.active_model_id)
                after = self._flag_marks.get(key, 0)
                for clip, value, threshold in flagged_since(session, machine, self.since, self._flag_scope, after):
                    payload = flag_payload(clip, machine.key, machine.active_model, value, threshold)
                    flags.append((clip.id, machine.active_model_id, payload))
                    marks[key] = clip.id  # by clip id: the last is the highest
                    if clip.path in new_paths:
                        new.append(clip.id)
        if self.channels and flags:
            enqueue(flags, self.channels, url=self.url)
        self._flag_marks.update(marks)  # only once enqueued: a failed pass leaves them for the next
        return new

    def run(
        self, *, interval_s: float = 5.0, stop: threading.Event | None = None, max_polls: int | None = None,
        on_poll: Callable[[PollReport], None] | None = None,
    ) -> None:  # fmt: skip
        """Poll every ``interval_s`` seconds until ``stop`` is set (or ``max_polls`` passes), with a
        notification dispatcher running beside it.  A failing pass is logged and the next one retries.
        After the last of ``max_polls`` passes, what is due is still sent (for up to
        :data:`FINAL_DELIVERY_S`), so that a one-pass run announces its own flags."""
        if not interval_s > 0:
            raise BadInputError(Reason.INVALID_PARAMETER, f"the interval must be > 0 seconds, got {interval_s}")
        stop = stop or threading.Event()
        dispatcher = Dispatcher(self.channels, url=self.url).start()
        polls, completed = 0, False
        try:
            while not stop.is_set() and (max_polls is None or polls < max_polls):
                try:
                    report = self.poll()
                    if on_poll:
                        on_poll(report)
                except BadInputError as exc:
                    log.error("watch pass failed: %s", exc)
                except Exception:  # a database or file-system hiccup must not end a long-running watcher
                    log.exception("watch pass failed; retrying in %g s", interval_s)
                polls += 1
                if max_polls is None or polls < max_polls:
                    stop.wait(interval_s)
            completed = not stop.is_set()
        finally:
            dispatcher.stop(flush_s=FINAL_DELIVERY_S if completed else 0.0)


def _signature(path: Path) -> Signature | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns
