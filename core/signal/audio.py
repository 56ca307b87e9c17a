"""Reading machine-sound clips from disk, robustly.

:func:`load_clip` reads WAV (PCM 8/16/24/32-bit, float, WAVE_FORMAT_EXTENSIBLE) and
FLAC files through libsndfile, mono or multichannel (the original MIMII files have
8 microphones), and returns one channel as float32 in ``[-1, 1]``.  Anything wrong
with the file raises :class:`core.errors.BadInputError` naming the file and one of
the reasons ``not_audio``, ``corrupt``, ``empty``, ``non_finite``, ``silent``,
``channel_out_of_range``, ``too_short`` or ``too_long``.
"""

from __future__ import annotations

import logging
import os
import struct
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from core.errors import BadInputError, Reason
from core.signal.features import FeatureParams
from core.signal.scratch import scratch

AUDIO_SUFFIXES = (".wav", ".flac")
DEFAULT_MAX_DURATION_S = 600.0  # load_clip's limit unless told; ingest passes the MAX_CLIP_SECONDS setting
DEFAULT_MAX_SAMPLE_RATE = 96_000  # Hz; callers pass the MAX_SAMPLE_RATE setting
MIN_SAMPLE_RATE = 1_000  # Hz; below this no machine sound is left to hear
READ_BLOCK_BYTES = 16 << 20  # a multichannel file is read this much at a time (one channel is kept)
SCALE_PCM16 = np.float32(1.0 / 32768.0)  # 16-bit sample to [-1, 1], as libsndfile scales it
PCM16_BLOCK_BYTES = 256 << 10  # 16-bit WAV data is read this much at a time, into a reused buffer
SILENCE_PEAK = 1e-6  # a clip whose absolute peak is below this is treated as all-silent
NOT_AUDIO_DETAIL = "not a readable audio file (WAV or FLAC)"  # what a file libsndfile does not recognise is told
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Clip:
    """One channel of a recording.

    Attributes
    ----------
    signal : np.ndarray, float32, shape ``(n_samples,)``, values in ``[-1, 1]``
    sr : int, sample rate in Hz
    n_channels : int, channels in the file (the signal is one of them)
    channel : int, index of the channel in ``signal``
    path : str, the file read
    """

    signal: np.ndarray
    sr: int
    n_channels: int
    channel: int
    path: str

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.signal.size / self.sr


@dataclass(frozen=True)
class ClipInfo:
    """Header facts of a readable audio file: sample rate (Hz), channels, frames, duration (s)."""

    sr: int
    n_channels: int
    n_frames: int
    subtype: str
    format: str
    data_offset: int | None = None  # where a WAV file's samples start, bytes

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.sr if self.sr else 0.0


MAX_WAV_CHUNKS = 64  # chunks walked before the data chunk; beyond, libsndfile reads the header (real files have few)


@dataclass(frozen=True)
class _DataChunk:
    offset: int  # bytes from the start of the file to the first sample
    declared: int  # bytes the header promises
    available: int  # bytes the file actually holds after the offset


def _opened(path: Path | str, fileobj: BinaryIO | None, **options) -> AbstractContextManager[BinaryIO]:
    """``fileobj`` as it is (left open), or ``path`` opened for reading (closed on exit)."""
    return nullcontext(fileobj) if fileobj is not None else Path(path).open("rb", **options)


def _wav_chunks(fh: BinaryIO, size: int) -> tuple[bytes | None, _DataChunk | None]:
    """The start of the ``fmt `` chunk (up to 16 bytes) and the sample data of a little-endian RIFF/WAVE file of
    ``size`` bytes open as ``fh``, found by walking its chunks; ``(None, None)`` for anything else, ``None`` for a
    chunk not found."""
    fmt = None
    fh.seek(0)
    head = fh.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None, None
    offset, walked = 12, 0
    while offset + 8 <= size and walked < MAX_WAV_CHUNKS:  # a crafted file of empty chunks costs no more
        walked += 1
        fh.seek(offset)
        chunk_id, chunk_size = struct.unpack("<4sI", fh.read(8))
        if chunk_id == b"fmt ":
            fmt = fh.read(min(chunk_size, 16))
        elif chunk_id == b"data":
            return fmt, _DataChunk(offset + 8, chunk_size, size - offset - 8)
        offset += 8 + chunk_size + (chunk_size & 1)
    return fmt, None


