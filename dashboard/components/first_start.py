"""Seeds an empty database with a ready-to-triage demo plant, with a progress bar."""

from __future__ import annotations

import streamlit as st

from core.workflows.bootstrap import database_is_empty, demo_enabled, seed_demo_plant


def ensure_demo_data() -> None:
    """On an empty database (and ``DEMO_PLANT`` not ``0``): demo clips, models and scores."""
    if not demo_enabled() or not database_is_empty():
        return
    with st.status("First start: building a demo plant so there is something to triage…", expanded=True) as box:
        bar = st.progress(0.0, text="starting")

        def progress(stage: str, fraction: float) -> None:
            bar.progress(fraction, text=f"{stage} ({fraction:.0%})")

        report = seed_demo_plant(progress=progress)
        box.update(label=f"Demo plant ready: {report.ingested} clips, trained and scored.", state="complete",
                   expanded=False)  # fmt: skip
