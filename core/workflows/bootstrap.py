"""First start on a fresh machine: an empty database gets the demo plant, written, ingested,
a default detector trained per machine and every clip scored, so the triage queue is ready.

The first start is one resumable, single-flight job (:func:`run_first_start`): a lock file makes a
second browser session (or process) wait for the first instead of training a second set of models, and
a state file under ``DATA_DIR`` remembers a start that was interrupted (a closed tab, ``kill -9``), so
the next start finishes it, every step skipping what is already done.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from core.access import OPERATOR
from core.datasets.demo import write_plant
from core.detection.registry import DEFAULT_DETECTOR
from core.settings import settings
from core.workflows.catalogue import machine_keys
from core.workflows.ingest import IngestReport, ingest
from core.workflows.scoring import score
from core.workflows.training import train
from db.queries import count_clips
from db.session import data_dir, session_scope

FIRST_START = replace(OPERATOR, name="first start")  # the audit log's one name for the demo plant's ingest and models

DEMO_SUBDIR = "demo_plant"
STATE_FILE = "first_start.json"  # {"state": "started" | "done"} under DATA_DIR
LOCK_FILE = "first_start.lock"
StageProgress = Callable[[str, float], None]
"""Called as ``progress(stage, fraction_done)`` with fraction in ``[0, 1]`` over the whole start."""

# Share of the first start each stage takes (roughly, on 2 cores).
_STAGES = {"writing demo clips": 0.15, "ingesting": 0.15, "training": 0.55, "scoring": 0.15}


def demo_enabled() -> bool:
    """Whether an empty database should be seeded (the ``DEMO_PLANT`` setting, default on; ``0`` turns it off)."""
    return settings().demo_plant


def database_is_empty(url: str | None = None) -> bool:
    with session_scope(url) as session:
        return count_clips(session) == 0


def _stage(progress: StageProgress | None, name: str) -> Callable[[int, int], None]:
    names = list(_STAGES)
    before = sum(_STAGES[n] for n in names[: names.index(name)])

    def update(done: int, total: int) -> None:
        if progress:
            progress(name, min(1.0, before + _STAGES[name] * done / max(total, 1)))

    return update


def first_start_needed(url: str | None = None) -> bool:
    """Whether a first start is due: the demo plant is on and the database is empty, or an earlier
    first start was interrupted before it finished."""
    return demo_enabled() and (_state() == "started" or database_is_empty(url))


def run_first_start(*, url: str | None = None, progress: StageProgress | None = None, **plant) -> IngestReport | None:
    """Seed the demo plant once (see the module doc); the ingest report, or None when nothing was due
    (another session finished it while this one waited).  ``plant``: :func:`seed_demo_plant`'s options."""
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second session waits here for the first to finish
        try:
            if not first_start_needed(url):
                return None
            _set_state("started")
            report = seed_demo_plant(url=url, progress=progress, **plant)
            _set_state("done")
            return report
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _state() -> str | None:
    try:
        return json.loads((data_dir() / STATE_FILE).read_text()).get("state")
    except (OSError, ValueError, AttributeError):
        return None


def _set_state(state: str) -> None:
    target = data_dir() / STATE_FILE
    staged = target.with_suffix(".tmp")
    staged.write_text(json.dumps({"state": state}))
    os.replace(staged, target)  # never half-written


def seed_demo_plant(
    *,
    url: str | None = None,
    out_dir: str | Path | None = None,
    machines: int = 4,
    normal: int = 60,
    abnormal: int = 15,
    detector: str | None = DEFAULT_DETECTOR,
    progress: StageProgress | None = None,
) -> IngestReport:
    """Write the demo plant under ``DATA_DIR/demo_plant`` (default), ingest it, train ``detector``
    for each machine that has no model yet (``None`` to skip) and score every clip not scored yet: run
    again after an interruption, it finishes the work without doing any of it twice."""
    target = Path(out_dir) if out_dir else data_dir() / DEMO_SUBDIR
    write_plant(target, machines=machines, normal=normal, abnormal=abnormal,
                progress=_stage(progress, "writing demo clips"))  # fmt: skip
    report = ingest([str(target)], url=url, progress=_stage(progress, "ingesting"), actor=FIRST_START)
    if detector:
        untrained = sorted(set(machine_keys(url=url)) - set(machine_keys(require_model=True, url=url)))
        training = _stage(progress, "training")
        for index, machine in enumerate(untrained):  # a resumed start trains only what a killed one had not
            train(machine, detector, url=url, actor=FIRST_START, user=FIRST_START.name,
                  progress=lambda done, total, i=index: training(i * total + done, len(untrained) * total))  # fmt: skip
        score(url=url, progress=_stage(progress, "scoring"))
    if progress:
        progress("ready", 1.0)
    return report
