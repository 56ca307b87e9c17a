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


def most_abnormal_window(frame_errors, hop_length: int, sr: int, window_s: float = 1.0) -> tuple[float, float]:
    """Start and end (s) of the ``window_s`` span with the highest mean frame error.

    Frame ``v`` starts at ``v * hop_length / sr`` seconds.
    """
    errors = np.asarray(frame_errors, dtype=np.float64)
    width = max(1, min(len(errors), round(window_s * sr / hop_length)))
    sums = np.convolve(errors, np.ones(width), mode="valid")
    start = int(np.argmax(sums)) * hop_length / sr
    return start, start + window_s
