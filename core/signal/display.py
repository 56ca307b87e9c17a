"""What the pages draw, computed: waveform envelopes and where a clip is most abnormal.

Pure computation: arrays in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

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


VIEW_COLUMNS = 2000  # spectrogram columns drawn at most, whatever a clip's length and rate
PLAYER_SECONDS = 120.0  # audio handed to the player at most


@dataclass(frozen=True)
class ClipViews:
    """What a page draws of one clip, bounded in size whatever the clip's length and sample rate.

    Attributes
    ----------
    player : ndarray of float32, shape (<= PLAYER_SECONDS * sr,)
        The audio the player gets: the clip's first ``PLAYER_SECONDS``.
    sr : int
        Sample rate (Hz).
    duration_s : float
        The whole clip's length (s).
    envelope : tuple of ndarrays
        ``(times_s, low, high)`` of the whole clip, at most 2,000 points each (:func:`envelope`).
    hop_length : int
        Samples between spectrogram columns: the features' hop, longer when the clip would give more than
        ``VIEW_COLUMNS`` columns.
    stft_db, mel_db : ndarray of float32
        ``(1 + n_fft // 2, <= VIEW_COLUMNS + 1)`` and ``(n_mels, <= VIEW_COLUMNS + 1)``, dB re the clip's peak.
    """

    player: np.ndarray
    sr: int
    duration_s: float
    envelope: tuple[np.ndarray, np.ndarray, np.ndarray]
    hop_length: int
    stft_db: np.ndarray
    mel_db: np.ndarray

    @property
    def nbytes(self) -> int:
        arrays = (self.player, *self.envelope, self.stft_db, self.mel_db)
        return int(sum(a.nbytes for a in arrays))


def view_hop(n_samples: int, hop_length: int, max_columns: int = VIEW_COLUMNS) -> int:
    """The smallest multiple of ``hop_length`` that cuts ``n_samples`` into at most ``max_columns`` columns."""
    return hop_length * max(1, -(-n_samples // (hop_length * max_columns)))


def clip_views(signal: np.ndarray, sr: int, *, n_fft: int = 1024, hop_length: int = 512, n_mels: int = 64) -> ClipViews:
    """The bounded :class:`ClipViews` of one channel ``signal`` (float32, ``(n_samples,)``) at ``sr`` Hz."""
    from core.signal.features import log_mel, stft_db

    hop = view_hop(signal.size, hop_length)
    return ClipViews(
        player=np.array(signal[: int(PLAYER_SECONDS * sr)], dtype=np.float32),
        sr=sr,
        duration_s=signal.size / sr,
        envelope=envelope(signal, sr),
        hop_length=hop,
        stft_db=stft_db(signal, n_fft=n_fft, hop_length=hop),
        mel_db=log_mel(signal, sr, n_mels=n_mels, n_fft=n_fft, hop_length=hop),
    )


def audio_span(signal: np.ndarray, sr: int, start_s: float, end_s: float) -> np.ndarray:
    """The samples of ``signal`` (``(n_samples,)`` at ``sr`` Hz) from ``start_s`` to ``end_s`` seconds, exact to
    the sample (a player's own start and end times round to whole seconds), clipped to the signal; at least one
    sample when the signal has any.  A view, not a copy."""
    n = signal.shape[0]
    first = min(max(0, int(round(start_s * sr))), max(0, n - 1))
    last = min(n, max(first + 1, int(round(end_s * sr))))
    return signal[first:last]
