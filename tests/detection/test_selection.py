"""core.detection.selection: synthetic faults, and the choice from training clips only with its evidence."""

from __future__ import annotations

import numpy as np
import pytest

from core.detection.selection import FAULT_KINDS, choose_detector, synthetic_fault
from core.errors import BadInputError
from core.signal.features import FeatureParams
from tests.detection.test_detectors import clips


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_each_synthetic_fault_raises_or_shifts_the_level(kind):
    clip = clips(1, 1)[0]
    faulted = synthetic_fault(clip, kind, np.random.default_rng(0), FeatureParams())
    assert faulted.shape == clip.shape and faulted.dtype == np.float32
    change = (faulted - clip)[:, :64]
    if kind == "gain":
        np.testing.assert_allclose(np.abs(change), 3.0, atol=1e-4)
    else:
        assert (change >= -1e-4).all() and change.max() > 1.0  # power added: never quieter, somewhere louder
    with pytest.raises(BadInputError):
        synthetic_fault(clip, "smoke", np.random.default_rng(0), FeatureParams())


def test_choice_records_evidence_and_says_when_it_is_a_guess():
    choice = choose_detector(clips(1, 6))
    assert set(choice.evidence) >= {"mahalanobis", "band_deviation_max", "frame_knn_top10", "frame_gmm_top10"}
    for evidence in choice.evidence.values():
        assert 0.0 <= evidence["auc"] <= 1.0 and evidence["se"] >= 0.0
        assert set(evidence["by_kind"]) == set(FAULT_KINDS)  # no other machine given
    assert choice.folds == 6 and choice.n_clips == 6 and len(choice.held_out_normal) == 6
    assert "guess" in choice.note  # 6 clips
    assert (choice.detector == "ensemble") == (not choice.clear) and (len(choice.members) >= 2) == (not choice.clear)
    few = choose_detector(clips(1, 3))
    assert few.detector == "mahalanobis" and few.evidence == {} and "guess" in few.note
