"""Registry of anomaly detectors.  Each is imported only when used, so listing them (or
using the light ones) never loads TensorFlow."""

from __future__ import annotations

from importlib import import_module

from core.detection.base import Detector, Explanation
from core.errors import BadInputError, Reason

# name -> "module:Class"; the first is the seed's detector.
_REGISTRY = {
    "autoencoder": "core.detection.autoencoder:AutoencoderDetector",
    "mahalanobis": "core.detection.mahalanobis:MahalanobisDetector",
    "band_deviation": "core.detection.band_deviation:BandDeviationDetector",
    "frame_knn": "core.detection.frame_knn:FrameKNNDetector",
    "frame_gmm": "core.detection.frame_gmm:FrameGMMDetector",
    "machine_id": "core.detection.machine_id:MachineIDDetector",  # needs sibling machines of the same type
    "ensemble": "core.detection.ensemble:EnsembleDetector",  # rank-averaged members, built by the automatic choice
    "spectrogram_cnn": "core.detection.spectrogram_cnn:SpectrogramCNN",  # supervised: learns from labels
}
SUPERVISED = frozenset({"spectrogram_cnn"})  # trained by `train-supervised` on an export, not by `train`
SEED_DETECTOR = "autoencoder"  # the seed's recipe: stays available and documented
AUTO = "auto"  # not a detector: `train --detector auto` chooses one per machine from training data only
CHOSEN_ONLY = frozenset({"ensemble"})  # built by the automatic choice from its members, never trained by name
DEFAULT_DETECTOR = AUTO  # what new machines get
# the detectors that take a setting beyond their name (`train --pooling`, `--front-end`), known without importing
# them (the Keras ones load TensorFlow); tests check it against each class's default_params
TAKES = {
    "pooling": ("autoencoder", "band_deviation", "frame_knn", "frame_gmm", "machine_id"),
    "front_end": ("mahalanobis", "band_deviation", "frame_knn", "frame_gmm"),
}


def detector_names(*, supervised: bool = False) -> list[str]:
    """Registered detector names, the default first: the unsupervised ones (trained on normal
    clips by ``train``), or with ``supervised`` the ones that learn from labelled images."""
    return [name for name in _REGISTRY if (name in SUPERVISED) == supervised]


def detector_class(name: str) -> type[Detector]:
    """The class registered as ``name``."""
    try:
        module, cls = _REGISTRY[name].split(":")
    except KeyError:
        known = ", ".join(_REGISTRY)
        raise BadInputError(Reason.INVALID_PARAMETER, f"unknown detector {name!r}; known: {known}") from None
    return getattr(import_module(module), cls)


__all__ = ["AUTO", "CHOSEN_ONLY", "DEFAULT_DETECTOR", "SEED_DETECTOR", "SUPERVISED", "TAKES", "Detector", "Explanation",
           "detector_class", "detector_names"]  # fmt: skip
