"""A rank-averaged ensemble of detectors, for when no single detector is clearly best.

Each member's score is turned into a rank against that member's scores of held-out normal
clips (``references``: the empirical distribution function, extended linearly past the
reference's range so that clips beyond every normal one still rank by how far), and a clip's
score is the mean of its members' ranks: about 0.5 for a typical normal clip, above 1 for a
clip stranger than every reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from core.detection.base import Detector, Explanation
from core.errors import BadInputError, Reason


def rank_against(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Ranks of ``scores`` ``(n,)`` among ``reference`` ``(m,)``, float64 ``(n,)``: the reference's empirical
    distribution function at mid-steps (``(i + 0.5) / m`` at its ``i``-th smallest value), linear in between
    and continued linearly past both ends with the slope across its range."""
    ref = np.sort(np.asarray(reference, dtype=np.float64))
    scores = np.asarray(scores, dtype=np.float64)
    levels = (np.arange(ref.size) + 0.5) / ref.size
    span = max(float(ref[-1] - ref[0]), 1e-12)
    ranks = np.interp(scores, ref, levels)
    above, below = scores > ref[-1], scores < ref[0]
    ranks[above] = levels[-1] + (scores[above] - ref[-1]) / span
    ranks[below] = levels[0] - (ref[0] - scores[below]) / span
    return ranks


def fit_detector(detector: Detector, clips: Sequence[np.ndarray], others: Sequence[Sequence[np.ndarray]] = (),
                 progress=None) -> Detector:  # fmt: skip
    """``detector.fit``, handing ``others`` (the other machines' normal clips) to the detectors that learn from them."""
    if getattr(detector, "name", None) in ("machine_id", "ensemble"):
        return detector.fit(clips, progress=progress, others=others)
    return detector.fit(clips, progress=progress)


class EnsembleDetector(Detector):
    """Mean rank of its members' scores, each ranked against that member's held-out normal scores.

    Parameters (keyword-only)
    -------------------------
    members : list of {"label", "detector", "params"}
        The member detectors (registered names and their hyper-parameters).
    references : list of list of float
        Per member, its scores of normal clips it did not train on (from cross-validation); when empty,
        the members' training scores (biased low for detectors scored in-sample, such as ``frame_gmm``).

    Attributes
    ----------
    members_ : list of Detector
        The fitted members.
    decision_scores_ : np.ndarray, float64 ``(n_clips,)``
        The training clips' mean ranks (dimensionless).
    """

    name = "ensemble"
    description = "rank-averaged ensemble of detectors (the automatic choice when none is clearly best)"
    explanation_version = 2  # 1: every clip's map scaled to a mean of 1, whatever its score

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return {"members": [], "references": []}

    def fit(self, clips: Sequence[np.ndarray], progress=None, *, others: Sequence[Sequence[np.ndarray]] = ()) -> Self:
        from core.detection.registry import detector_class

        members = self.params["members"]
        if len(members) < 2:
            raise BadInputError(Reason.INVALID_PARAMETER, "an ensemble needs at least 2 members")
        self.members_ = [fit_detector(detector_class(m["detector"])(self.feature_params, **m["params"]), clips, others)
                         for m in members]  # fmt: skip
        self.decision_scores_ = self.decision_function(clips)
        if progress:
            progress(1, 1)
        return self

    def _references(self) -> list[np.ndarray]:
        given = self.params["references"]
        return [np.asarray(r) for r in given] if given else [m.decision_scores_ for m in self.members_]

    def decision_function(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Mean rank per clip, float64 ``(n_clips,)``."""
        if not hasattr(self, "members_"):
            self._check_fitted()
        return np.mean(self._ranks(clips), axis=0)

    def _ranks(self, clips: Sequence[np.ndarray], scores: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        """Per member, the ranks of ``clips`` (of its ``scores`` of them, when given) against its reference."""
        scores = [m.decision_function(clips) for m in self.members_] if scores is None else scores
        return [rank_against(s, ref) for s, ref in zip(scores, self._references(), strict=True)]

    def explain(self, features: np.ndarray) -> Explanation:
        return self.score_and_explain([features])[1][0]

    def score_and_explain(self, clips: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Explanation]]:
        """Scores and the score taken apart, each member's work done once.  A clip's error map is the mean over
        members of the member's map scaled to a mean of the member's rank (of 0 where that rank is below 0): it
        averages to the clip's score (the mean rank, unless a member ranks the clip below all its references),
        about 0.5 for a typical normal clip, so an anomaly's errors stand above a normal clip's as its score
        does, and each member's map keeps its shape over bands and time."""
        self._check_fitted()
        parts = [m.score_and_explain(clips) for m in self.members_]
        ranks = self._ranks(clips, [scores for scores, _ in parts])
        explained = [maps for _, maps in parts]
        explanations = []
        for index in range(len(clips)):
            maps = [(e[index].error_map, float(r[index])) for e, r in zip(explained, ranks, strict=True)]
            scaled = [e * max(rank, 0.0) / max(float(e.mean()), 1e-12) for e, rank in maps]
            explanations.append(Explanation(error_map=np.mean(scaled, axis=0)))
        return np.mean(ranks, axis=0), explanations

    def _save_state(self, folder: Path) -> None:
        for index, member in enumerate(self.members_):
            member.save(folder / f"member_{index}")

    def _load_state(self, folder: Path) -> None:
        self.members_ = [Detector.load(folder / f"member_{i}") for i in range(len(self.params["members"]))]
