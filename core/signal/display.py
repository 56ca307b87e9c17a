"""What the pages draw, computed: waveform envelopes and where a clip is most abnormal.

Pure computation: arrays in, arrays out.
"""

from __future__ import annotations

import numpy as np


def envelope(signal: np.ndarray, sr: int, n_points: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min/max envelope of a waveform for fast drawing.

    Returns ``(times_s, low, high)``, each ``(min(n_points, len(signal)),)``: the
    signal is cut into that many equal blocks and each block is drawn as its
    minimum and maximum (a 10 s clip at 16 kHz becomes 2,000 points, not 160,000).
    """
    n = len(signal)
    blocks = max(1, min(n_points, n))
    edges = np.linspace(0, n, blocks + 1).astype(int)
    low = np.minimum.reduceat(signal, edges[:-1])
    high = np.maximum.reduceat(signal, edges[:-1])
    return edges[:-1] / sr, low, high


def most_abnormal_window(
    frame_errors, hop_length: int, sr: int, window_s: float = 1.0, edge_frames: int = 2
) -> tuple[float, float]:
    """Start and end (s) of the ``window_s`` span with the highest mean frame error.

    Frame ``v`` starts at ``v * hop_length / sr`` seconds.  The first and last
    ``edge_frames`` frames are left out when the clip is long enough: the zero
    padding at a clip's edges makes them look abnormal in every clip.  The end never
    passes the last frame.
    """
    errors = np.asarray(frame_errors, dtype=np.float64)
    width = max(1, min(len(errors), round(window_s * sr / hop_length)))
    skip = edge_frames if len(errors) - 2 * edge_frames >= width else 0
    inner = errors[skip : len(errors) - skip]
    sums = np.convolve(inner, np.ones(width), mode="valid")
    start = (int(np.argmax(sums)) + skip) * hop_length / sr
    return start, min(start + window_s, len(errors) * hop_length / sr)
