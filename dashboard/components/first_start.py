"""Seeds an empty database with the demo plant, with a progress bar, once per server."""

from __future__ import annotations

import streamlit as st

from core.bootstrap import database_is_empty, demo_enabled, seed_demo_plant


def ensure_demo_data() -> None:
    """On an empty database (and ``DEMO_PLANT`` not ``0``), write and ingest the demo plant."""
    if not demo_enabled() or not database_is_empty():
        return
    with st.status("First start: generating a demo plant so there is something to explore...", expanded=True) as box:
        bar = st.progress(0.0, text="writing demo clips")

        def progress(done: int, total: int) -> None:
            stage = "writing demo clips" if done <= total // 2 else "ingesting demo clips"
            bar.progress(min(done / max(total, 1), 1.0), text=f"{stage}: {done}/{total}")

        report = seed_demo_plant(progress=progress)
        box.update(label=f"Demo plant ready: {report.ingested} clips ingested.", state="complete", expanded=False)
