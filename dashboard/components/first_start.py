"""Seeds an empty database with a ready-to-triage demo plant, with a progress bar."""

from __future__ import annotations

import streamlit as st

from core.workflows.bootstrap import first_start_needed, run_first_start


def ensure_demo_data() -> None:
    """On an empty database (and ``DEMO_PLANT`` not ``0``), or after an interrupted first start: demo
    clips, models and scores.  A second session opened meanwhile waits for the first one's work."""
    if not first_start_needed():
        return
    with st.status("First start: building a demo plant so there is something to triage…", expanded=True) as box:
        bar = st.progress(0.0, text="starting")

        def progress(stage: str, fraction: float) -> None:
            bar.progress(fraction, text=f"{stage} ({fraction:.0%})")

        report = run_first_start(progress=progress)
        done = "Demo plant ready" if report is None else f"Demo plant ready: {report.clips} clips"
        box.update(label=f"{done}, trained and scored.", state="complete", expanded=False)
