"""Keras, imported once for every Keras model, with TensorFlow's start-up noise hidden.

Only the detectors that need it import this module, so the rest of the product
(dashboard start, CLI listing, the Mahalanobis detector) never loads TensorFlow.

Whether the notices are hidden is decided by :mod:`core.settings` (the one reader of the
environment), from TensorFlow's own ``TF_CPP_MIN_LOG_LEVEL``: unset or ``3`` hides them,
``0``-``2`` shows them.  This module reads no environment variable itself.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from core.settings import settings


@contextmanager
def _native_stderr_silenced(enabled: bool = True) -> Iterator[None]:
    """Hide what native code writes to stderr while ``enabled`` (TensorFlow's start-up notices about CUDA
    and oneDNN, which it prints whatever TF_CPP_MIN_LOG_LEVEL says).  Python errors still show."""
    if not enabled:  # the user asked to see them
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


with _native_stderr_silenced(not settings().tensorflow_notices):
    import keras

    # Keras retraces its step functions for every new model; TensorFlow warns about that each time.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)

    keras.ops.convert_to_tensor(0.0)  # initialise the devices now, while their notices are hidden


__all__ = ["keras"]
