"""core.datasets.splits: layout hints win; otherwise abnormal tests, unknown is in neither, normal splits by hash."""

from __future__ import annotations

import hashlib
import random

import pytest

from core.datasets.splits import TRAIN_FRACTION, assign_split


def content_hash(i: int) -> str:
    return hashlib.sha256(f"clip-{i}".encode()).hexdigest()


@pytest.mark.parametrize("label", ["normal", "abnormal", "unknown"])
@pytest.mark.parametrize("layout_split", ["train", "test"])
def test_layout_hint_is_honoured(label, layout_split):
    for i in range(50):
        assert assign_split(content_hash(i), label, layout_split) == layout_split


@pytest.mark.parametrize("layout_split", ["none", ""])
def test_abnormal_is_always_test_without_a_hint(layout_split):
    for i in range(200):
        assert assign_split(content_hash(i), "abnormal", layout_split) == "test"
    assert assign_split(content_hash(0), "abnormal", layout_split, train_fraction=1.0) == "test"


@pytest.mark.parametrize("label", ["unknown", "", "unsure"])
def test_unlabelled_is_in_no_split(label):
    for i in range(50):
        assert assign_split(content_hash(i), label, "none") == "none"


def test_same_hash_same_split():
    for i in range(200):
        h = content_hash(i)
        assert len({assign_split(h, "normal", "none") for _ in range(3)}) == 1
    # both splits occur, so "same split" is not trivially true
    assert {assign_split(content_hash(i), "normal", "none") for i in range(200)} == {"train", "test"}


def test_train_share_of_normals_is_the_train_fraction():
    rng = random.Random(0)
    hashes = [rng.randbytes(32).hex() for _ in range(10_000)]
    splits = [assign_split(h, "normal", "none") for h in hashes]
    assert set(splits) == {"train", "test"}
    assert TRAIN_FRACTION == 0.8
    assert splits.count("train") / len(splits) == pytest.approx(0.8, abs=0.02)


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_train_fraction_is_respected(fraction):
    splits = [assign_split(content_hash(i), "normal", "none", train_fraction=fraction) for i in range(2000)]
    assert splits.count("train") / len(splits) == pytest.approx(fraction, abs=0.04)


def test_mimii_versions_of_one_recording_share_their_key_and_split():
    from core.datasets.splits import split_key

    keys = {split_key(content_hash(db), "mimii", "fan/id_00", "normal", "00000007.wav") for db in (-6, 0, 6)}
    assert len(keys) == 1  # three different files (bytes), one recording
    assert split_key(content_hash(1), "mimii", "fan/id_00", "normal", "00000008.wav") not in keys
    assert split_key(content_hash(1), "plain", "line/id_00", "unknown", "x.wav") == content_hash(1)
