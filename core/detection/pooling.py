"""Pooling frame-level anomaly scores into one score per clip.

A frame-level detector scores every feature vector of a clip; how those scores become
the clip's score matters on real recordings: a short fault (a valve's click, a rub)
drowns in the mean but stands out in the largest values.  Every frame-level detector
takes a ``pooling`` hyper-parameter:

* ``"mean"``: the mean over the clip's vectors (the seed's choice);
* ``"max"``: the largest;
* ``"topN"`` (``"top10"``, ``"top5"``, ...): the mean of the largest N% (at least one vector).
"""

from __future__ import annotations

import re

import numpy as np

from core.errors import BadInputError, Reason

POOLINGS = ("mean", "max", "top10")  # the documented choices; any "topN" with 0 < N <= 100 is accepted
_TOP = re.compile(r"top(\d{1,3})")


def check_pooling(pooling: str) -> str:
    """``pooling`` if it is ``mean``, ``max`` or ``topN`` (0 < N <= 100); else a :class:`BadInputError`."""
    match = _TOP.fullmatch(str(pooling))
    if pooling in ("mean", "max") or (match and 0 < int(match.group(1)) <= 100):
        return pooling
    raise BadInputError(Reason.INVALID_PARAMETER, f"pooling must be mean, max or topN (e.g. top10), got {pooling!r}")


def pool(values: np.ndarray, pooling: str) -> float:
    """One clip's frame scores ``(n_vectors,)`` pooled into a float (see the module docstring)."""
    values = np.asarray(values, dtype=np.float64)
    if check_pooling(pooling) == "mean":
        return float(values.mean())
    if pooling == "max":
        return float(values.max())
    k = max(1, int(np.ceil(values.size * int(pooling[3:]) / 100)))
    return float(np.partition(values, values.size - k)[values.size - k :].mean())


def pool_clips(values: np.ndarray, offsets: np.ndarray, pooling: str) -> np.ndarray:
    """Pool ``values`` ``(sum n_vectors,)`` within each clip starting at ``offsets``: float64 ``(n_clips,)``."""
    return np.array([pool(part, pooling) for part in np.split(values, offsets[1:])], dtype=np.float64)
