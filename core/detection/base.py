"""The detector interface, after PyOD's contract.

A detector learns what *normal* sounds like from the feature vectors of normal
clips and scores clips so that **higher means more abnormal**.

* ``fit(clips)`` returns ``self``; fitted state is named with a trailing ``_``;
  ``decision_scores_`` holds the training clips' scores.
* ``decision_function(clips)`` returns one score per clip, ``(n_clips,)``.
* ``explain(features)`` says *when* and *in which mel band* one clip is abnormal.
* ``save(folder)`` / ``load(folder)`` persist the fitted detector.

``clips`` is a sequence of per-clip feature arrays ``(n_vectors, n_mels * frames)``
(see :func:`core.signal.features.log_mel_frames`); clips may have different lengths.

The statistical detectors read a clip's columns through a **front end** (``front_end``
hyper-parameter, :class:`FrontEnd`): the log-mel dB columns themselves, or their per-channel
energy normalisation (PCEN), which levels steady sound and lifts short events; on noisy
recordings of machines whose faults are in their strokes and clicks it is what tells them.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from core.detection.pooling import POOLINGS
from core.errors import BadInputError, NotFittedError, Reason
from core.signal.features import FeatureParams, pcen_columns, unstack_frames

META_FILE = "detector.json"


class FrontEnd(StrEnum):
    """What a statistical detector reads of a clip's features (its ``front_end`` hyper-parameter)."""

    LOG_MEL = "log_mel"  # the log-mel columns, dB below the clip's loudest bin (the seed's features)
    PCEN = "pcen"  # their per-channel energy normalisation (core.signal.features.pcen_columns)


def check_front_end(front_end: str) -> FrontEnd:
    """``front_end`` as a :class:`FrontEnd`; else a :class:`BadInputError` naming the known ones."""
    try:
        return FrontEnd(front_end)
    except ValueError:
        known = ", ".join(FrontEnd)
        raise BadInputError(Reason.INVALID_PARAMETER, f"front_end must be one of {known}, got {front_end!r}") from None


@dataclass(frozen=True)
class Explanation:
    """Where one clip departs from normal.

    ``error_map`` is ``(n_vectors, n_mels)``: the detector's error per feature vector
    (time) and mel band; ``frame_errors`` ``(n_vectors,)`` and ``band_errors``
    ``(n_mels,)`` are its means over bands and over time.  Vector ``v`` starts at STFT
    column ``v``, i.e. at ``v * hop_length / sr`` seconds.
    """

    error_map: np.ndarray

    @property
    def frame_errors(self) -> np.ndarray:
        return self.error_map.mean(axis=1)

    @property
    def band_errors(self) -> np.ndarray:
        return self.error_map.mean(axis=0)

    def summary(self, digits: int = 4) -> dict[str, list[float]]:
        """``{"frame_errors", "band_errors"}`` as lists rounded to ``digits`` significant digits, for storage."""
        return {
            "frame_errors": _significant(self.frame_errors, digits),
            "band_errors": _significant(self.band_errors, digits),
        }


def _significant(values: np.ndarray, digits: int) -> list[float]:
    values = np.asarray(values, dtype=np.float64)
    magnitude = np.floor(np.log10(np.abs(values), where=values != 0, out=np.zeros_like(values)))
    factor = 10.0 ** (digits - 1 - magnitude)
    return (np.round(values * factor) / factor).tolist()


def stack_clips(clips: Sequence[np.ndarray], dims: int) -> tuple[np.ndarray, np.ndarray]:
    """All vectors of ``clips`` in one float32 array ``(sum n_vectors, dims)`` and each clip's start offset."""
    if len(clips) == 0:
        raise BadInputError(Reason.INVALID_PARAMETER, "no clips given")
    for features in clips:
        if features.ndim != 2 or features.shape[1] != dims or features.shape[0] == 0:
            raise BadInputError(
                Reason.INVALID_PARAMETER, f"features must be (n_vectors >= 1, {dims}), got {features.shape}"
            )
    offsets = np.cumsum([0] + [len(f) for f in clips[:-1]])
    return np.concatenate(clips).astype(np.float32, copy=False), offsets


