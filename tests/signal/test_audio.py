"""core.signal.audio: reading one channel of real WAV/FLAC files, and refusing every kind of bad file."""

from __future__ import annotations

import csv
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.errors import BadInputError, Reason
from core.signal.audio import clip_info, load_clip
from core.signal.features import FeatureParams
from tests.conftest import SR, tone, write_wav

ROOT = Path(__file__).resolve().parents[2]


def _assert_refused(path, reason: Reason, **kwargs) -> BadInputError:
    with pytest.raises(BadInputError) as caught:
        load_clip(path, **kwargs)
    assert caught.value.reason is reason
    assert str(path) in str(caught.value)
    assert caught.value.path == str(path)
    return caught.value


def _check_signal(clip, n_samples: int) -> None:
    assert clip.signal.dtype == np.float32
    assert clip.signal.ndim == 1 and clip.signal.size == n_samples
    assert np.abs(clip.signal).max() <= 1.0


# --------------------------------------------------------------------------- good files


@pytest.mark.parametrize("channel", range(8))
def test_eight_channel_pcm16_reads_the_chosen_channel(tmp_path, channel):
    path = write_wav(tmp_path / "eight.wav", tone(1.5, channels=8, amplitude=0.4))
    clip = load_clip(path, channel)
    expected = sf.read(path, dtype="int16", always_2d=True)[0][:, channel] / 32768.0
    _check_signal(clip, expected.size)
    np.testing.assert_allclose(clip.signal, expected, rtol=0, atol=1e-6)
    assert (clip.n_channels, clip.channel, clip.sr, clip.path) == (8, channel, SR, str(path))
    assert clip.duration_s == pytest.approx(1.5)


def test_channels_of_a_multichannel_file_differ(tmp_path):
    path = write_wav(tmp_path / "eight.wav", tone(1.0, channels=8))
    first, last = load_clip(path, 0).signal, load_clip(path, 7).signal
    assert not np.allclose(first, last, atol=1e-2)


def test_mono_wav(tmp_path):
    data = tone(1.0)
    path = write_wav(tmp_path / "mono.wav", data)
    clip = load_clip(path)
    _check_signal(clip, data.shape[0])
    np.testing.assert_allclose(clip.signal, data[:, 0], rtol=0, atol=1 / 32768)
    assert (clip.n_channels, clip.channel, clip.sr) == (1, 0, SR)
    assert clip.duration_s == pytest.approx(1.0)


@pytest.mark.parametrize(
    "name, subtype, atol",
    [("clip.flac", "PCM_16", 1 / 32768), ("clip24.wav", "PCM_24", 2**-22), ("clip_float.wav", "FLOAT", 0.0)],
)
def test_flac_24bit_and_float(tmp_path, name, subtype, atol):
    data = tone(1.0, channels=2, sr=22_050)
    path = write_wav(tmp_path / name, data, sr=22_050, subtype=subtype)
    clip = load_clip(path, 1)
    _check_signal(clip, data.shape[0])
    np.testing.assert_allclose(clip.signal, data[:, 1], rtol=0, atol=atol)
    assert (clip.n_channels, clip.sr) == (2, 22_050)
    info = clip_info(path)
    assert (info.sr, info.n_channels, info.n_frames, info.subtype) == (22_050, 2, data.shape[0], subtype)
    assert info.duration_s == pytest.approx(1.0)


def test_float_samples_beyond_full_scale_are_clipped(tmp_path):
    data = tone(1.0, amplitude=1.5)
    clip = load_clip(write_wav(tmp_path / "loud.wav", data, subtype="FLOAT"))
    assert clip.signal.max() == 1.0 and clip.signal.min() == -1.0
    inside = np.abs(data[:, 0]) < 1.0
    np.testing.assert_array_equal(clip.signal[inside], data[inside, 0])


def test_exactly_min_samples_is_accepted(tmp_path):
    assert FeatureParams().min_samples == 2048
    data = tone(2048 / SR)
    assert data.shape[0] == 2048
    assert load_clip(write_wav(tmp_path / "just.wav", data)).signal.size == 2048


def test_no_duration_limit_accepts_long_file(tmp_path):
    path = write_wav(tmp_path / "long.wav", tone(2.0))
    assert load_clip(path, max_duration_s=None).duration_s == pytest.approx(2.0)
    assert load_clip(path, max_duration_s=2.0).duration_s == pytest.approx(2.0)


# --------------------------------------------------------------------------- bad files


