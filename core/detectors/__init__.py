"""Registry of anomaly detectors.  Each is imported only when used, so listing them (or
using the light ones) never loads TensorFlow."""

from __future__ import annotations

from importlib import import_module

from core.detectors.base import Detector, Explanation
from core.errors import BadInputError, Reason

# name -> "module:Class"; the first is the default for new machines.
_REGISTRY = {
    "autoencoder": "core.detectors.autoencoder:AutoencoderDetector",
    "mahalanobis": "core.detectors.mahalanobis:MahalanobisDetector",
}
DEFAULT_DETECTOR = "autoencoder"


def detector_names() -> list[str]:
    """Registered detector names, the default first."""
    return list(_REGISTRY)


def detector_class(name: str) -> type[Detector]:
    """The class registered as ``name``."""
    try:
        module, cls = _REGISTRY[name].split(":")
    except KeyError:
        known = ", ".join(_REGISTRY)
        raise BadInputError(Reason.INVALID_PARAMETER, f"unknown detector {name!r}; known: {known}") from None
    return getattr(import_module(module), cls)


__all__ = ["DEFAULT_DETECTOR", "Detector", "Explanation", "detector_class", "detector_names"]
