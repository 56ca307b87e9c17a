"""First start on a fresh machine: an empty database gets the demo plant, written and ingested."""

from __future__ import annotations

import os
from pathlib import Path

from core.demo import write_plant
from core.ingest import IngestReport, ingest
from core.parallel import Progress
from db.queries import count_clips
from db.session import data_dir, session_scope

DEMO_SUBDIR = "demo_plant"


def demo_enabled() -> bool:
    """Whether an empty database should be seeded (env ``DEMO_PLANT``, default on; ``0`` turns it off)."""
    return os.environ.get("DEMO_PLANT", "1").strip().lower() not in ("0", "false", "no", "off")


def database_is_empty(url: str | None = None) -> bool:
    with session_scope(url) as session:
        return count_clips(session) == 0


def seed_demo_plant(
    *,
    url: str | None = None,
    out_dir: str | Path | None = None,
    machines: int = 4,
    normal: int = 60,
    abnormal: int = 15,
    progress: Progress | None = None,
) -> IngestReport:
    """Write the demo plant under ``DATA_DIR/demo_plant`` (default) and ingest it.

    ``progress(done, total)`` counts clips written, then clips ingested (total doubled).
    """
    target = Path(out_dir) if out_dir else data_dir() / DEMO_SUBDIR
    total = machines * (normal + abnormal)

    def written(done: int, _total: int) -> None:
        if progress:
            progress(done, 2 * total)

    def ingested(done: int, _total: int) -> None:
        if progress:
            progress(total + done, 2 * total)

    write_plant(target, machines=machines, normal=normal, abnormal=abnormal, progress=written)
    return ingest([str(target)], url=url, progress=ingested)