def test_not_audio_is_said_in_words_and_the_librarys_message_goes_to_the_log(tmp_path, caplog):
    path = tmp_path / "text.wav"
    path.write_bytes(b"this is a text file, not a recording\n" * 20)
    with caplog.at_level("WARNING", logger="core.signal.audio"):
        error = _assert_refused(path, Reason.NOT_AUDIO)
    assert error.detail == "not a readable audio file (WAV or FLAC)"  # shown to people: no library jargon
    assert [r.getMessage() for r in caplog.records] == [f"{path}: libsndfile: Format not recognised."]


def test_truncated_wav_is_corrupt(tmp_path):
    whole = write_wav(tmp_path / "whole.wav", tone(1.0)).read_bytes()
    path = tmp_path / "half.wav"
    path.write_bytes(whole[: len(whole) // 2])
    error = _assert_refused(path, Reason.CORRUPT)
    assert "truncated" in error.detail


def test_truncated_multichannel_wav_is_corrupt(tmp_path):
    whole = write_wav(tmp_path / "whole.wav", tone(1.0, channels=8)).read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(whole[: len(whole) - 1000])
    _assert_refused(path, Reason.CORRUPT)


def test_header_only_wav_is_corrupt(tmp_path):
    whole = write_wav(tmp_path / "whole.wav", tone(1.0)).read_bytes()
    path = tmp_path / "header.wav"
    path.write_bytes(whole[:44])
    _assert_refused(path, Reason.CORRUPT)


def test_truncated_flac_is_corrupt(tmp_path):
    whole = write_wav(tmp_path / "whole.flac", tone(1.0)).read_bytes()
    path = tmp_path / "half.flac"
    path.write_bytes(whole[: len(whole) // 2])
    _assert_refused(path, Reason.CORRUPT)


def test_zero_byte_file_is_empty(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    _assert_refused(path, Reason.EMPTY)


def test_wav_with_zero_frames_is_empty(tmp_path):
    path = write_wav(tmp_path / "noframes.wav", np.zeros((0, 1), dtype=np.float32))
    _assert_refused(path, Reason.EMPTY)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, bad_value):
    data = tone(1.0)
    data[1234, 0] = bad_value
    path = write_wav(tmp_path / "nan.wav", data, subtype="FLOAT")
    _assert_refused(path, Reason.NON_FINITE)


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_all_zero_samples_are_silent(tmp_path, subtype):
    path = write_wav(tmp_path / "silent.wav", np.zeros((SR, 1), dtype=np.float32), subtype=subtype)
    _assert_refused(path, Reason.SILENT)


@pytest.mark.parametrize("channels, channel", [(8, 8), (1, 1), (8, -1), (1, -1)])
def test_channel_out_of_range(tmp_path, channels, channel):
    path = write_wav(tmp_path / "clip.wav", tone(1.0, channels=channels))
    error = _assert_refused(path, Reason.CHANNEL_OUT_OF_RANGE, channel=channel)
    assert str(channel) in error.detail


def test_too_short(tmp_path):
    path = write_wav(tmp_path / "short.wav", tone(2047 / SR))
    assert sf.info(path).frames == 2047
    _assert_refused(path, Reason.TOO_SHORT)


def test_longer_than_the_limit(tmp_path):
    path = write_wav(tmp_path / "long.wav", tone(2.0))
    _assert_refused(path, Reason.TOO_LONG, max_duration_s=1)


def test_not_found(tmp_path):
    path = tmp_path / "missing" / "nothing.wav"
    _assert_refused(path, Reason.NOT_FOUND)


def test_a_directory_is_not_found(tmp_path):
    _assert_refused(tmp_path, Reason.NOT_FOUND)


@pytest.mark.parametrize(
    "content, reason", [(None, Reason.NOT_FOUND), (b"", Reason.EMPTY), (b"plain text\n" * 30, Reason.NOT_AUDIO)]
)
def test_clip_info_refuses_bad_files(tmp_path, content, reason):
    path = tmp_path / "x.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BadInputError) as caught:
        clip_info(path)
    assert caught.value.reason is reason and str(path) in str(caught.value)


@pytest.mark.parametrize("path", ["/data/fan/bad.wav", None])
def test_bad_input_error_survives_pickling(path):
    error = BadInputError(Reason.CORRUPT, "cut short", path)
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, BadInputError)
    assert (copy.reason, copy.path, copy.detail, str(copy)) == (error.reason, error.path, error.detail, str(error))


# --------------------------------------------------------------------------- real recordings


def test_every_real_wav_loads(real_data):
    with (real_data / "manifest.csv").open(newline="") as fh:
        channels = {row["path"]: int(row["channels"]) for row in csv.DictReader(fh)}
    paths = sorted(real_data.rglob("*.wav"))
    assert paths
    n_multichannel = 0
    for path in paths:
        clip = load_clip(path)
        assert clip.sr == 16_000, path
        assert clip.signal.dtype == np.float32 and np.abs(clip.signal).max() <= 1.0
        expected = channels.get(path.relative_to(real_data).as_posix())
        if expected is not None:
            assert clip.n_channels == expected, path
        if clip.n_channels == 8:
            n_multichannel += 1
            assert load_clip(path, 7).n_channels == 8
    assert n_multichannel == sum(1 for n in channels.values() if n == 8)


def _sparse_wav(path, *, seconds: float, sr: int, channels: int, float32: bool):
    """A valid PCM-16 or float WAV header, then a hole the file system fills with zeros: a big file that costs
    neither disk space nor time to write."""
    width, tag = (4, 3) if float32 else (2, 1)
    n = int(seconds * sr) * width * channels
    fmt = struct.pack("<IHHIIHH", 16, tag, channels, sr, sr * width * channels, width * channels, 8 * width)
    header = b"RIFF" + struct.pack("<I", 36 + n) + b"WAVE" + b"fmt " + fmt + b"data" + struct.pack("<I", n)
    with path.open("wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + n)
    return path


@pytest.mark.parametrize("float32", [False, True], ids=["pcm16", "float"])
def test_a_300_mb_eight_channel_file_costs_one_channel_of_memory(tmp_path, float32):
    """Within the duration limit, yet 300 MB: only the wanted channel is held (the whole file is never in memory)."""
    width = 4 if float32 else 2
    path = _sparse_wav(tmp_path / "big.wav", seconds=300e6 / (48_000 * 8 * width), sr=48_000, channels=8,
                       float32=float32)  # fmt: skip
    assert path.stat().st_size > 300e6 and clip_info(path).duration_s < 600
    code = (
        "import resource, sys\n"
        "from core.signal.audio import load_clip\n"
        "from core.errors import BadInputError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n    load_clip(sys.argv[1], channel=5)\nexcept BadInputError as exc:\n    print(exc.reason)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True, check=True)
    reason, grown_mb = out.stdout.split()
    assert reason == "silent"  # read to the end: the hole holds zeros
    assert int(grown_mb) < 150  # one channel as float32 is 38-75 MB; reading the whole file costs 300-400 MB


# --- a clip already open (bytes fetched from storage) ----------------------------------------------------------


@pytest.mark.parametrize(("name", "subtype", "channels"), [("a.wav", "PCM_16", 8), ("b.wav", "PCM_16", 1),
                                                           ("c.flac", "PCM_24", 2), ("d.wav", "FLOAT", 1)])  # fmt: skip
def test_an_open_file_reads_as_its_path_does(tmp_path, name, subtype, channels):
    import io

    path = write_wav(tmp_path / name, tone(0.5, channels=channels), subtype=subtype)
    from_disk = load_clip(path, channel=channels - 1)
    held = io.BytesIO(path.read_bytes())
    from_memory = load_clip("s3://bucket/fan/id_00/" + name, channel=channels - 1, fileobj=held)
    np.testing.assert_array_equal(from_memory.signal, from_disk.signal)
    assert (from_memory.sr, from_memory.n_channels) == (from_disk.sr, from_disk.n_channels)
    assert from_memory.path == "s3://bucket/fan/id_00/" + name and not held.closed


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", Reason.EMPTY), (b"just some text, not audio at all" * 10, Reason.NOT_AUDIO)],
)
def test_an_open_file_is_refused_naming_the_uri_as_written(content, reason):
    import io

    with pytest.raises(BadInputError) as caught:
        load_clip("s3://bucket/fan/id_00/x.wav", fileobj=io.BytesIO(content))
    assert caught.value.reason is reason and caught.value.path == "s3://bucket/fan/id_00/x.wav"


def test_an_open_truncated_wav_is_corrupt_and_its_header_limits_apply(tmp_path):
    import io

    data = write_wav(tmp_path / "t.wav", tone(1.0)).read_bytes()
    with pytest.raises(BadInputError) as caught:
        load_clip("s3://b/t.wav", fileobj=io.BytesIO(data[: len(data) // 2]))
    assert caught.value.reason is Reason.CORRUPT
    with pytest.raises(BadInputError) as caught:
        load_clip("s3://b/t.wav", fileobj=io.BytesIO(data), max_duration_s=0.5)
    assert caught.value.reason is Reason.TOO_LONG


@pytest.mark.parametrize(("name", "channels", "subtype"), [("a.wav", 8, "PCM_16"), ("b.flac", 2, "PCM_16"),
                                                            ("c.wav", 3, "FLOAT")])  # fmt: skip
def test_reuse_buffer_reads_the_same_samples_into_the_threads_buffer(tmp_path, name, channels, subtype):
    path = write_wav(tmp_path / name, tone(1.5, channels=channels, seed=2), subtype=subtype)
    fresh = load_clip(path, channel=channels - 1)
    reused = load_clip(path, channel=channels - 1, reuse_buffer=True)
    np.testing.assert_array_equal(reused.signal, fresh.signal)
    assert (reused.sr, reused.n_channels, reused.channel) == (fresh.sr, fresh.n_channels, fresh.channel)
    other = load_clip(write_wav(tmp_path / f"other_{name}", tone(1.0, seed=9), subtype=subtype), reuse_buffer=True)
    assert np.shares_memory(other.signal, reused.signal)  # the next reused read overwrites it, as documented
    assert not np.shares_memory(fresh.signal, load_clip(path, channel=channels - 1).signal)


def test_reuse_buffer_still_refuses_bad_files(tmp_path):
    silent = write_wav(tmp_path / "silent.wav", np.zeros((SR, 8), np.float32))
    with pytest.raises(BadInputError) as caught:
        load_clip(silent, reuse_buffer=True)
    assert caught.value.reason is Reason.SILENT
    whole = write_wav(tmp_path / "whole.wav", tone(1.0, channels=8)).read_bytes()
    (tmp_path / "cut.wav").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(BadInputError) as caught:
        load_clip(tmp_path / "cut.wav", reuse_buffer=True)
    assert caught.value.reason is Reason.CORRUPT


EXTRA_CHUNKS = {"before": b"LIST\x05\x00\x00\x00abcde\x00", "after": b"junk\x02\x00\x00\x00zz"}  # odd size: padded


def _with_chunks(path: Path, before: bytes = b"", after: bytes = b"") -> Path:
    """Insert a chunk before ``data`` and/or append one after it, keeping the RIFF size right."""
    raw = path.read_bytes()
    at = raw.index(b"data")
    body = raw[12:at] + before + raw[at:] + after
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body)
    return path


@pytest.mark.parametrize(
    ("name", "channels", "subtype", "fmt", "chunks"),
    [
        ("mono.wav", 1, "PCM_16", "WAV", {}),
        ("eight.wav", 8, "PCM_16", "WAV", {}),
        ("listed.wav", 2, "PCM_16", "WAV", EXTRA_CHUNKS),
        ("wide.wav", 2, "PCM_24", "WAV", {}),
        ("ext.wav", 2, "PCM_16", "WAVEX", {}),
        ("float.wav", 1, "FLOAT", "WAV", {}),
        ("lossless.flac", 2, "PCM_16", "FLAC", {}),
    ],
)
def test_plain_16_bit_headers_are_read_without_libsndfile_and_agree_with_it(tmp_path, name, channels, subtype, fmt,
                                                                           chunks):  # fmt: skip
    """A plain 16-bit PCM WAV's header is parsed here (one open less, no libsndfile call); every other file's by
    libsndfile.  Either way the facts equal libsndfile's, extra chunks before or after the samples included."""
    from core.signal.audio import _libsndfile_info, _wav_chunks

    path = tmp_path / name
    sf.write(path, tone(0.5, channels=channels), SR, subtype=subtype, format=fmt)
    path = _with_chunks(path, **chunks) if chunks else path
    found = clip_info(path)
    with path.open("rb") as fh:
        assert found == _libsndfile_info(path, _wav_chunks(fh, path.stat().st_size)[1])
    assert (found.sr, found.n_channels, found.n_frames) == (SR, channels, SR // 2)
    np.testing.assert_array_equal(load_clip(path, channel=channels - 1).signal,
                                  sf.read(path, dtype="float32", always_2d=True)[0][:, channels - 1])  # fmt: skip


def test_a_wav_with_thousands_of_chunks_is_walked_only_so_far_then_read_by_libsndfile(tmp_path):
    """Walking chunks in Python is bounded (``MAX_WAV_CHUNKS``): a crafted file of many empty chunks before its
    samples costs no more than a real one, and still reads as libsndfile reads it."""
    from core.signal.audio import MAX_WAV_CHUNKS

    path = write_wav(tmp_path / "many.wav", tone(0.5, channels=2))
    _with_chunks(path, before=b"junk\x00\x00\x00\x00" * (MAX_WAV_CHUNKS * 50))
    found = clip_info(path)
    assert found.data_offset is None and (found.sr, found.n_channels, found.n_frames) == (SR, 2, SR // 2)
    np.testing.assert_array_equal(load_clip(path, channel=1).signal,
                                  sf.read(path, dtype="float32", always_2d=True)[0][:, 1])  # fmt: skip
