"""db.frames: per-frame and per-band errors kept as float16 bytes, read back within float16's precision."""

from __future__ import annotations

import json

import numpy as np
import pytest

from db.frames import join_details, pack_errors, split_details, unpack_errors


def test_errors_round_trip_within_float16_precision_and_take_under_a_third_of_json():
    rng = np.random.default_rng(0)
    frames, bands = rng.gamma(2.0, 3.0, 309), rng.gamma(2.0, 3.0, 128)
    blob = pack_errors(frames, bands)
    assert len(blob) == 4 + 2 * (309 + 128)
    back = unpack_errors(blob)
    assert back["frame_errors"] == pytest.approx(frames.tolist(), rel=2**-11)
    assert back["band_errors"] == pytest.approx(bands.tolist(), rel=2**-11)
    as_json = json.dumps({"frame_errors": [float(f"{v:.4g}") for v in frames],
                          "band_errors": [float(f"{v:.4g}") for v in bands]})  # fmt: skip
    assert len(blob) * 3 < len(as_json)  # 878 bytes against about 3 kB


def test_values_beyond_float16_are_capped_and_empty_arrays_kept():
    back = unpack_errors(pack_errors([1e9, -1e9, 0.0], []))
    assert back == {"frame_errors": [65504.0, -65504.0, 0.0], "band_errors": []}


def test_details_split_into_bytes_and_the_rest_and_joined_back():
    frames, rest = split_details({"frame_errors": [1.0, 2.0], "band_errors": [0.5], "note": "x"})
    assert rest == {"note": "x"} and join_details(frames, rest) == {
        "frame_errors": [1.0, 2.0], "band_errors": [0.5], "note": "x"}  # fmt: skip
    assert split_details(None) == (None, None) and split_details({"other": 1}) == (None, {"other": 1})
    assert join_details(None, {"other": 1}) == {"other": 1}
