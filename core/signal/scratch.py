"""Reusable per-thread work buffers for the feature path.

A fresh array of a few hundred kilobytes costs new pages on every call (the allocator hands large
blocks straight back to the system), and on a busy machine the page faults cost more than the work done in
the buffer.  :func:`scratch` hands each thread one buffer per name, grown when needed and reused
afterwards.  Pure: no file, UI or environment access.
"""

from __future__ import annotations

import threading

import numpy as np

MAX_KEPT_BYTES = 16 << 20  # a larger request gets a fresh array, never kept (a long clip must not pin memory)

_LOCAL = threading.local()


def scratch(name: str, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """A C-contiguous work array of ``shape`` and ``dtype`` owned by the calling thread under ``name``.

    Its content is undefined; the next call with the same ``name`` on the same thread returns the same
    memory, so a caller must be done with it before asking again.  Requests over ``MAX_KEPT_BYTES`` get a
    fresh array that is not kept: a thread holds at most that much per name.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes > MAX_KEPT_BYTES:
        return np.empty(shape, dtype=dtype)
    buffers = _LOCAL.__dict__.setdefault("buffers", {})
    buffer = buffers.get(name)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = buffers[name] = np.empty(max(nbytes, 1), dtype=np.uint8)
    return buffer[:nbytes].view(dtype).reshape(shape)
