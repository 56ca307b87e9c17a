"""Log-mel features, computed the way the seed's autoencoder consumes them, only faster.

Pure computation: arrays in, arrays out; no file or UI access.

The reference recipe (the seed's ``extract_signal_features``) is::

    S = librosa.feature.melspectrogram(y=signal, sr=sr, n_fft=n_fft,
                                       hop_length=hop_length, n_mels=n_mels)
    L = librosa.power_to_db(S, ref=np.max)          # (n_mels, n_columns), dB
    # then `frames` consecutive columns stacked into one vector per position

This module reproduces it to within 1e-3 dB (about 1e-5 dB on real clips), vectorised: blocks of
columns framed, zero-padded and windowed in one pass (a numba kernel) into reused per-thread buffers
(:mod:`core.signal.scratch`), a float32 real FFT on one thread (``scipy.fft``), the power and the mel
bands in a second kernel pass (each band's filter over only the bins it covers), ``power_to_db`` in place,
and the stacking returned as a strided view instead of a Python loop's copy.  The kernels are compiled on
first use and cached by numba.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import librosa
import numba
import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

from core.errors import BadInputError, Reason
from core.signal.scratch import scratch

AMIN = 1e-10  # power floor before the logarithm (librosa's default)
TOP_DB = 80.0  # dynamic range kept below the clip's maximum, dB (librosa's default)
FFT_BLOCK = 320  # STFT columns transformed at once: a 10 s clip at 16 kHz in one block


@dataclass(frozen=True)
class FeatureParams:
    """Parameters of the log-mel frame features (the seed's defaults).

    ``n_mels`` mel bands, ``frames`` consecutive STFT columns per vector,
    ``n_fft`` FFT size and ``hop_length`` hop, both in samples.
    """

    n_mels: int = 64
    frames: int = 5
    n_fft: int = 1024
    hop_length: int = 512

    @property
    def dims(self) -> int:
        """Length of one feature vector: ``n_mels * frames``."""
        return self.n_mels * self.frames

    @property
    def min_samples(self) -> int:
        """Fewest samples a signal needs to yield one feature vector."""
        return required_samples(frames=self.frames, n_fft=self.n_fft, hop_length=self.hop_length)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def required_samples(*, frames: int = 5, n_fft: int = 1024, hop_length: int = 512) -> int:
    """Fewest samples that give ``frames`` STFT columns and at least one full FFT window.

    With centred framing (``n_fft // 2`` zeros each side) a signal of ``n`` samples has
    ``1 + (n + 2 * (n_fft // 2) - n_fft) // hop_length`` columns.
    """
    return max(n_fft, (frames - 1) * hop_length + n_fft % 2)


@lru_cache(maxsize=32)
def _window(n_fft: int, dtype: type = np.float32) -> np.ndarray:
    """Periodic Hann window (librosa's ``stft`` window), shape ``(n_fft,)``, in ``dtype``."""
    window = librosa.filters.get_window("hann", n_fft, fftbins=True).astype(dtype)
    window.setflags(write=False)
    return window


def mel_band_centres(sr: int, n_mels: int) -> np.ndarray:
    """Centre frequency (Hz) of each band of the mel filterbank the features use (:func:`mel_filterbank`),
    float64 ``(n_mels,)``, ascending from above 0 Hz to below ``sr / 2``.  Every chart and report that
    names a mel band's frequency uses this, so they agree with each other and with the features."""
    return librosa.mel_frequencies(n_mels + 2, fmin=0.0, fmax=sr / 2.0)[1:-1]


@lru_cache(maxsize=32)
def mel_filterbank(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Slaney mel filterbank, float32, shape ``(1 + n_fft // 2, n_mels)`` (transposed for ``power @ fb``)."""
    fb = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, dtype=np.float32)
    fb = np.ascontiguousarray(fb.T)
    fb.setflags(write=False)
    return fb


def _check_signal(signal: np.ndarray, n_fft: int, hop_length: int, frames: int = 1) -> np.ndarray:
    y = np.asarray(signal, dtype=np.float32)
    if y.ndim != 1:
        raise BadInputError(Reason.INVALID_PARAMETER, f"signal must be 1-D, got shape {y.shape}")
    if n_fft < 2 or hop_length < 1 or frames < 1:
        raise BadInputError(
            Reason.INVALID_PARAMETER,
            f"need n_fft >= 2, hop_length >= 1, frames >= 1 (got {n_fft}, {hop_length}, {frames})",
        )
    needed = required_samples(frames=frames, n_fft=n_fft, hop_length=hop_length)
    if y.size < needed:
        raise BadInputError(
            Reason.TOO_SHORT,
            f"signal has {y.size} samples; at least {needed} are needed for one feature vector",
        )
    return y


@numba.njit(cache=True, nogil=True)
def _frame_windowed(
    y: np.ndarray, first: int, hop: int, window: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover
    """Fill ``out`` ``(n_columns, n_fft)`` with centred frames of ``y`` times ``window``, from column ``first``:
    ``out[c, k] = y[(first + c) * hop - n_fft // 2 + k] * window[k]``, zero outside ``y`` (librosa's padding).
    Contiguous slices in the loops so that numba vectorises them."""
    n_fft = window.size
    for c in range(out.shape[0]):
        origin = (first + c) * hop - n_fft // 2
        lo = min(n_fft, max(0, -origin))
        hi = max(lo, min(n_fft, y.size - origin))
        row = out[c]
        row[:lo] = 0.0
        row[hi:] = 0.0
        source, weights, target = y[origin + lo : origin + hi], window[lo:hi], row[lo:hi]
        for k in range(hi - lo):
            target[k] = source[k] * weights[k]


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _mel_power(spectrum, starts, offsets, weights, power, out) -> None:  # pragma: no cover
    """``out[r, m] = sum_b |spectrum[r, b]|^2 * filter_m[b]`` over the bins band ``m``'s filter covers
    (``starts[m]`` on, its weights ``weights[offsets[m]:offsets[m + 1]]``); ``power``: one row's work space."""
    for r in range(spectrum.shape[0]):
        row = spectrum[r]
        for b in range(row.size):
            value = row[b]
            power[b] = value.real * value.real + value.imag * value.imag
        bands = out[r]
        for m in range(bands.size):
            filter_m = weights[offsets[m] : offsets[m + 1]]
            covered = power[starts[m] : starts[m] + filter_m.size]
            acc = np.float32(0.0)
            for k in range(filter_m.size):
                acc += filter_m[k] * covered[k]
            bands[m] = acc


@lru_cache(maxsize=32)
def _band_ranges(sr: int, n_fft: int, n_mels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`mel_filterbank` as each band's run of covered bins: ``(starts int64 (n_mels,), offsets int64
    (n_mels + 1,), weights float32)`` with band ``m``'s weights for bins ``starts[m]`` on at
    ``weights[offsets[m]:offsets[m + 1]]``.  A band's filter spans a few bins: about 2 weights a bin in all."""
    fb = mel_filterbank(sr, n_fft, n_mels)
    starts, runs = np.zeros(n_mels, np.int64), []
    for m in range(n_mels):
        used = np.flatnonzero(fb[:, m])
        starts[m] = used[0] if used.size else 0
        runs.append(fb[used[0] : used[-1] + 1, m] if used.size else fb[:0, m])
    offsets = np.concatenate([[0], np.cumsum([run.size for run in runs])]).astype(np.int64)
    weights = np.ascontiguousarray(np.concatenate(runs), dtype=np.float32)
    for array in (starts, offsets, weights):
        array.setflags(write=False)
    return starts, offsets, weights


def _spectra(
    y: np.ndarray, n_fft: int, hop_length: int, *, dtype: type = np.float32, mel: tuple[int, int] | None = None
) -> np.ndarray:
    """Power spectrogram with centred, zero-padded framing, float32 ``(n_columns, 1 + n_fft // 2)``, or with
    ``mel=(sr, n_mels)`` its mel bands ``(n_columns, n_mels)`` (``power @ mel_filterbank(sr, n_fft, n_mels)``).

    ``FFT_BLOCK`` columns at a time: framed and windowed into a reused buffer (:func:`_frame_windowed`),
    transformed by ``scipy.fft.rfft`` on one thread in ``dtype``, then squared and (with ``mel``) reduced to
    bands at once (:func:`_mel_power`), so the temporaries stay in the cache and the full power spectrogram is
    never written.  After :func:`_to_db` a float32 transform agrees with librosa's float64 one to about
    1e-4 dB on mel bands (tests check 1e-3 dB); single STFT bins far below a loud one need float64
    (``stft_db`` uses it).
    """
    window = _window(n_fft, dtype)
    n_columns, n_bins = 1 + (y.size + 2 * (n_fft // 2) - n_fft) // hop_length, n_fft // 2 + 1
    out = np.empty((n_columns, n_bins if mel is None else mel[1]), dtype=np.float32)
    windowed = scratch("stft.windowed", (min(FFT_BLOCK, n_columns), n_fft), dtype)
    bands = _band_ranges(int(mel[0]), n_fft, int(mel[1])) if mel is not None else None
    power = scratch("stft.power", (n_bins,), np.float32)
    for start in range(0, n_columns, FFT_BLOCK):
        stop = min(start + FFT_BLOCK, n_columns)
        block = windowed[: stop - start]
        _frame_windowed(y, start, hop_length, window, block)
        spectrum = scipy.fft.rfft(block, axis=1, workers=1, overwrite_x=True)
        if bands is not None:
            _mel_power(spectrum, *bands, power, out[start:stop])
            continue
        parts = spectrum.view(dtype)  # re, im, re, ...
        np.square(parts, out=parts)
        np.add(parts[:, 0::2], parts[:, 1::2], out=out[start:stop], casting="same_kind")
    return out


def _to_db(power: np.ndarray) -> np.ndarray:
    """``10 log10(power / max(power))`` floored at ``-TOP_DB``, as ``librosa.power_to_db(ref=np.max)``, in place
    (``power`` float32 is overwritten and returned)."""
    floor = np.float32(AMIN)
    peak = np.float32(10.0) * np.log10(np.maximum(floor, power.max()))  # float32 like every element: peak is 0 dB
    np.maximum(power, floor, out=power)
    np.log10(power, out=power)
    power *= np.float32(10.0)
    power -= peak
    np.maximum(power, power.max() - np.float32(TOP_DB), out=power)
    return power


def _log_mel_columns(y: np.ndarray, sr: int, n_mels: int, n_fft: int, hop_length: int) -> np.ndarray:
    """Log-mel in dB with columns as rows: C-contiguous ``(n_columns, n_mels)``."""
    return _to_db(_spectra(y, n_fft, hop_length, mel=(int(sr), n_mels)))


def log_mel(signal: np.ndarray, sr: int, *, n_mels: int = 64, n_fft: int = 1024, hop_length: int = 512) -> np.ndarray:
    """Log-mel spectrogram in dB relative to the clip's maximum.

    Returns
    -------
    np.ndarray, float32, shape ``(n_mels, 1 + len(signal) // hop_length)``
        Values in ``[-80, 0]`` dB; row 0 is the lowest mel band.
    """
    y = _check_signal(signal, n_fft, hop_length)
    return np.ascontiguousarray(_log_mel_columns(y, sr, n_mels, n_fft, hop_length).T)


def stft_db(signal: np.ndarray, *, n_fft: int = 1024, hop_length: int = 512) -> np.ndarray:
    """Linear-frequency STFT magnitude in dB relative to the clip's maximum.

    Equals ``librosa.amplitude_to_db(abs(librosa.stft(signal)), ref=np.max)``.

    Returns
    -------
    np.ndarray, float32, shape ``(1 + n_fft // 2, 1 + len(signal) // hop_length)``
        Values in ``[-80, 0]`` dB; row 0 is 0 Hz.
    """
    y = _check_signal(signal, n_fft, hop_length)
    return np.ascontiguousarray(_to_db(_spectra(y, n_fft, hop_length, dtype=np.float64)).T)


def stack_frames(columns: np.ndarray, frames: int) -> np.ndarray:
    """Stack ``frames`` consecutive rows of ``columns`` ``(n_columns, n_mels)`` into vectors.

    Returns float32 ``(n_columns - frames + 1, n_mels * frames)`` where vector ``v``
    holds rows ``v .. v + frames - 1`` one after another (the seed's layout): a read-only strided
    view of ``columns`` (each row contiguous, consecutive rows overlapping), ``frames`` times smaller
    in memory than a copy and free to make; ``np.array(features)`` gives a writable copy.
    """
    n_columns, n_mels = columns.shape
    flat = np.ascontiguousarray(columns, dtype=np.float32).ravel()
    windows = sliding_window_view(flat, n_mels * frames)[::n_mels]
    return windows[: n_columns - frames + 1]


def unstack_frames(features: np.ndarray, n_mels: int) -> np.ndarray:
    """The columns that :func:`stack_frames` stacked, float64 ``(n_vectors + frames - 1, n_mels)``: each vector's
    first frame, then the last vector's other frames (its inverse)."""
    vectors = np.asarray(features, dtype=np.float64)
    return np.vstack([vectors[:, :n_mels], vectors[-1, n_mels:].reshape(-1, n_mels)])


PCEN_TIME_CONSTANT = 12.5  # columns: librosa's 0.4 s at 16 kHz with a 512-sample hop
PCEN_SCALE = 2.0**31  # the power of a column at the clip's maximum (0 dB), as librosa scales float audio for PCEN


def pcen_columns(columns_db: np.ndarray, *, time_constant: float = PCEN_TIME_CONSTANT) -> np.ndarray:
    """Per-channel energy normalisation (``librosa.pcen``, its defaults) of log-mel columns.

    Each band's power is divided by its own smoothed recent level (a first-order filter with ``time_constant``
    columns), then compressed: steady sound, a machine's hum and the plant's background alike, is levelled
    towards a constant, while onsets and short events (a valve's clicks, a slider's strokes) stand out.  The
    clip's overall gain is all but removed.

    Parameters
    ----------
    columns_db : np.ndarray, ``(n_columns, n_mels)``
        Log-mel columns in dB relative to the clip's maximum (as :func:`log_mel` transposed), in time order.
    time_constant : float
        The smoother's time constant in columns (default 12.5: 0.4 s at 16 kHz with a 512-sample hop).

    Returns
    -------
    np.ndarray, float64, shape ``(n_columns, n_mels)``
        PCEN values (dimensionless, >= 0; about 0 to a few).
    """
    import scipy.signal  # here, not at the top: 0.7 s that every start-up importing the features would pay

    t = float(time_constant)
    smoothing = (np.sqrt(1.0 + 4.0 * t**2) - 1.0) / (2.0 * t**2)  # librosa's b for a time constant of t columns
    power = 10.0 ** (np.asarray(columns_db, dtype=np.float64).T / 10.0) * PCEN_SCALE
    # the smoother starts settled at the first column's level (librosa's default starts it at 1, far below these
    # powers): else every clip opens with a ramp tens of columns long that top-N pooling takes for an event
    start = scipy.signal.lfilter_zi([smoothing], [1.0, smoothing - 1.0])[None, :] * power[:, :1]
    return librosa.pcen(power, b=smoothing, zi=start).T


def log_mel_frames(
    signal: np.ndarray,
    sr: int,
    *,
    n_mels: int = 64,
    frames: int = 5,
    n_fft: int = 1024,
    hop_length: int = 512,
) -> np.ndarray:
    """Feature vectors of the seed's autoencoder: log-mel dB stacked over ``frames`` columns.

    Parameters
    ----------
    signal : np.ndarray, 1-D
        Audio samples, float in ``[-1, 1]``.
    sr : int
        Sample rate in Hz.
    n_mels, frames, n_fft, hop_length : int
        Mel bands, columns per vector, FFT size and hop (samples).

    Returns
    -------
    np.ndarray, float32, shape ``(n_vectors, n_mels * frames)``
        ``n_vectors = 1 + len(signal) // hop_length - frames + 1``; values in dB,
        ``[-80, 0]`` relative to the clip's maximum.  A read-only view (see :func:`stack_frames`).

    Raises
    ------
    BadInputError
        ``too_short`` when the signal cannot make one vector; ``invalid_parameter``
        for a non 1-D signal or non-positive sizes.
    """
    y = _check_signal(signal, n_fft, hop_length, frames)
    return stack_frames(_log_mel_columns(y, sr, n_mels, n_fft, hop_length), frames)


def features_for(signal: np.ndarray, sr: int, params: FeatureParams) -> np.ndarray:
    """:func:`log_mel_frames` with its parameters taken from ``params``."""
    return log_mel_frames(signal, sr, **params.as_dict())