def per_clip_means(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Mean of ``values`` ``(n_vectors,)`` within each clip starting at ``offsets``."""
    sums = np.add.reduceat(values, offsets)
    counts = np.diff(np.append(offsets, len(values)))
    return sums / counts


class Detector(ABC):
    """Base class of every detector; subclasses register in :mod:`core.detection.registry`."""

    name: ClassVar[str]
    description: ClassVar[str]
    explanation_version: ClassVar[int] = 1  # raised when explain() changes meaning: stored errors of two
    # versions are not drawn on one scale
    poolings: ClassVar[tuple[str, ...]] = POOLINGS  # the documented choices of a ``pooling`` hyper-parameter, if any

    def __init__(self, feature_params: FeatureParams = FeatureParams(), **params: Any):
        self.feature_params = feature_params
        self.params = self.default_params() | params

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        """The detector's hyper-parameters and their defaults."""
        return {}

    @abstractmethod
    def fit(self, clips: Sequence[np.ndarray]) -> Self:
        """Learn normal from the feature arrays of normal training clips; sets ``decision_scores_``."""

    @abstractmethod
    def decision_function(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Anomaly score per clip, float64 ``(n_clips,)``, higher = more abnormal."""

    @abstractmethod
    def explain(self, features: np.ndarray) -> Explanation:
        """Error per feature vector and mel band for one clip."""

    def score_and_explain(self, clips: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Explanation]]:
        """:meth:`decision_function` and :meth:`explain` of each clip (detectors may share the work)."""
        return self.decision_function(clips), [self.explain(features) for features in clips]

    @abstractmethod
    def _save_state(self, folder: Path) -> None: ...

    @abstractmethod
    def _load_state(self, folder: Path) -> None: ...

    def columns(self, features: np.ndarray) -> np.ndarray:
        """One clip's columns as this detector reads them, float64 ``(n_vectors, n_mels)``: through its
        ``front_end`` (log-mel dB when it has none; PCEN over the clip's every column, then one per vector)."""
        if check_front_end(self.params.get("front_end", FrontEnd.LOG_MEL)) is FrontEnd.LOG_MEL:
            return columns_of(features, self.feature_params.n_mels)
        return pcen_columns(unstack_frames(features, self.feature_params.n_mels))[: len(features)]

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "decision_scores_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"the {self.name} detector is not fitted yet: call fit first")

    def save(self, folder: str | Path, provenance: dict[str, Any] | None = None) -> Path:
        """Write the fitted detector into ``folder``: its state, parameters, training scores, provenance."""
        self._check_fitted()
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        self._save_state(target)
        meta = {
            "detector": self.name,
            "params": self.params,
            "feature_params": self.feature_params.as_dict(),
            "decision_scores": [float(s) for s in self.decision_scores_],
            "provenance": provenance or {},
        }
        (target / META_FILE).write_text(json.dumps(meta, indent=1))
        return target

    @classmethod
    def load(cls, folder: str | Path) -> Detector:
        """Read a detector written by :meth:`save` (of whichever registered kind it is)."""
        from core.detection.registry import detector_class

        source = Path(folder)
        try:
            meta = json.loads((source / META_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise BadInputError(Reason.CORRUPT, f"cannot read the saved detector ({exc})", source) from None
        detector = detector_class(meta["detector"])(FeatureParams(**meta["feature_params"]), **meta["params"])
        detector._load_state(source)
        detector.decision_scores_ = np.asarray(meta["decision_scores"], dtype=np.float64)
        return detector


def columns_of(features: np.ndarray, n_mels: int) -> np.ndarray:
    """The log-mel columns of one clip's feature vectors, float64 ``(n_vectors, n_mels)`` in dB
    (each vector's first frame: one STFT column per vector)."""
    return np.asarray(features[:, :n_mels], dtype=np.float64)
