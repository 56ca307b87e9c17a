"""Compact storage of a score's per-frame and per-band errors: float16 arrays instead of JSON.

Layout (little-endian): a ``uint32`` count of frame errors, then the frame errors and the band errors as
``float16`` (2 bytes each).  A 10 s clip at 16 kHz (309 frames, 128 bands) takes 878 bytes, against
about 3 kB as JSON lists of 4 significant digits.  float16 keeps about 3 significant digits (relative
error at most 2**-11, about 5e-4) up to 65504; larger values are stored as 65504 (what is drawn is the
shape of the error over time and bands, never an exact value).  Migration 0009 holds a frozen copy of
this layout.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

HEADER = struct.Struct("<I")
FLOAT16_MAX = float(np.finfo(np.float16).max)  # 65504


def pack_errors(frame_errors: Sequence[float], band_errors: Sequence[float]) -> bytes:
    """``frame_errors`` (per hop in time) and ``band_errors`` (per mel band) as float16 bytes behind the
    frame count.  NaN stays NaN; values beyond +-65504 are stored as +-65504."""
    frames = np.asarray(frame_errors, dtype=np.float64).ravel()
    bands = np.asarray(band_errors, dtype=np.float64).ravel()
    values = np.clip(np.concatenate([frames, bands]), -FLOAT16_MAX, FLOAT16_MAX).astype("<f2")
    return HEADER.pack(frames.size) + values.tobytes()


def unpack_errors(blob: bytes) -> dict[str, list[float]]:
    """``{"frame_errors", "band_errors"}`` as lists of Python floats, from :func:`pack_errors`'s bytes."""
    (n_frames,) = HEADER.unpack_from(blob)
    values = np.frombuffer(blob, dtype="<f2", offset=HEADER.size).astype(np.float64)
    return {"frame_errors": values[:n_frames].tolist(), "band_errors": values[n_frames:].tolist()}


def split_details(details: dict | None) -> tuple[bytes | None, dict | None]:
    """``(frames, rest)``: a score's details with the frame and band errors packed, the rest kept as JSON
    (``None`` when nothing is left)."""
    if not details:
        return None, None
    rest = {k: v for k, v in details.items() if k not in ("frame_errors", "band_errors")}
    if "frame_errors" not in details and "band_errors" not in details:
        return None, rest
    packed = pack_errors(details.get("frame_errors", []), details.get("band_errors", []))
    return packed, rest or None


def join_details(frames: bytes | None, details: dict | None) -> dict | None:
    """The inverse of :func:`split_details`: one dict with the errors unpacked, or None when there is nothing."""
    if frames is None:
        return details
    return {**(details or {}), **unpack_errors(frames)}
