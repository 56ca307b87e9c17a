"""core.workflows.watch and ``python -m core watch``: new recordings in a watched folder are ingested once complete,
scored, queued for triage and announced; restarts (even after SIGKILL) lose and repeat nothing.

Real components: a trained Mahalanobis model on a small demo plant, real WAV files dropped into a
folder laid out as ``DROP/fan/id_00/<name>.wav``, a real SQLite database, a real local webhook server,
and the CLI as a subprocess."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import event, func, inspect, select, text
from sqlalchemy.exc import OperationalError

import core.workflows.notify as notify
import core.workflows.watch as watch
from core.errors import BadInputError
from core.workflows.notify import Dispatcher, channels_from
from core.workflows.triage import triage_queue
from core.workflows.watch import PollReport, Watcher, header_complete, is_candidate
from db.models import Clip, Notification, RejectedFile, Score
from db.session import dispose_engines, session_scope
from tests.conftest import wait_for

REPO = Path(__file__).resolve().parents[2]
MACHINE = "fan/id_00"
NOWHERE = "http://127.0.0.1:9/never-called"  # a webhook channel that poll() never sends to (the dispatcher does)


# --- a trained plant, set up once and copied per test ---------------------------------------------------------


@dataclass(frozen=True)
class Template:
    data: Path  # DATA_DIR holding the trained, scored database
    abnormal: list[Path]  # plant clips its model flags (far above the threshold)
    normal: list[Path]  # plant clips it scores far below the threshold


@pytest.fixture(scope="session")
def _template(tmp_path_factory) -> Template:
    from core.datasets.demo import write_plant
    from core.workflows.ingest import ingest
    from core.workflows.scoring import score
    from core.workflows.training import train
    from db.queries import active_threshold, machine_by_key, scored_clips

    root = tmp_path_factory.mktemp("watch-template")
    plant, data = root / "plant", root / "data"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATA_DIR", str(data))
        patch.delenv("DATABASE_URL", raising=False)
        patch.setenv("DEMO_PLANT", "0")
        write_plant(plant, machines=1, normal=20, abnormal=6, duration_s=2.0, seed=0, n_jobs=1)
        assert ingest([str(plant)], n_jobs=1).ingested == 26
        train(MACHINE, "mahalanobis")
        assert score(n_jobs=1).scored == 26
        with session_scope() as session:
            machine = machine_by_key(session, MACHINE)
            threshold = active_threshold(session, machine.active_model_id).value
            scored = scored_clips(session, machine.active_model_id, [machine.id])
        dispose_engines()
    abnormal = [Path(c.path) for c, value in scored if c.label == "abnormal" and value > 3 * threshold]
    normal = [Path(c.path) for c, value in sorted(scored, key=lambda item: item[1]) if value < 0.9 * threshold]
    assert len(abnormal) >= 4 and len(normal) >= 3
    return Template(data, abnormal, normal[:3])


@pytest.fixture
def trained(data_dir, _template) -> Template:
    """This test's DATA_DIR holding its own copy of the trained plant's database."""
    dispose_engines()
    data_dir.mkdir(parents=True, exist_ok=True)
    for file in _template.data.glob("anomaly.db*"):
        shutil.copy2(file, data_dir / file.name)
    return _template


@pytest.fixture
def drop_dir(tmp_path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


def new_recording(source: Path, seed: int) -> np.ndarray:
    """``source``'s samples with +-1 LSB of noise: the same sound (and score), but new content."""
    data, _ = sf.read(source, dtype="int16", always_2d=True)
    noise = np.random.default_rng(seed).integers(-1, 2, size=data.shape)
    return np.clip(data.astype(np.int32) + noise, -32768, 32767).astype(np.int16)


def drop(folder: Path, source: Path, name: str, *, seed: int, atomic: bool = False) -> Path:
    """Write a new recording like ``source`` as ``folder/fan/id_00/name`` (through a ``.part`` file and a
    rename when ``atomic``, as careful recorders do)."""
    path = folder / "fan" / "id_00" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    target = path.with_name(name + ".part") if atomic else path
    sf.write(target, new_recording(source, seed), 16_000, subtype="PCM_16", format="WAV")
    if atomic:
        os.replace(target, path)
    return path


def wav_bytes(source: Path, seed: int, tmp_path: Path) -> bytes:
    scratch = tmp_path / f"scratch-{seed}.wav"
    sf.write(scratch, new_recording(source, seed), 16_000, subtype="PCM_16")
    return scratch.read_bytes()


def set_mtime(path: Path, when: float) -> None:
    os.utime(path, (when, when))


class Clock:
    """An injectable "now" for the watcher (seconds since the epoch)."""

    def __init__(self, now: float | None = None):
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


