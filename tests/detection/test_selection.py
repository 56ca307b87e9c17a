"""core.detection.selection: synthetic faults, and the choice from training clips only with its evidence."""

from __future__ import annotations

import numpy as np
import pytest

from core.detection.ensemble import rank_against
from core.detection.selection import (
    FAULT_KINDS,
    FAULT_WEIGHT,
    FAULTS,
    OTHER_WEIGHT,
    _note,
    _pick,
    _ranks_left_out,
    candidate_name,
    choose_detector,
    model_name,
    synthetic_fault,
    weighted_auc,
)
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


def _ev(auc: float, se: float, other: float | None = None, synthetic: float = 0.8, faults: float | None = None,
        ) -> dict:  # fmt: skip
    by_kind = dict.fromkeys(FAULT_KINDS, synthetic) | ({} if other is None else {"other_machines": other})
    by_kind |= {} if faults is None else {FAULTS: faults}
    return {"auc": auc, "se": se, "by_kind": by_kind, "weighted": weighted_auc(by_kind)}


def test_other_machines_weigh_most_and_a_single_candidate_is_chosen_with_them():
    assert weighted_auc(dict.fromkeys(FAULT_KINDS, 0.6)) == pytest.approx(0.6)
    with_other = dict.fromkeys(FAULT_KINDS, 0.6) | {"other_machines": 1.0}
    assert weighted_auc(with_other) == pytest.approx(OTHER_WEIGHT + (1 - OTHER_WEIGHT) * 0.6) and OTHER_WEIGHT > 0.5
    # without other machines: two close candidates make an ensemble
    assert _pick({"a": _ev(0.80, 0.05), "b": _ev(0.79, 0.05, synthetic=0.79)}) == (["a", "b"], False)
    # with them, the one that tells the machine from its siblings best is chosen alone, though it is not "clear"
    # and its pooled pseudo-AUC is lower
    evidence = {"a": _ev(0.80, 0.05, other=0.8, synthetic=0.9), "b": _ev(0.75, 0.05, other=0.95, synthetic=0.6)}
    assert _pick(evidence) == (["b"], False)


def test_ensemble_held_out_ranks_are_taken_against_the_other_references():
    reference = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    ranks = _ranks_left_out(reference)
    np.testing.assert_allclose(ranks[1], rank_against([2.0], [1.0, 3.0, 4.0, 10.0])[0])
    # the highest reference ranks past every other one (above 1), not at the in-sample mid-step 0.9
    assert ranks[-1] > 1.0 and rank_against([10.0], reference)[0] == pytest.approx(0.9)


def test_confirmed_faults_weigh_half_on_top_of_the_rest():
    rest = dict.fromkeys(FAULT_KINDS, 0.6) | {"other_machines": 1.0}
    expected = FAULT_WEIGHT * 0.2 + (1 - FAULT_WEIGHT) * weighted_auc(rest)
    assert weighted_auc(rest | {FAULTS: 0.2}) == pytest.approx(expected)
    assert weighted_auc(dict.fromkeys(FAULT_KINDS, 0.6) | {FAULTS: 1.0}) == pytest.approx(0.8)  # 0.5 x 1 + 0.5 x 0.6
    # the candidate that tells the machine from its siblings best loses to one that separates its real faults
    evidence = {"siblings": _ev(0.8, 0.05, other=1.0, synthetic=0.6, faults=0.4),
                "faults": _ev(0.8, 0.05, other=0.8, synthetic=0.6, faults=1.0)}  # fmt: skip
    assert _pick(evidence)[0] == ["faults"]


def test_confirmed_faults_are_pseudo_anomalies_of_every_fold_and_said_in_the_note():
    normal, faults = clips(1, 6), clips(2, 3, abnormal=True)
    choice = choose_detector(normal, faults=faults)
    assert choice.n_fault_clips == 3 and choice.folds == 6
    for label, evidence in choice.evidence.items():
        assert set(evidence["by_kind"]) == set(FAULT_KINDS) | {FAULTS}, label
        assert evidence["weighted"] == pytest.approx(weighted_auc(evidence["by_kind"]), abs=1e-3)
    chosen = choice.evidence[choice.chosen]["by_kind"][FAULTS]
    assert chosen > 0.9  # the test plant's faults are plain: the choice separates them from held-out normals
    assert "confirmed faults of this machine weigh 50%" in choice.note and f"{chosen:.2f} on them" in choice.note
    without = choose_detector(normal)
    assert without.n_fault_clips == 0 and all(FAULTS not in e["by_kind"] for e in without.evidence.values())
    assert "confirmed" not in without.note


def test_the_note_names_candidates_as_people_read_them():
    """The note is read on the Compare page and in the log: "frame GMM (top 10%)", not "frame_gmm_top10"."""
    evidence = {"frame_gmm_top10": _ev(0.90, 0.01), "band_deviation_max": _ev(0.70, 0.01)}
    note = _note(12, "frame_gmm_top10", evidence, ["frame_gmm_top10"], True)
    assert note.startswith("frame GMM (top 10%) separates held-out normal training clips")
    assert "; next band deviation (max) " in note and "_" not in note
    assert candidate_name("machine_id") == "machine-ID classifier" and candidate_name("ensemble") == "ensemble"
    assert candidate_name("frame_knn_top10_pcen") == "frame k-NN (top 10%, PCEN)"
    assert candidate_name("mahalanobis_pcen") == "Mahalanobis (PCEN)"


def test_a_model_is_named_in_words_with_its_version_and_what_it_learned_from():
    """Every page names a model so: "Mahalanobis v2 (fan/id_00)", not the CLI's "mahalanobis v2 (fan/id_00)"."""
    assert model_name("mahalanobis", 2, "fan/id_00") == "Mahalanobis v2 (fan/id_00)"
    assert model_name("frame_knn", 1, "fan") == "frame k-NN v1 (fan)"
    assert model_name("mahalanobis", 3, "fan/id_00", front_end="pcen") == "Mahalanobis (PCEN) v3 (fan/id_00)"
    assert model_name("mahalanobis", 3, front_end="log_mel") == "Mahalanobis v3"  # the default goes unsaid
    assert model_name("spectrogram_cnn", 3, "*") == "spectrogram CNN v3 (*)"
    assert model_name("band_deviation", 1) == "band deviation v1"  # no scope, no brackets


def test_the_note_names_the_figures_it_ranks_by_and_only_the_evidence_there_was():
    evidence = {"a": _ev(0.80, 0.05), "b": _ev(0.79, 0.05, synthetic=0.79), "ensemble": _ev(0.81, None)}
    note = _note(6, "ensemble", evidence, ["a", "b"], False)
    assert note.startswith("No candidate is clearly best") and "nan" not in note and "None" not in note
    assert "ensemble 0.800 (pseudo-AUC 0.810)" in note  # one figure: no standard error to show
    assert "a 0.800 (pseudo-AUC 0.800 ± 0.050)" in note and "twice their combined standard error" in note
    assert note.endswith("Pseudo-anomalies are synthetic faults, not real faults")  # no other machine was given
    siblings = {"a": _ev(0.80, 0.05, other=0.9), "b": _ev(0.80, 0.05, other=0.9, synthetic=0.7)}
    note = _note(6, "a", siblings, ["a"], False, n_other=4)
    assert "the best is chosen alone (its pseudo-AUC on their clips: 0.90)" in note
    assert note.endswith("synthetic faults and other machines' clips, not real faults")
    assert choose_detector(clips(1, 6)).evidence["mahalanobis"]["se"] is not None
