"""First start on a fresh machine: an empty database gets the demo plant, written, ingested,
a default detector trained per machine and every clip scored, so the triage queue is ready."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.datasets.demo import write_plant
from core.detection.registry import DEFAULT_DETECTOR
from core.settings import settings
from core.workflows.ingest import IngestReport, ingest
from core.workflows.scoring import score
from core.workflows.training import train
from db.queries import count_clips
from db.session import data_dir, session_scope

DEMO_SUBDIR = "demo_plant"
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
    for each machine (``None`` to skip) and score every clip."""
    target = Path(out_dir) if out_dir else data_dir() / DEMO_SUBDIR
    write_plant(target, machines=machines, normal=normal, abnormal=abnormal,
                progress=_stage(progress, "writing demo clips"))  # fmt: skip
    report = ingest([str(target)], url=url, progress=_stage(progress, "ingesting"))
    if detector:
        train(None, detector, url=url, user="first start", progress=_stage(progress, "training"))
        score(url=url, progress=_stage(progress, "scoring"))
    if progress:
        progress("ready", 1.0)
    return report