def _plain_pcm16(fmt: bytes | None, chunk: _DataChunk | None) -> tuple[int, int] | None:
    """``(sample rate, channels)`` when ``fmt`` describes plain 16-bit integer PCM (format tag 1, the MIMII and
    DCASE files) over a data chunk, else ``None``: every other file's header is read by libsndfile."""
    if fmt is None or chunk is None or len(fmt) < 16:
        return None
    tag, channels, sr, _, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag != 1 or bits != 16 or channels < 1 or sr < 1 or block_align != 2 * channels:
        return None
    return sr, channels


def _truncation(chunk: _DataChunk | None) -> str | None:
    """Describe a data chunk cut short (libsndfile silently reads what is there), else ``None``."""
    if chunk is None or chunk.declared in (0, 0xFFFFFFFF) or chunk.declared <= chunk.available:
        return None
    return f"truncated: header declares {chunk.declared} data bytes, file holds {chunk.available}"


def clip_info(path: str | os.PathLike, *, fileobj: BinaryIO | None = None) -> ClipInfo:
    """Read only the header of an audio file: ``path``, or ``fileobj`` (a seekable binary file holding the
    clip ``path`` names, e.g. an object fetched from storage; read from its start) when given.

    Raises
    ------
    BadInputError
        naming ``path``: ``not_found``, ``empty`` (zero bytes or zero frames), ``not_audio`` or ``corrupt``.
    """
    p = Path(path) if fileobj is None else str(path)  # a URI stays as written (Path would fold its //)
    if fileobj is None and not p.is_file():
        raise BadInputError(Reason.NOT_FOUND, "no such file", p)
    size = p.stat().st_size if fileobj is None else fileobj.seek(0, os.SEEK_END)
    if size == 0:
        raise BadInputError(Reason.EMPTY, "the file is empty (0 bytes)", p)
    with _opened(p, fileobj) as fh:
        fmt, chunk = _wav_chunks(fh, size)
    plain = _plain_pcm16(fmt, chunk)
    if plain is None:
        return _libsndfile_info(p, chunk, fileobj)
    truncated = _truncation(chunk)
    if truncated:
        raise BadInputError(Reason.CORRUPT, truncated, p)
    data_bytes = chunk.available if chunk.declared in (0, 0xFFFFFFFF) else min(chunk.declared, chunk.available)
    sr, channels = plain
    if data_bytes // (2 * channels) <= 0:
        raise BadInputError(Reason.EMPTY, "the file holds no samples", p)
    return ClipInfo(sr, channels, data_bytes // (2 * channels), "PCM_16", "WAV", chunk.offset)


def _libsndfile_info(p: Path | str, chunk: _DataChunk | None, fileobj: BinaryIO | None = None) -> ClipInfo:
    """:func:`clip_info` of any file but plain 16-bit PCM WAV, by libsndfile (``chunk``: a WAV file's data)."""
    try:
        if fileobj is not None:
            fileobj.seek(0)
        info = sf.info(str(p) if fileobj is None else fileobj)
    except sf.LibsndfileError as exc:
        message = str(exc.error_string)
        if "not recognised" in message.lower():  # the library's words ("Format not recognised.") go to the log only
            log.warning("%s: libsndfile: %s", p, message)
            raise BadInputError(Reason.NOT_AUDIO, NOT_AUDIO_DETAIL, p) from None
        raise BadInputError(Reason.CORRUPT, f"cannot be read as audio ({message})", p) from None
    except (RuntimeError, OSError) as exc:
        raise BadInputError(Reason.CORRUPT, f"cannot be read as audio ({exc})", p) from None
    chunk = chunk if info.format == "WAV" else None
    truncated = _truncation(chunk)
    if truncated:
        raise BadInputError(Reason.CORRUPT, truncated, p)
    if info.frames <= 0:
        raise BadInputError(Reason.EMPTY, "the file holds no samples", p)
    return ClipInfo(
        sr=int(info.samplerate),
        n_channels=int(info.channels),
        n_frames=int(info.frames),
        subtype=str(info.subtype),
        format=str(info.format),
        data_offset=chunk.offset if chunk else None,
    )


def _read_pcm16_channel(
    path: Path | str, info: ClipInfo, channel: int, signal: np.ndarray, fileobj: BinaryIO | None = None
) -> int:
    """Fill ``signal`` with one channel of a 16-bit PCM WAV file's data chunk, scaled to [-1, 1]; the frames read.

    ``PCM16_BLOCK_BYTES`` at a time into this thread's reused buffer (:func:`core.signal.scratch.scratch`),
    each block converted while it is still in the cache: no fresh pages per file, one pass over the data.
    """
    frame_bytes = 2 * info.n_channels
    block = scratch("audio.pcm16", (max(1, PCM16_BLOCK_BYTES // frame_bytes), info.n_channels), "<i2")
    raw = memoryview(block.reshape(-1).view(np.uint8))
    filled = 0
    with _opened(path, fileobj, buffering=0) as fh:
        fh.seek(info.data_offset)
        while filled < info.n_frames:
            count = min(block.shape[0], info.n_frames - filled)
            n = fh.readinto(raw[: count * frame_bytes]) // frame_bytes
            np.multiply(block[:n, channel], SCALE_PCM16, out=signal[filled : filled + n], casting="unsafe")
            filled += n
            if n < count:
                break
    return filled


def _read_channel(
    path: Path | str, info: ClipInfo, channel: int, reuse_buffer: bool = False, fileobj: BinaryIO | None = None
) -> np.ndarray:
    """One channel as float32 in [-1, 1], holding only that channel in memory (a 300 MB 8-channel file
    costs one channel's worth, not the whole file).

    16-bit PCM WAV (the MIMII and DCASE format) is read straight from its data chunk
    and only the wanted channel is converted (:func:`_read_pcm16_channel`); everything else goes through
    libsndfile, multichannel files ``READ_BLOCK_BYTES`` at a time.  ``fileobj``, when given, is read instead of
    ``path`` (see :func:`clip_info`).
    """
    if reuse_buffer:
        signal = scratch("audio.signal", (info.n_frames,), np.float32)
    else:
        signal = np.empty(info.n_frames, dtype=np.float32)
    filled = 0
    try:
        if info.subtype == "PCM_16" and info.data_offset is not None:
            filled = _read_pcm16_channel(path, info, channel, signal, fileobj)
        else:
            if fileobj is not None:
                fileobj.seek(0)
            with sf.SoundFile(str(path) if fileobj is None else fileobj) as audio:
                block = max(1, READ_BLOCK_BYTES // (4 * info.n_channels))
                for data in audio.blocks(block, dtype="float32", always_2d=True):
                    n = min(len(data), info.n_frames - filled)
                    signal[filled : filled + n] = data[:n, channel]
                    filled += n
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise BadInputError(Reason.CORRUPT, f"reading the samples failed ({exc})", path) from None
    return signal if filled == info.n_frames else signal[:filled]


def _check_header(
    p: Path, info: ClipInfo, channel: int, max_duration_s: float | None, max_sample_rate: int, min_samples: int
) -> None:
    """Refuse, from the header alone, what :func:`load_clip` must not read (see its Raises)."""
    if not 0 <= channel < info.n_channels:
        raise BadInputError(
            Reason.CHANNEL_OUT_OF_RANGE,
            f"channel {channel} requested, the file has {info.n_channels} channel(s) (0..{info.n_channels - 1})",
            p,
        )
    if not MIN_SAMPLE_RATE <= info.sr <= max_sample_rate:
        raise BadInputError(Reason.SAMPLE_RATE_OUT_OF_RANGE, f"sampled at {info.sr} Hz; clips must be "
                            f"{MIN_SAMPLE_RATE}-{max_sample_rate} Hz (MAX_SAMPLE_RATE)", p)  # fmt: skip
    if max_duration_s is not None and info.duration_s > max_duration_s:
        raise BadInputError(Reason.TOO_LONG, f"{info.duration_s:.1f} s long; the limit is {max_duration_s:g} s", p)
    if info.n_frames < min_samples:
        raise BadInputError(
            Reason.TOO_SHORT,
            f"{info.n_frames} samples ({info.duration_s:.3f} s); at least {min_samples} are needed",
            p,
        )


def load_clip(
    path: str | os.PathLike,
    channel: int = 0,
    *,
    max_duration_s: float | None = DEFAULT_MAX_DURATION_S,
    max_sample_rate: int = DEFAULT_MAX_SAMPLE_RATE,
    min_samples: int = FeatureParams().min_samples,
    reuse_buffer: bool = False,
    fileobj: BinaryIO | None = None,
) -> Clip:
    """Read one channel of an audio file and check it is usable.

    Parameters
    ----------
    path : path to a WAV or FLAC file
    channel : int, which microphone (0-based) of a multichannel file
    max_duration_s : float or None
        Refuse files longer than this many seconds (checked from the header,
        before reading); ``None`` for no limit.  Default :data:`DEFAULT_MAX_DURATION_S`
        (600 s); callers outside this pure package pass the ``MAX_CLIP_SECONDS`` setting.
    max_sample_rate : int
        Refuse files sampled faster than this (Hz, default 96 kHz) or slower than ``MIN_SAMPLE_RATE``,
        from the header, before reading.  With ``max_duration_s`` it bounds the decoded size: at most
        ``max_duration_s * max_sample_rate`` float32 samples are held, whatever the file's compression
        (a few hundred KB of FLAC can claim minutes at hundreds of kHz); channels are read a block at a
        time and only the wanted one is kept.
    min_samples : int
        Refuse signals shorter than this (default: one feature vector with the
        default :class:`~core.signal.features.FeatureParams`, 2048 samples).
    reuse_buffer : bool
        Read into this thread's reused buffer (:func:`core.signal.scratch.scratch`) instead of a new array:
        no fresh pages per file, but the thread's next such call overwrites ``signal``.  For a caller done
        with the signal before it reads another file (:func:`core.signal.batch.file_features`).
    fileobj : seekable binary file or None
        The clip's bytes, already open (e.g. an object fetched from storage); read instead of ``path``,
        with the same checks, and left open.

    Returns
    -------
    Clip with ``signal`` float32 ``(n_samples,)`` in ``[-1, 1]``.

    Raises
    ------
    BadInputError
        naming the file, with reason ``not_found``, ``not_audio``, ``corrupt``,
        ``empty``, ``channel_out_of_range``, ``sample_rate_out_of_range``, ``too_long``, ``too_short``,
        ``non_finite`` or ``silent``.
    """
    p = Path(path) if fileobj is None else str(path)
    info = clip_info(p, fileobj=fileobj)
    _check_header(p, info, channel, max_duration_s, max_sample_rate, min_samples)
    signal = _read_channel(p, info, channel, reuse_buffer, fileobj)
    low, high = float(signal.min()), float(signal.max())  # NaN and inf propagate; no temporary arrays
    if not (np.isfinite(low) and np.isfinite(high)):
        raise BadInputError(Reason.NON_FINITE, "contains NaN or infinite samples", p)
    if max(high, -low) < SILENCE_PEAK:
        raise BadInputError(Reason.SILENT, "all samples are silent (peak below 1e-6)", p)
    if high > 1.0 or low < -1.0:
        np.clip(signal, -1.0, 1.0, out=signal)
    return Clip(signal=signal, sr=info.sr, n_channels=info.n_channels, channel=channel, path=str(p))
