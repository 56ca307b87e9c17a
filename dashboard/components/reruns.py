"""What Streamlit does after every script run, trimmed to what this app needs.

After each run Streamlit clears "problem modules" (``script_runner._clean_problem_modules``): it closes
matplotlib's figures and, once Keras is imported, calls ``keras.backend.clear_session()``, which runs a full
``gc.collect()``.  With TensorFlow loaded that collection walks about half a million objects: 0.25 s on this
2-core machine, more in a long-lived server, paid by every rerun of every session (each key a pilot presses
in Triage) once any page has scored, explained or trained with a Keras model.  The app keeps no Keras graph
state between runs (models are loaded from disk per call), so it keeps closing the figures and skips the
Keras reset.
"""

from __future__ import annotations

import sys

from streamlit.runtime.scriptrunner import script_runner


def close_figures() -> None:
    """Close every open matplotlib figure (what Streamlit does after a run, without the Keras reset)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


def skip_keras_reset_after_runs() -> bool:
    """Make Streamlit's after-run clean-up :func:`close_figures`; returns whether its hook was found (a
    Streamlit that renamed it keeps its own clean-up, and this does nothing)."""
    if not callable(getattr(script_runner, "_clean_problem_modules", None)):
        return False
    script_runner._clean_problem_modules = close_figures
    return True