def clip_ids(paths: list[Path]) -> list[int]:
    with session_scope() as session:
        found = {p: session.scalars(select(Clip.id).where(Clip.path == str(p.resolve()))).all() for p in paths}
    assert all(len(ids) == 1 for ids in found.values()), found
    return [found[p][0] for p in paths]


def count(model) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def counts() -> tuple[int, int, int, int]:
    """(clips, scores, refused files, notifications)."""
    return count(Clip), count(Score), count(RejectedFile), count(Notification)


# --- which files are candidates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "candidate"),
    [("rec.wav", True), ("REC.WAV", True), ("rec.flac", True), ("rec.wav.part", False), ("rec.part", False),
     ("rec.tmp", False), ("rec.wav.tmp", False), ("rec.tmp.wav", False), ("~rec.wav", False), (".rec.wav", False),
     ("rec.wav.crdownload", False), ("rec.txt", False), ("rec", False)],
)  # fmt: skip
def test_is_candidate(name, candidate):
    assert is_candidate(Path("/drop/fan/id_00") / name) is candidate


def test_hidden_and_temporary_files_are_ignored(trained, drop_dir):
    source = trained.abnormal[0]
    for k, name in enumerate(["rec.wav.part", "rec.tmp", "~rec.wav", ".hidden.wav", "rec.partial"]):
        drop(drop_dir, source, name, seed=100 + k)
    hidden_folder = drop_dir / ".staging" / "fan" / "id_00"  # e.g. a sync tool's staging folder
    drop(hidden_folder.parents[1], source, "staged.wav", seed=110)
    before = counts()
    watcher = Watcher(drop_dir, settle_s=0, grace_s=0)
    report = watcher.poll()
    assert (report.ingested, report.waiting, report.rejected, report.scored) == (0, 0, [], 0)
    assert not report.busy
    assert counts() == before  # not even refused: never read

    folder = drop_dir / "fan" / "id_00"
    os.replace(folder / "rec.wav.part", folder / "rec.wav")  # the recorder's rename
    report = watcher.poll()
    assert (report.ingested, report.scored, report.waiting) == (1, 1, 0)


def test_header_complete(tmp_path):
    data = np.zeros((16_000, 1), dtype=np.int16)
    data[::7] = 1000
    full = tmp_path / "full.wav"
    sf.write(full, data, 16_000, subtype="PCM_16")
    assert header_complete(full)
    half = tmp_path / "half.wav"
    half.write_bytes(full.read_bytes()[:20_000])
    assert not header_complete(half)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert not header_complete(empty)
    just_header = tmp_path / "header.wav"
    just_header.write_bytes(full.read_bytes()[:44])
    assert not header_complete(just_header)


# --- ingesting, scoring and flagging -------------------------------------------------------------------------


def test_complete_new_files_are_ingested_scored_and_queued(trained, drop_dir):
    flagged_files = [drop(drop_dir, trained.abnormal[k], f"a{k}.wav", seed=k) for k in range(2)]
    quiet = drop(drop_dir, trained.normal[0], "n0.wav", seed=10)
    clips_before, scores_before, _, _ = counts()

    report = Watcher(drop_dir, settle_s=0).poll()

    assert (report.ingested, report.already_known, report.rejected, report.scored) == (3, 0, [], 3)
    assert report.waiting == 0 and report.busy
    assert counts()[:2] == (clips_before + 3, scores_before + 3)
    flagged_ids = clip_ids(flagged_files)
    assert sorted(report.flagged) == sorted(flagged_ids)
    queue = {item.clip_id: item for item in triage_queue(MACHINE)}
    assert set(flagged_ids) <= set(queue)
    assert clip_ids([quiet])[0] not in queue
    assert all(queue[i].score > queue[i].threshold and queue[i].label == "unknown" for i in flagged_ids)
    with session_scope() as session:
        clip = session.get(Clip, flagged_ids[0])
        assert (clip.machine.key, clip.path) == (MACHINE, str(flagged_files[0].resolve()))


def test_a_second_pass_does_nothing(trained, drop_dir):
    drop(drop_dir, trained.abnormal[0], "a.wav", seed=1)
    watcher = Watcher(drop_dir, settle_s=0)
    assert watcher.poll().ingested == 1
    before = counts()
    again = watcher.poll()
    assert again == PollReport() and not again.busy
    assert counts() == before


def test_a_file_with_known_content_is_not_registered_twice(trained, drop_dir):
    path = drop_dir / "fan" / "id_00" / "copy.wav"
    path.parent.mkdir(parents=True)
    shutil.copy(trained.abnormal[0], path)  # the very clip the plant already holds
    before = counts()
    report = Watcher(drop_dir, settle_s=0).poll()
    assert (report.ingested, report.already_known, report.scored, report.flagged) == (0, 1, 0, [])
    assert counts() == before


