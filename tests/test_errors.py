"""core.errors: one error type that names the file and a stable reason."""

from __future__ import annotations

import pickle

from core.errors import BadInputError, Reason


def test_message_names_the_file_and_the_reason():
    error = BadInputError(Reason.SILENT, "all samples are silent", "/x/a.wav")
    assert str(error) == "/x/a.wav: all samples are silent [silent]"
    assert (error.reason, error.path, error.detail) == (Reason.SILENT, "/x/a.wav", "all samples are silent")
    assert isinstance(error, ValueError)


def test_without_a_path_and_with_one_added_later():
    error = BadInputError("too_short", "signal has 3 samples")
    assert str(error) == "signal has 3 samples [too_short]" and error.reason is Reason.TOO_SHORT
    named = error.with_path("/y.wav")
    assert str(named) == "/y.wav: signal has 3 samples [too_short]" and named.reason is Reason.TOO_SHORT


def test_survives_pickling_between_processes():
    error = pickle.loads(pickle.dumps(BadInputError(Reason.CORRUPT, "truncated", "/z.wav")))
    assert (error.reason, error.path, error.detail) == (Reason.CORRUPT, "/z.wav", "truncated")


def test_reason_values_are_the_stable_contract_names():
    assert {r.value for r in Reason} >= {
        "not_audio", "corrupt", "empty", "non_finite", "silent", "channel_out_of_range", "too_short", "too_long",
    }  # fmt: skip
