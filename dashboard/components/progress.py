"""A Streamlit progress bar behind the ``progress(done, total)`` callback that core functions take."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st


def progress_bar(label: str) -> Callable[[int, int], None]:
    """A new bar labelled ``label``; the returned callback moves it to ``done / total``."""
    bar = st.progress(0.0, text=label)
    return lambda done, total: bar.progress(done / max(total, 1), text=f"{label}: {done}/{total}")