def test_a_fresh_file_waits_until_it_settles(trained, drop_dir):
    path = drop(drop_dir, trained.abnormal[0], "a.wav", seed=1)
    written = path.stat().st_mtime
    clock = Clock(written + 0.5)  # written half a second ago
    watcher = Watcher(drop_dir, settle_s=2.0, clock=clock)
    report = watcher.poll()
    assert (report.ingested, report.waiting, report.rejected) == (0, 1, [])
    assert count(Clip) == 26

    clock.now = written + 1.9
    assert watcher.poll().waiting == 1

    # the recorder appends more: the file is still being written, so it waits again from its new mtime
    with path.open("ab") as fh:
        fh.write(b"\0\0")
    set_mtime(path, written + 1.8)
    clock.now = written + 2.5
    assert watcher.poll().waiting == 1

    clock.now = written + 4.0
    report = watcher.poll()
    assert (report.ingested, report.waiting, report.scored) == (1, 0, 1)


def test_a_wav_shorter_than_its_header_waits_and_is_ingested_once_complete(trained, drop_dir, tmp_path):
    full = wav_bytes(trained.abnormal[1], seed=7, tmp_path=tmp_path)
    path = drop_dir / "fan" / "id_00" / "growing.wav"
    path.parent.mkdir(parents=True)
    path.write_bytes(full[: len(full) // 3])  # the header promises all samples; a third is there
    watcher = Watcher(drop_dir, settle_s=0, grace_s=300)
    for _ in range(2):
        report = watcher.poll()
        assert (report.ingested, report.waiting, report.rejected, report.scored) == (0, 1, [], 0)
    assert count(RejectedFile) == 0 and count(Clip) == 26  # waiting, not refused, not read half-way

    path.write_bytes(full)  # the recorder finishes
    report = watcher.poll()
    assert (report.ingested, report.waiting, report.rejected, report.scored) == (1, 0, [], 1)
    assert report.flagged == clip_ids([path])
    with session_scope() as session:
        clip = session.scalars(select(Clip).where(Clip.path == str(path.resolve()))).one()
        assert clip.duration_s == pytest.approx(2.0)


def test_a_file_broken_since_before_the_watcher_started_is_refused_on_its_first_pass(trained, drop_dir):
    """A cron ``watch --once`` is a new process each time: grace counts from the file's last write too."""
    path = drop_dir / "fan" / "id_00" / "junk.wav"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is no audio at all " * 10)
    clock = Clock()
    set_mtime(path, clock.now - 500)  # written long ago, broken for good
    (refused,) = Watcher(drop_dir, settle_s=2, grace_s=300, clock=clock).poll().rejected
    assert (refused["path"], refused["reason"]) == (str(path.resolve()), "not_audio")


@pytest.mark.parametrize(
    ("content", "reason", "detail"),
    [("truncated", "corrupt", "truncated"), ("garbage", "not_audio", ""), ("empty", "empty", "")],
)
def test_a_file_broken_for_good_is_refused_after_grace_and_not_retried(
    trained, drop_dir, tmp_path, content, reason, detail
):
    full = wav_bytes(trained.abnormal[2], seed=8, tmp_path=tmp_path)
    broken = {"truncated": full[: len(full) // 2], "garbage": b"this is no audio at all " * 200, "empty": b""}
    path = drop_dir / "fan" / "id_00" / "broken.wav"
    path.parent.mkdir(parents=True)
    path.write_bytes(broken[content])
    clock = Clock()
    set_mtime(path, clock.now - 10)  # settled: nothing has written to it for a while
    watcher = Watcher(drop_dir, settle_s=2, grace_s=60, clock=clock)
    assert watcher.poll().waiting == 1
    clock.now += 30
    assert watcher.poll().waiting == 1

    clock.now += 31  # incomplete for longer than grace_s: handed to ingest, which says why it is refused
    report = watcher.poll()
    assert report.ingested == 0 and report.waiting == 0
    (refused,) = report.rejected
    assert refused["path"] == str(path.resolve()) and refused["reason"] == reason
    assert detail in refused["detail"]
    with session_scope() as session:
        (row,) = session.scalars(select(RejectedFile)).all()
        assert (row.path, row.reason) == (str(path.resolve()), reason)

    for _ in range(2):  # not retried while it stays as it is, by this watcher or a restarted one
        clock.now += 1000
        assert watcher.poll() == PollReport()
    assert Watcher(drop_dir, settle_s=2, grace_s=0, clock=clock).poll() == PollReport()
    assert count(RejectedFile) == 1

    path.write_bytes(full)  # fixed (re-sent): a changed file is tried again
    clock.now = time.time() + 10
    report = watcher.poll()
    assert (report.ingested, report.rejected, report.scored) == (1, [], 1)


@pytest.fixture
def trained_on(any_db_url, tmp_path) -> tuple[str, list[Path]]:
    """``(url, normal plant clips)``: a small plant (fan/id_00) ingested, a Mahalanobis model trained and every clip
    scored, in a fresh database on each backend."""
    from core.datasets.demo import write_plant
    from core.workflows.ingest import ingest
    from core.workflows.scoring import score
    from core.workflows.training import train

    plan = write_plant(tmp_path / "plant", machines=1, normal=8, abnormal=2, duration_s=1.0, seed=0, n_jobs=1)
    assert ingest([str(tmp_path / "plant")], url=any_db_url, n_jobs=1).ingested == 10
    assert train(MACHINE, "mahalanobis", url=any_db_url).trained
    score(url=any_db_url, n_jobs=1)
    return any_db_url, [Path(c.path) for c in plan if not c.anomaly]


def test_a_machine_name_too_long_to_store_is_refused_once_and_the_clip_beside_it_ingested(trained_on, drop_dir):
    """On PostgreSQL too, which enforces the column's length: one pass stores and scores the good clip, records the
    refusal once; later passes and a restarted watcher leave the refused file alone."""
    url, normal = trained_on
    good = drop(drop_dir, normal[0], "good.wav", seed=1)
    bad = drop_dir / ("t" * 70) / "id_00" / "bad.wav"  # the type is the folder's name: 70 characters
    bad.parent.mkdir(parents=True)
    sf.write(bad, new_recording(normal[1], 2), 16_000, subtype="PCM_16")
    watcher = Watcher(drop_dir, url=url, settle_s=0)

    report = watcher.poll()

    assert (report.ingested, report.scored) == (1, 1)
    (refused,) = report.rejected
    assert (refused["path"], refused["reason"]) == (str(bad.resolve()), "invalid_parameter")
    assert refused["detail"] == f"machine type '{'t' * 23}…' is 70 characters; at most 64"
    with session_scope(url) as session:
        (clip,) = session.scalars(select(Clip).where(Clip.path == str(good.resolve()))).all()
        assert clip.machine.key == MACHINE
        assert session.scalar(select(func.count()).select_from(Score).where(Score.clip_id == clip.id)) == 1
        assert [row.path for row in session.scalars(select(RejectedFile))] == [str(bad.resolve())]
    assert watcher.poll() == PollReport()
    assert Watcher(drop_dir, url=url, settle_s=0).poll() == PollReport()
    with session_scope(url) as session:
        assert session.scalar(select(func.count()).select_from(RejectedFile)) == 1


@contextmanager
def time_zone(name: str) -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Tokyo"])
def test_a_restart_honours_refusals_whatever_the_local_time_zone(trained, drop_dir, tmp_path, zone):
    """Refusal times are compared with file times in UTC: a refused file left as it is stays refused after
    a restart, and one changed since the refusal is tried again (not lost)."""
    with time_zone(zone):
        bad = drop_dir / "fan" / "id_00" / "bad.wav"
        bad.parent.mkdir(parents=True)
        bad.write_bytes(b"not audio " * 100)
        fixed_later = bad.with_name("fixed.wav")
        fixed_later.write_bytes(b"not audio either " * 100)
        for path in (bad, fixed_later):
            set_mtime(path, time.time() - 60)
        report = Watcher(drop_dir, settle_s=0, grace_s=0).poll()
        assert len(report.rejected) == 2

        fixed_later.write_bytes(wav_bytes(trained.abnormal[3], seed=9, tmp_path=tmp_path))
        set_mtime(fixed_later, time.time() + 1)
        clock = Clock(time.time() + 5)
        report = Watcher(drop_dir, settle_s=0, grace_s=0, clock=clock).poll()  # a restart
        assert (report.ingested, report.rejected) == (1, [])
        assert count(RejectedFile) == 2


def test_a_registered_file_rewritten_while_down_is_ingested_on_restart(trained, drop_dir, tmp_path):
    path = drop(drop_dir, trained.normal[0], "slot-1.wav", seed=20)
    assert Watcher(drop_dir, settle_s=0).poll().ingested == 1
    # while no watcher runs, the recorder reuses the name for a new recording
    path.write_bytes(wav_bytes(trained.abnormal[0], seed=21, tmp_path=tmp_path))
    set_mtime(path, time.time() + 1)
    report = Watcher(drop_dir, settle_s=0, clock=Clock(time.time() + 5)).poll()
    assert (report.ingested, report.scored) == (1, 1)
    assert len(report.flagged) == 1


# --- restarts -----------------------------------------------------------------------------------------------


def test_a_restart_repeats_nothing_and_takes_what_arrived_meanwhile(trained, drop_dir):
    channels = channels_from(webhook_url=NOWHERE)
    first = [drop(drop_dir, trained.abnormal[k], f"a{k}.wav", seed=k) for k in range(3)]
    drop(drop_dir, trained.normal[0], "n0.wav", seed=30)
    report = Watcher(drop_dir, settle_s=0, channels=channels).poll()
    assert (report.ingested, report.scored, len(report.flagged)) == (4, 4, 3)
    after_first = counts()
    assert after_first[3] == 3  # one notification per flag

    restarted = Watcher(drop_dir, settle_s=0, channels=channels)
    report = restarted.poll()
    assert report == PollReport()  # nothing re-ingested, nothing rescored, no new flags
    assert counts() == after_first

    late = drop(drop_dir, trained.abnormal[3], "late.wav", seed=40)  # arrived while "down"
    report = Watcher(drop_dir, settle_s=0, channels=channels).poll()
    assert (report.ingested, report.already_known, report.scored) == (1, 0, 1)
    assert report.flagged == clip_ids([late])
    clips, scores, refused, notifications = counts()
    assert (clips, scores, refused, notifications) == (after_first[0] + 1, after_first[1] + 1, 0, 4)
    with session_scope() as session:
        keys = session.execute(select(Notification.clip_id, Notification.model_id, Notification.channel)).all()
    assert len(keys) == len(set(keys)) == 4
    assert {k[0] for k in keys} == set(clip_ids([*first, late]))


def test_flags_a_crashed_watcher_scored_but_never_announced_are_announced(trained, drop_dir):
    """Ingested and scored, then killed before enqueueing: the next watcher enqueues them (look-back)."""
    files = [drop(drop_dir, trained.abnormal[k], f"a{k}.wav", seed=k) for k in range(2)]
    assert len(Watcher(drop_dir, settle_s=0).poll().flagged) == 2  # no channels: nothing enqueued
    assert count(Notification) == 0

    channels = channels_from(webhook_url=NOWHERE)
    report = Watcher(drop_dir, settle_s=0, channels=channels).poll()
    assert report.flagged == []  # not new to this pass...
    with session_scope() as session:
        assert sorted(session.scalars(select(Notification.clip_id))) == sorted(clip_ids(files))  # ...but announced
    Watcher(drop_dir, settle_s=0, channels=channels).poll()
    assert count(Notification) == 2

    report = Watcher(drop_dir, settle_s=0, channels=channels, lookback_s=0).poll()  # too old for the look-back
    assert count(Notification) == 2 and report.flagged == []


def test_a_quiet_pass_writes_nothing(trained, drop_dir, monkeypatch):
    """Flags already enqueued are not written again on every pass (a long-running watcher's passes stay cheap)."""
    for k in range(3):
        drop(drop_dir, trained.abnormal[k], f"a{k}.wav", seed=k)
    watcher = Watcher(drop_dir, settle_s=0, channels=channels_from(webhook_url=NOWHERE))
    assert len(watcher.poll().flagged) == 3
    writes = []
    real = notify.write_transaction
    monkeypatch.setattr(notify, "write_transaction", lambda *a, **k: writes.append(1) or real(*a, **k))
    for _ in range(3):
        assert watcher.poll() == PollReport()
    assert writes == []
    assert count(Notification) == 3


@contextmanager
def clip_loads() -> Iterator[list[int]]:
    """Ids of the clip rows read from the database meanwhile (each time one is read)."""
    loaded: list[int] = []

    def on_load(clip, _context) -> None:
        loaded.append(clip.id)

    event.listen(Clip, "load", on_load)
    try:
        yield loaded
    finally:
        event.remove(Clip, "load", on_load)


def test_later_passes_read_only_flags_newer_than_those_handled(trained, drop_dir):
    """After its first pass (which looks back for flags a predecessor never enqueued), a watcher reads only
    the flags of clips above the highest one it enqueued: a quiet pass reads no clip at all."""
    first = [drop(drop_dir, trained.abnormal[k], f"a{k}.wav", seed=k) for k in range(3)]
    watcher = Watcher(drop_dir, settle_s=0, channels=channels_from(webhook_url=NOWHERE))
    assert sorted(watcher.poll().flagged) == sorted(clip_ids(first))
    with clip_loads() as loaded:
        for _ in range(3):
            assert watcher.poll() == PollReport()
    assert loaded == []

    late = drop(drop_dir, trained.abnormal[3], "late.wav", seed=40)
    with clip_loads() as loaded:
        report = watcher.poll()
    assert report.flagged == clip_ids([late])
    assert not set(loaded) & set(clip_ids(first))  # the flags handled before are not read again
    with session_scope() as session:
        assert sorted(session.scalars(select(Notification.clip_id))) == sorted(clip_ids([*first, late]))


def test_a_pass_with_nothing_new_scores_nothing(trained, drop_dir, tmp_path):
    """Scoring runs on a watcher's first pass and after a pass ingested clips, not on every pass: a clip whose
    file vanished before it was scored is not retried (nor its model loaded) on every quiet pass."""
    from core.workflows.ingest import ingest
    from core.workflows.model_store import load_detector

    gone = drop(tmp_path / "elsewhere", trained.abnormal[0], "gone.wav", seed=5)
    assert ingest([str(gone)], n_jobs=1).ingested == 1  # registered, then deleted before anything scored it
    gone.unlink()
    watcher = Watcher(drop_dir, settle_s=0)
    assert watcher.poll().scored == 0  # the first pass tried it
    info = load_detector.cache_info()
    loads = info.hits + info.misses
    for _ in range(3):
        assert watcher.poll() == PollReport()
    info = load_detector.cache_info()
    assert info.hits + info.misses == loads  # no quiet pass went looking for unscored clips

    drop(drop_dir, trained.normal[0], "n0.wav", seed=6)
    assert (watcher.poll().ingested, count(Score)) == (1, 27)  # a pass that ingests still scores


def test_a_restarted_watcher_scores_what_its_killed_predecessor_left_unscored(trained, drop_dir):
    from core.workflows.ingest import ingest

    path = drop(drop_dir, trained.abnormal[0], "a.wav", seed=1)
    assert ingest([str(path)], n_jobs=1).ingested == 1  # ingested, then killed before scoring
    watcher = Watcher(drop_dir, settle_s=0, channels=channels_from(webhook_url=NOWHERE))
    report = watcher.poll()
    assert (report.ingested, report.scored) == (0, 1)
    with session_scope() as session:
        assert list(session.scalars(select(Notification.clip_id))) == clip_ids([path])  # and announced
    assert watcher.poll() == PollReport()


def test_a_missing_folder_is_bad_input(tmp_path):
    with pytest.raises(BadInputError) as caught:
        Watcher(tmp_path / "no-such-folder")
    assert caught.value.reason == "not_found"


# --- run(): the loop, its dispatcher, and failing passes ----------------------------------------------------


def test_run_polls_until_max_polls_and_stops_its_dispatcher(trained, drop_dir):
    drop(drop_dir, trained.abnormal[0], "a.wav", seed=1)
    reports: list[PollReport] = []
    Watcher(drop_dir, settle_s=0, channels=channels_from(webhook_url=NOWHERE)).run(
        interval_s=0.01, max_polls=3, on_poll=reports.append
    )
    assert [r.ingested for r in reports] == [1, 0, 0]
    assert not [t for t in threading.enumerate() if t.name == "notification-dispatcher"]


def test_run_stops_when_asked(trained, drop_dir):
    stop = threading.Event()
    reports: list[PollReport] = []

    def on_poll(report: PollReport) -> None:
        reports.append(report)
        if len(reports) == 2:
            stop.set()

    Watcher(drop_dir, settle_s=0).run(interval_s=0.01, stop=stop, on_poll=on_poll)
    assert len(reports) == 2


def test_a_failing_pass_is_logged_and_the_next_one_retries(trained, drop_dir, monkeypatch, caplog):
    """A database hiccup (here: the scorer's database went away once) must not end a long-running watcher."""
    path = drop(drop_dir, trained.abnormal[0], "a.wav", seed=1)
    real, calls = watch.score, []

    def flaky_score(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
        return real(*args, **kwargs)

    monkeypatch.setattr(watch, "score", flaky_score)
    reports: list[PollReport] = []
    with caplog.at_level(logging.ERROR, logger="core.workflows.watch"):
        Watcher(drop_dir, settle_s=0).run(interval_s=0.01, max_polls=2, on_poll=reports.append)
    assert "server closed the connection" in caplog.text
    (report,) = reports  # the failed pass reported nothing; the next one scored what the first ingested
    assert (report.ingested, report.scored) == (0, 1)
    assert count(Score) == 27
    assert clip_ids([path])[0] in {item.clip_id for item in triage_queue(MACHINE)}


# --- notifications never hold up ingestion -------------------------------------------------------------------


@contextmanager
def slow_webhook() -> Iterator[tuple[str, list[dict], threading.Event, threading.Event, threading.Event]]:
    """A local webhook that holds each request until released: (url, bodies, started, release, finished)."""
    bodies: list[dict] = []
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            started.set()
            release.wait(30)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            finished.set()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/flags", bodies, started, release, finished
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_a_slow_webhook_never_blocks_a_pass(trained, drop_dir, monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(notify, "SEND_TIMEOUT_S", 30.0)  # the send blocks until the server answers
    with slow_webhook() as (url, bodies, started, release, finished):
        channels = channels_from(webhook_url=url)
        watcher = Watcher(drop_dir, settle_s=0, channels=channels)
        first = drop(drop_dir, trained.abnormal[0], "a0.wav", seed=1)
        assert watcher.poll().flagged == clip_ids([first])
        dispatcher = Dispatcher(channels, interval_s=0.02).start()
        try:
            assert started.wait(20)  # the dispatcher is now stuck inside the webhook call

            second = drop(drop_dir, trained.abnormal[1], "a1.wav", seed=2)
            report = watcher.poll()  # ingestion goes on meanwhile
            assert not finished.is_set()  # the pass ended while the server still held the request
            assert (report.ingested, report.scored, report.flagged) == (1, 1, clip_ids([second]))
            with session_scope() as session:
                statuses = dict(session.execute(select(Notification.clip_id, Notification.status)).all())
            assert statuses == {clip_ids([first])[0]: "pending", clip_ids([second])[0]: "pending"}

            release.set()
            assert wait_for(lambda: count(Notification) == 2 and len(bodies) == 2 and all(
                s == "sent" for s in _statuses()))  # fmt: skip
        finally:
            dispatcher.stop()
    assert sorted(b["clip_id"] for b in bodies) == sorted(clip_ids([first, second]))
    assert all(b["machine"] == MACHINE and b["score"] > b["threshold"] for b in bodies)


def test_an_announced_flag_leaves_no_trace_of_the_webhook_url_in_the_database(trained, drop_dir, data_dir, caplog,
                                                                              monkeypatch):  # fmt: skip
    """The webhook URL's path and query (Slack's, Teams' token) are stored nowhere: not in any column of any table
    (the outbox keeps scheme, host and a fingerprint), not in the database's files, not in the log."""
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    first = drop(drop_dir, trained.abnormal[0], "a0.wav", seed=1)
    with slow_webhook() as (url, bodies, _, release, _):
        release.set()  # answers at once
        origin = url.rsplit("/", 1)[0]
        secret = f"{origin}/services/T0001/B0002/Zs3cr3tT0k3n?key=hush"
        with caplog.at_level(logging.DEBUG):
            Watcher(drop_dir, settle_s=0, channels=channels_from(webhook_url=secret)).run(interval_s=0.1, max_polls=1)
    assert [b["clip_id"] for b in bodies] == clip_ids([first]) and _statuses() == ["sent"]  # announced
    with session_scope() as session:
        (row,) = session.scalars(select(Notification)).all()
        assert row.target == f"{origin} sha256:{hashlib.sha256(secret.encode()).hexdigest()[:16]}"
        engine = session.get_bind()
        dump = [
            str(value)
            for table in inspect(engine).get_table_names()
            for record in session.execute(text(f"SELECT * FROM {table}"))
            for value in record
        ]
    dispose_engines()
    for fragment in ("/services", "T0001", "Zs3cr3t", "hush"):
        assert not [value for value in dump if fragment in value], fragment
        assert fragment not in caplog.text
        for file in data_dir.glob("anomaly.db*"):  # the file, its WAL: not even a free page holds it
            assert fragment.encode() not in file.read_bytes(), file.name


def _statuses() -> list[str]:
    with session_scope() as session:
        return list(session.scalars(select(Notification.status)))


# --- the command line -------------------------------------------------------------------------------------------

SUMMARY = re.compile(
    r"\d\d:\d\d:\d\d ingested (\d+), already known (\d+), refused (\d+), scored (\d+), new flags (\d+), "
    r"still being written (\d+)"
)


def cli_env() -> dict[str, str]:
    env = os.environ | {"PYTHONPATH": str(REPO)}
    for name in ("DATABASE_URL", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "NOTIFY_WEBHOOK_URL",
                 "NOTIFY_SNS_TOPIC_ARN"):  # fmt: skip
        env.pop(name, None)
    return env


def run_watch(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", "watch", *args], cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_cli_once_ingests_scores_and_prints_a_summary(trained, drop_dir):
    for k in range(2):
        drop(drop_dir, trained.abnormal[k], f"a{k}.wav", seed=k)
    drop(drop_dir, trained.normal[0], "n0.wav", seed=10)
    (drop_dir / "fan" / "id_00" / "junk.wav").write_bytes(b"")  # still being written (and no grace yet)
    dispose_engines()  # the subprocess writes the same SQLite file

    result = run_watch(str(drop_dir), "--once", "--settle", "0")
    assert result.returncode == 0, result.stderr
    assert f"watching {drop_dir.resolve()}" in result.stderr and "no notifications configured" in result.stderr
    (summary,) = SUMMARY.findall(result.stderr)
    assert summary == ("3", "0", "0", "3", "2", "1")
    assert count(Clip) == 26 + 3 and count(Score) == 26 + 3
    assert len(triage_queue(MACHINE)) >= 2

    again = run_watch(str(drop_dir), "--once", "--settle", "0")  # a restart: nothing to do
    assert SUMMARY.findall(again.stderr) == [("0", "0", "0", "0", "0", "1")]
    assert count(Score) == 26 + 3


def test_cli_once_delivers_the_flags_it_found(trained, drop_dir):
    """``--once`` (for cron) announces this pass's flags before exiting, not on some later run."""
    files = [drop(drop_dir, trained.abnormal[k], f"a{k}.wav", seed=k) for k in range(2)]
    dispose_engines()
    with slow_webhook() as (url, bodies, _, release, _):
        release.set()  # answers at once
        result = run_watch(str(drop_dir), "--once", "--settle", "0", "--webhook", url)
        assert result.returncode == 0, result.stderr
        assert f"webhook {url.rsplit('/', 1)[0]}/…" in result.stderr and url not in result.stderr
        assert SUMMARY.findall(result.stderr)[0][4] == "2"
        assert sorted(b["clip_id"] for b in bodies) == sorted(clip_ids(files))
    assert _statuses() == ["sent", "sent"]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--webhook", "ftp://example.com/x"], "invalid_parameter"),
     (["--sns-topic", "arn:aws:s3:::bucket"], "invalid_parameter"),
     (["--interval", "0"], "invalid_parameter"), (["--settle", "-1"], "invalid_parameter")],
)  # fmt: skip
def test_cli_refuses_bad_settings(drop_dir, args, message):
    result = run_watch(str(drop_dir), "--once", *args)
    assert result.returncode == 2
    assert "error:" in result.stderr and message in result.stderr


def test_cli_refuses_a_webhook_url_with_credentials(drop_dir):
    result = run_watch(str(drop_dir), "--once", "--webhook", "https://bot:Zs3cr3t@hooks.example.com/services/T0001")
    assert result.returncode == 2
    assert "error: --webhook must not carry a user name or password" in result.stderr
    assert "Zs3cr3t" not in result.stderr and "T0001" not in result.stderr and "bot" not in result.stderr


def test_cli_refuses_a_missing_folder(tmp_path):
    result = run_watch(str(tmp_path / "nowhere"), "--once")
    assert result.returncode == 2 and "not_found" in result.stderr


def test_cli_killed_and_restarted_ingests_and_scores_every_file_exactly_once(trained, drop_dir, tmp_path):
    dispose_engines()
    log_path = tmp_path / "watch.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "core", "watch", str(drop_dir), "--interval", "0.2", "--settle", "0"],
            cwd=REPO, env=cli_env(), stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            files = [drop(drop_dir, trained.abnormal[k % 4], f"first-{k}.wav", seed=200 + k, atomic=True)
                     for k in range(4)]  # fmt: skip
            assert wait_for(lambda: count(Clip) > 26, timeout_s=60), log_path.read_text()
            files.append(drop(drop_dir, trained.normal[0], "during.wav", seed=250, atomic=True))
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    dispose_engines()
    files += [drop(drop_dir, trained.normal[k], f"after-{k}.wav", seed=300 + k) for k in range(2)]

    result = run_watch(str(drop_dir), "--once", "--settle", "0")
    assert result.returncode == 0, result.stderr
    (summary,) = SUMMARY.findall(result.stderr)
    assert summary[2] == "0" and summary[5] == "0"  # nothing refused, nothing left waiting

    with session_scope() as session:
        for path in files:
            ids = session.scalars(select(Clip.id).where(Clip.path == str(path.resolve()))).all()
            assert len(ids) == 1, path  # ingested exactly once
            n_scores = session.scalar(select(func.count(Score.id)).where(Score.clip_id == ids[0]))
            assert n_scores == 1, path  # scored exactly once
        assert session.scalar(select(func.count(Clip.id))) == 26 + len(files)
        assert session.scalar(select(func.count(Score.id))) == 26 + len(files)
        assert session.scalar(select(func.count(RejectedFile.id))) == 0


def test_cli_never_prints_the_webhook_url(trained, drop_dir):
    """A webhook URL is a secret (Slack, Teams): ``watch`` shows its scheme and host, at start and in the
    warnings of failed sends alike."""
    drop(drop_dir, trained.abnormal[0], "a0.wav", seed=1)
    dispose_engines()
    with slow_webhook() as (url, *_):
        port = url.split(":")[2].split("/")[0]  # a port nobody listens on once the server is closed
    secret = f"http://127.0.0.1:{port}/services/T0001/B0002/Zs3cr3tT0k3n?key=hush"
    result = run_watch(str(drop_dir), "--once", "--settle", "0", "--webhook", secret)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert f"webhook http://127.0.0.1:{port}/…" in output
    assert "webhook unreachable" in output  # the failed send was logged...
    assert "Zs3cr3t" not in output and "hush" not in output and "T0001" not in output  # ...without the URL
    with session_scope() as session:
        (row,) = session.scalars(select(Notification)).all()
    assert row.target == f"http://127.0.0.1:{port} sha256:{hashlib.sha256(secret.encode()).hexdigest()[:16]}"
    assert "Zs3cr3t" not in row.last_error and "hush" not in row.last_error  # never stored, never shown
